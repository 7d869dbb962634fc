-- Post a readable message about each finished job to a chat webhook
-- (Slack, Mattermost and Teams workflows accept {"text": ...}).
-- The webhook URL is a secret: it comes from the environment variable
-- JOBHOOK_CHAT_WEBHOOK, which [handlers.chat] lists in allow_env.

local icons = { Success = "✅", Warning = "⚠️", Failure = "❌", Unknown = "❔" }

function handle(event)
  local webhook = env("JOBHOOK_CHAT_WEBHOOK")
  if webhook == nil then
    return false, "JOBHOOK_CHAT_WEBHOOK is not set"
  end
  local text = string.format(
    "%s %s on %s: %s%s",
    icons[event.JobResult] or icons.Unknown,
    event.JobType or "job",
    event.ClientMachine or "?",
    event.JobResult or "Unknown",
    event.CertificateId ~= json.null and event.CertificateId ~= nil
      and (" (certificate " .. event.CertificateId .. ")") or ""
  )
  local status = http.request{
    method = "POST",
    url = webhook,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode({ text = text }),
  }
  return status >= 200 and status < 300, "chat webhook answered " .. status
end
