-- wrk script for scripts/load-test.sh: POST a small JSON body to a few paths, count answers by
-- status code and by backend (x-rrlb-backend), and print both when the run is over.
--   wrk -t2 -c32 -d10s -s scripts/wrk/post.lua http://127.0.0.1:8080

wrk.method = "POST"
wrk.headers["content-type"] = "application/json"

local paths = { "/echo", "/api/orders", "/v1/items/42" }
local bodies = {}
for i = 1, #paths do
  bodies[i] = string.format('{"load":"rrlb","path":"%s","n":%d,"tags":["a","b","c"]}', paths[i], i)
end

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  codes = {}
  backends = {}
end

function request()
  counter = counter + 1
  local i = (counter % #paths) + 1
  return wrk.format(nil, paths[i], nil, bodies[i])
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  local b = headers["x-rrlb-backend"] or headers["X-Rrlb-Backend"] or "(none)"
  backends[b] = (backends[b] or 0) + 1
end

local function merge(into, name, thread)
  local t = thread:get(name)
  for k, v in pairs(t) do
    into[k] = (into[k] or 0) + v
  end
end

function done(summary, latency, requests)
  local all_codes, all_backends = {}, {}
  for _, thread in ipairs(threads) do
    merge(all_codes, "codes", thread)
    merge(all_backends, "backends", thread)
  end
  io.write(string.format("latency p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write("status codes:")
  for code, n in pairs(all_codes) do io.write(string.format("  %s=%d", code, n)) end
  io.write("\nx-rrlb-backend:")
  for b, n in pairs(all_backends) do io.write(string.format("  %s=%d", b, n)) end
  io.write("\n")
end
