-- Heartbeats of one runner, as fast as wrk sends them (the body the CLI sends).
local path = "/api/v1/private/local-runners/" .. os.getenv("BENCH_RUNNER") .. "/heartbeats"
local headers = {["content-type"] = "application/json"}
failed = 0

request = function()
  return wrk.format("POST", path, headers, '{"capabilities":["jobs"]}')
end

response = function(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH heartbeat_failures=%d\n", failed))
end
