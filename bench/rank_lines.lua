-- wrk script: GET <BENCH_PATH> with {id} replaced by a request id drawn at random from
-- BENCH_IDS (comma-separated), as the bearer of BENCH_TOKEN. Prints one "BENCH_JSON {...}" line.
local token = os.getenv("BENCH_TOKEN") or ""
local path = os.getenv("BENCH_PATH") or "/api/v1/requests/{id}/lines/1/candidates"
local seed = tonumber(os.getenv("BENCH_SEED") or "1")
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local count = 0

function setup(thread)
  count = count + 1
  thread:set("tid", count)
end

function init(args)
  math.randomseed(seed * 1000 + (tid or 0))
  wrk.headers["Authorization"] = "Bearer " .. token
  if os.getenv("BENCH_CLOSE") == "1" then
    wrk.headers["Connection"] = "close"
  end
end

function request()
  local id = ids[math.random(1, #ids)]
  return wrk.format("GET", (string.gsub(path, "{id}", id)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_status": %d, "errors_timeout": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
