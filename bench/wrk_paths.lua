-- wrk script of bench/http_load.py: requests cycle through a file of paths (one per line);
-- a delay (ms) between requests on each connection paces the load; done() prints one JSON line.
-- Arguments after `--`: PATHS_FILE DELAY_MS.
local paths = {}
local position = 0
local pause = 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  pause = tonumber(args[2]) or 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  position = math.random(#paths)
end

function request()
  position = position % #paths + 1
  return wrk.format("GET", paths[position])
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
