-- wrk script: POST /v1/features/lookup with BENCH_BATCH (100) random keys below BENCH_KEYS;
-- 500 prepared bodies per thread, sent in turn. done() prints keys/s as well as requests/s.
local keys = tonumber(os.getenv("BENCH_KEYS") or "100000")
local batch = tonumber(os.getenv("BENCH_BATCH") or "100")
local set = os.getenv("BENCH_SET") or "kv"
local threads = 0
local bodies = {}
local n = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(seed * 104729 + 3)
  for b = 1, 500 do
    local parts = {}
    for i = 1, batch do
      parts[i] = string.format('"%012d"', math.random(0, keys - 1))
    end
    bodies[b] = wrk.format("POST", "/v1/features/lookup", { ["Content-Type"] = "application/json" },
      '{"feature_set":"' .. set .. '","keys":[' .. table.concat(parts, ",") .. "]}")
  end
end

function request()
  n = n % #bodies + 1
  return bodies[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("RESULT requests=%d rps=%.0f keys_per_sec=%.0f p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f errors=%d non2xx=%d\n",
    summary.requests, rps, rps * batch, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
