-- Enrich an event from the PKI platform's API before later handlers see it,
-- as Keyfactor's sample handlers do with their pre-configured context.Client.
--
-- Used by [handlers.enrich] in handlers.toml (disabled there: it needs an
-- [api] section pointing at your Keyfactor Command API).

local history = require("_history")

function handle(event)
  if event.JobId == nil then
    return true -- nothing to look up; the event goes on unchanged
  end
  -- GET <base_url>OrchestratorJobs/JobHistory?... with the [api] credentials.
  local status, body = client:get(
    "OrchestratorJobs/JobHistory?pq.queryString=" .. history.query_for(event.JobId)
  )
  if status == 404 then
    log.warn("no job history for " .. event.JobId)
    return true
  end
  if status ~= 200 then
    -- A failure is retried like any handler's (retries, retry_interval).
    return false, "JobHistory answered " .. status
  end
  local entry = history.latest(json.decode(body))
  if entry then
    event.JobHistoryMessage = entry.Message
    event.JobHistoryStatus = entry.Status
  end
  return event -- the changed event is what the rest of the chain sees
end
