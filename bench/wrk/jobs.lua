-- wrk script for bench/load.py: a unique id on every POST, and one JSON summary line at the end.
-- Arguments after `--`: mode (begin | create | get), id prefix, promise expiry (ms since the
-- epoch), promise data (base64) and promise tags (a JSON object), the last three for create,
-- and optionally "by-status".
--   begin:  POST <path>?id=<prefix>-<thread>-<n> with the body {"foo": "bar"} (the gateway, the peer)
--   create: POST <path> with a promise {"id": ...} (the raw Resonate server)
--   get:    the URL as given, every time
-- by-status (begin only; bench/overload.py): every request carries its id as X-Request-ID, which
-- the gateway echoes on every answer, so that each answer is matched to its request and timed on
-- its own (wrk's own latency figures mix every status). Printed at the end, one line per answer:
-- `ANSWER <status> <ms> <id>` (`ANSWER unmatched -1 -`: an answer without a known id). Without
-- it no response() is defined, so wrk parses no answer for Lua and `make bench` pays nothing.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

local function monotonic_clock()
  local ffi = require("ffi")  -- wrk runs LuaJIT; os.clock() is CPU time, os.time() seconds
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock_id, bench_timespec *tp);
  ]]
  local now = ffi.new("bench_timespec")
  return function()
    ffi.C.clock_gettime(1, now)  -- CLOCK_MONOTONIC
    return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  end
end

function init(args)
  mode, prefix, expiry, data, tags = args[1], args[2], args[3], args[4], args[5]
  counter = 0
  if args[6] == "by-status" then
    local clock, sent = monotonic_clock(), {}
    -- "<status> <ms> <id>" per answer, flat: thread:get copies flat tables only (nested ones crash wrk)
    answers = {}
    tagged = function(id) sent[id] = clock(); return {["X-Request-ID"] = id} end
    function response(status, headers, body)
      local id = headers["X-Request-ID"] or headers["x-request-id"]
      if id and sent[id] then
        table.insert(answers, string.format("%d %.3f %s", status, clock() - sent[id], id))
        sent[id] = nil
      else
        table.insert(answers, "unmatched -1 -")
      end
    end
  end
end

function request()
  if mode == "get" then
    return wrk.request()
  end
  counter = counter + 1
  local id = prefix .. "-" .. thread_number .. "-" .. counter
  if mode == "begin" then
    local headers = tagged and tagged(id) or {}
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", wrk.path .. "?id=" .. id, headers, '{"foo": "bar"}')
  end
  local body = '{"id": "' .. id .. '", "timeout": ' .. expiry ..
    ', "param": {"headers": {}, "data": "' .. data .. '"}, "tags": ' .. tags .. '}'
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json",
    ["Idempotency-Key"] = id, ["Strict"] = "false"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bad_status": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
  for _, thread in ipairs(threads) do
    for _, answer in ipairs(thread:get("answers") or {}) do
      io.write("ANSWER " .. answer .. "\n")
    end
  end
end
