-- A library (its name starts with `_`): never a handler, loaded with
-- require("_history") by scripts in this folder.

local history = {}

-- The Keyfactor query for one job, URL-encoded: JobID -eq "<id>".
function history.query_for(job_id)
  local query = 'JobID -eq "' .. job_id .. '"'
  return (query:gsub("[^%w%-_.~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- The most recent entry of a JobHistory answer (a JSON array).
function history.latest(entries)
  local latest = nil
  for _, entry in ipairs(entries or {}) do
    if latest == nil or (entry.HistoryId or 0) > (latest.HistoryId or 0) then
      latest = entry
    end
  end
  return latest
end

return history
