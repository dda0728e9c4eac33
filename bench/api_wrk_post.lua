-- wrk script: POST a different transaction on every request, cycling through a file of JSON bodies
-- (one per line, in time order, so each card builds up history as the run goes).
-- Usage: BODIES=bench/out/bodies.jsonl API_KEY=... wrk -s bench/api_wrk_post.lua -c 32 -t 2 -d 10s URL
local bodies = {}
local n = 0
local idx = 0

function init(args)
  local path = os.getenv("BODIES")
  for line in io.lines(path) do
    n = n + 1
    bodies[n] = line
  end
  -- each wrk thread starts at its own offset so threads do not replay the same sequence
  idx = math.random(0, n - 1)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("API_KEY")
  if key and key ~= "" then
    wrk.headers["X-API-Key"] = key
  end
end

function request()
  idx = (idx % n) + 1
  return wrk.format(nil, nil, nil, bodies[idx])
end

-- print machine-readable figures after the run
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"socket_errors\": %d, \"non2xx\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
