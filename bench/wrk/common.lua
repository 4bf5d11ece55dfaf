-- Shared by the bench's wrk scripts: the bearer token on every request, and one machine-readable line
-- (BENCH_RESULT {json}) at the end, which bench/harness.py parses. wrk runs these scripts from the
-- repository root: package.path in each script points here.
local M = {}

function M.authorize()
   local token = os.getenv("BENCH_TOKEN")
   if token == nil or token == "" then
      error("BENCH_TOKEN is not set: run the bench with `make bench`")
   end
   wrk.headers["Authorization"] = "Bearer " .. token
end

function M.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
   ))
end

return M
