-- wrk script for bench/load.py: a unique id on every POST, and one JSON summary line at the end.
-- Arguments after `--`: mode (begin | create | get), id prefix, promise expiry (ms since the
-- epoch) and promise data (base64), the last two for create.
--   begin:  POST <path>?id=<prefix>-<thread>-<n> with the body {"foo": "bar"} (the gateway, the peer)
--   create: POST <path> with a promise {"id": ...} (the raw Resonate server)
--   get:    the URL as given, every time
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  mode, prefix, expiry, data = args[1], args[2], args[3], args[4]
  counter = 0
end

function request()
  if mode == "get" then
    return wrk.request()
  end
  counter = counter + 1
  local id = prefix .. "-" .. thread_number .. "-" .. counter
  if mode == "begin" then
    return wrk.format("POST", wrk.path .. "?id=" .. id,
      {["Content-Type"] = "application/json"}, '{"foo": "bar"}')
  end
  local body = '{"id": "' .. id .. '", "timeout": ' .. expiry ..
    ', "param": {"headers": {}, "data": "' .. data .. '"}}'
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json",
    ["Idempotency-Key"] = id, ["Strict"] = "false"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bad_status": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
