-- wrk script: GET <BENCH_PATH>?page=K&per_page=<BENCH_PER_PAGE> with K random in
-- 1..BENCH_PAGES, as the bearer of BENCH_TOKEN. Prints one "BENCH_JSON {...}" line at the end.
local token = os.getenv("BENCH_TOKEN") or ""
local path = os.getenv("BENCH_PATH") or "/api/v1/units"
local pages = tonumber(os.getenv("BENCH_PAGES") or "100")
local per_page = tonumber(os.getenv("BENCH_PER_PAGE") or "100")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")
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
  local page = math.random(1, pages)
  return wrk.format("GET", path .. "?page=" .. page .. "&per_page=" .. per_page)
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
