-- Send failed jobs to a different endpoint depending on the job type:
-- management (add/remove certificate) failures page the PKI team, the rest
-- open a ticket. Used by [handlers.route_failures] (disabled in handlers.toml).

local routes = {
  WinCertManagement = "https://pager.example.com/hooks/pki",
  default = "https://itsm.example.com/api/tickets",
}

function handle(event)
  local url = routes[event.JobType] or routes.default
  local status, body = http.request{
    method = "POST",
    url = url,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode({
      summary = (event.JobType or "job") .. " failed on " .. (event.ClientMachine or "?"),
      job_id = event.JobId,
      detail = event.ErrorMessage,
    }),
    timeout = 10,
  }
  if status >= 500 or status == 429 then
    return false, url .. " answered " .. status -- retried
  end
  if status >= 300 then
    log.error(url .. " refused the alert (" .. status .. "): " .. body)
  end
  return true
end
