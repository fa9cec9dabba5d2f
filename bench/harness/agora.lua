-- wrk script of the Agora benchmark: replays a prepared list of requests.
--
-- wrk ... -s agora.lua <url> -- <requests file> <tokens file> <bypass secret file>
--
-- Each line of the requests file is "METHOD<TAB>PATH<TAB>TOKEN<TAB>BODY": TOKEN is
-- the 1-based line of the tokens file whose access token signs the request, or
-- "-" for an anonymous one; BODY is JSON or empty. Every request presents the
-- gateway's rate-limit bypass secret (the benchmark is a trusted client), so the
-- limits never distort the figures. Requests are formatted once in init() and
-- replayed round-robin, each thread from its own offset. done() prints one JSON
-- line (prefixed WRK_JSON) with throughput, latency percentiles, errors and the
-- count of each HTTP status.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local requests = {}
local position = 1
statuses = {}

local function read_first_line(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("*l")
  file:close()
  return text
end

function init(args)
  local tokens = {}
  for token in io.lines(args[2]) do
    table.insert(tokens, token)
  end
  local bypass = read_first_line(args[3])
  for entry in io.lines(args[1]) do
    local method, path, token, body = entry:match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
    local headers = { ["X-RateLimit-Bypass"] = bypass }
    if token ~= "-" then
      headers["Authorization"] = "Bearer " .. tokens[tonumber(token)]
    end
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    table.insert(requests, wrk.format(method, path, headers, body))
  end
  position = (id * 7919) % #requests + 1
end

function request()
  local text = requests[position]
  position = position % #requests + 1
  return text
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for status, count in pairs(seen) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, '
      .. '"p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d}, "statuses": {%s}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ", ")
  ))
end
