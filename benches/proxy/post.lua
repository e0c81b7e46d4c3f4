-- wrk script for benches/proxy/run.sh: a ~100-byte JSON POST, and one machine-readable line at the
-- end. run.sh reads the body from the `wrk.body` line below for its pre-flight checks, so keep it
-- on one line in single quotes.
wrk.method = "POST"
wrk.path = "/bench/echo"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"id":12345,"name":"rrlb-bench","tags":["alpha","beta","gamma"],"ok":true,"ratio":0.25,"next":null}'

-- Latencies are in microseconds, duration too. Non-2xx/3xx answers are counted in `status`.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
