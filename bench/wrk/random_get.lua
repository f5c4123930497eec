-- wrk script: GET <BENCH_PREFIX><random 12-digit key below BENCH_KEYS>, e.g.
--   BENCH_PREFIX=/v1/features/kv/   (Sluice)     BENCH_PREFIX=/HGETALL/sluice:kv:   (webdis)
-- done() prints one machine-readable RESULT line (requests/s, latency percentiles, errors).
local prefix = os.getenv("BENCH_PREFIX") or "/v1/features/kv/"
local keys = tonumber(os.getenv("BENCH_KEYS") or "100000")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(seed * 7919 + 17)
end

function request()
  return wrk.format("GET", prefix .. string.format("%012d", math.random(0, keys - 1)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d rps=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
