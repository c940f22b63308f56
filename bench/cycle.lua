-- One wrk connection per thread (-t N -c N): each runs create -> claim -> complete in turn.
local api = "/api/v1/private/local-runners"
local runner, project = os.getenv("BENCH_RUNNER"), os.getenv("BENCH_PROJECT")
local json = {["content-type"] = "application/json"}
local step, job = 0, nil
completed, failed = 0, 0

request = function()
  if step == 0 then
    return wrk.format("POST", api .. "/jobs", json,
      '{"agent_name":"answer","project_id":"' .. project .. '","inputs":{"question":"2+2?"}}')
  elseif step == 1 then
    return wrk.format("POST", api .. "/" .. runner .. "/jobs/next")
  end
  return wrk.format("POST", api .. "/jobs/" .. job .. "/results", json, '{"status":"completed","result":{"answer":4}}')
end

response = function(status, headers, body)
  if status >= 500 then failed = failed + 1 end
  if step == 0 then
    step = 1
  elseif step == 1 then
    job = body:match('"id":"([%x%-]+)"')
    step = job and 2 or 0
  else
    if status == 204 then completed = completed + 1 end
    step = 0
  end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local total, errors = 0, 0
  for _, t in ipairs(threads) do
    total = total + t:get("completed")
    errors = errors + t:get("failed")
  end
  io.write(string.format("BENCH completed=%d server_errors=%d seconds=%.3f\n", total, errors, summary.duration / 1e6))
end
