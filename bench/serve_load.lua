-- wrk script of bench/serve_load.py: the request mix, and per-kind figures wrk does not give.
--
--   wrk -t2 -c32 -d30s --timeout 30s -H 'Authorization: Bearer KEY' -s bench/serve_load.lua \
--       http://127.0.0.1:PORT -- MODE USERS ITEMS RUN_ID EPOCH_SECONDS
--
-- MODE "mixed": 90% feed pages (GET /users/u<k>/feed?n=20, random users; half of them, when the
-- thread holds one, the next page of a cursor parsed from an earlier response on the same wrk
-- thread) and 10% event writes (POST /events, one event, unique id and time: every tenth
-- request of a thread, from its second). MODE "recs":
-- GET /users/u<k>/recommendations only.
--
-- wrk's own latency histogram mixes every kind, and its response() callback does not say which
-- request (or connection) a response answers. So each request carries its kind, user and send
-- time (a monotonic clock through LuaJIT's FFI) in X-Request-ID, which the server echoes; the
-- response callback reads it back and records the latency per kind. First pages also give the
-- server's own time from the Server-Timing header. done() prints one line, "serve_load_json "
-- followed by a JSON object, that bench/serve_load.py parses.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } serve_load_timespec;
int clock_gettime(int clock_id, serve_load_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("serve_load_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local KINDS = { "first_page", "next_page", "event", "recommendations" }
local CODE = { f = "first_page", n = "next_page", e = "event", r = "recommendations" }
local MAX_CURSORS = 256 -- cursors a thread keeps for next pages (the newest are used first)

-- main state: the threads, numbered for their random seeds
local threads = {}

function setup(thread)
  thread:set("thread_no", #threads)
  table.insert(threads, thread)
end

-- thread state
local mode, users, items, run_id, epoch, started_us
local seq = 0
local cursors = {} -- { {user, cursor}, ... }, newest last
-- Globals, read by done() through thread:get(), which copies only flat tables (a nested one
-- crashes wrk 4.1): one latency list per kind.
lat_first_page, lat_next_page, lat_event, lat_recommendations = {}, {}, {}, {}
local latencies = {
  first_page = lat_first_page,
  next_page = lat_next_page,
  event = lat_event,
  recommendations = lat_recommendations,
}
errors = { first_page = 0, next_page = 0, event = 0, recommendations = 0 }
statuses = {} -- non-2xx status -> count
server_ms = {} -- Server-Timing of first pages
unmatched = 0 -- answers without a request id this script sent (their status still counts)
requests_made = 0 -- requests this thread has made

function init(args)
  mode = args[1] or "mixed"
  users = tonumber(args[2] or "1000")
  items = tonumber(args[3] or "1000")
  run_id = args[4] or "0"
  epoch = tonumber(args[5] or tostring(os.time()))
  math.randomseed(tonumber(run_id) % 1000003 * 31 + thread_no)
  started_us = now_us()
end

local function headers_with_id(code, user)
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["X-Request-ID"] = string.format("%s.%s.%d", code, user, now_us())
  return headers
end

local function feed_page(user, cursor)
  local code, path = "f", "/users/" .. user .. "/feed?n=20"
  if cursor then
    code, path = "n", path .. "&cursor=" .. cursor
  end
  return wrk.format("GET", path, headers_with_id(code, user))
end

local function event(user)
  seq = seq + 1
  local headers = headers_with_id("e", user)
  headers["Content-Type"] = "application/json"
  local at = epoch + (now_us() - started_us) / 1000000
  local body = string.format(
    '{"event_id":"wrk-%s-%d-%d","user_id":"%s","item_id":"i%d","type":"%s","timestamp":%.6f}',
    run_id, thread_no, seq, user, math.random(0, items - 1),
    math.random() < 0.3 and "like" or "view", at
  )
  return wrk.format("POST", "/events", headers, body)
end

function request()
  local user = "u" .. math.random(0, users - 1)
  if mode == "recs" then
    return wrk.format("GET", "/users/" .. user .. "/recommendations", headers_with_id("r", user))
  end
  requests_made = requests_made + 1
  if requests_made % 10 == 2 then -- every tenth request, from the second: short runs post too
    return event(user)
  end
  if #cursors > 0 and math.random() < 0.5 then
    local held = table.remove(cursors)
    return feed_page(held[1], held[2])
  end
  return feed_page(user, nil)
end

function response(status, headers, body)
  local rid = headers["x-request-id"] or headers["X-Request-ID"]
  local code, user, sent = string.match(rid or "", "^(%a)%.([^.]+)%.(%d+)$")
  local kind = code and CODE[code]
  local failed = status < 200 or status > 299
  if failed then
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  end
  if not kind then
    unmatched = unmatched + 1
    return
  end
  local list = latencies[kind]
  list[#list + 1] = (now_us() - tonumber(sent)) / 1000
  if failed then
    errors[kind] = errors[kind] + 1
    return
  end
  if kind == "first_page" or kind == "next_page" then
    local cursor = string.match(body, '"next_cursor"%s*:%s*"([^"]+)"')
    if cursor then
      cursors[#cursors + 1] = { user, cursor }
      if #cursors > MAX_CURSORS then
        table.remove(cursors, 1)
      end
    end
  end
  if kind == "first_page" then
    local timing = headers["server-timing"] or headers["Server-Timing"] or ""
    local dur = string.match(timing, "app;dur=([%d.]+)")
    if dur then
      server_ms[#server_ms + 1] = tonumber(dur)
    end
  end
end

local function percentiles(values)
  local n = #values
  if n == 0 then
    return { count = 0 }
  end
  table.sort(values)
  local function at(p)
    return values[math.max(1, math.ceil(p / 100 * n))]
  end
  return { count = n, p50_ms = at(50), p95_ms = at(95), p99_ms = at(99) }
end

local function to_json(value)
  local t = type(value)
  if t == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = string.format("%q:%s", tostring(k), to_json(v))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      return "null"
    end
    return string.format("%.10g", value)
  end
  return string.format("%q", tostring(value))
end

function done(summary, latency, requests)
  local merged = { first_page = {}, next_page = {}, event = {}, recommendations = {} }
  local kind_errors = { first_page = 0, next_page = 0, event = 0, recommendations = 0 }
  local all_statuses, server, lost = {}, {}, 0
  for _, thread in ipairs(threads) do
    local errs = thread:get("errors")
    for _, kind in ipairs(KINDS) do
      for _, ms in ipairs(thread:get("lat_" .. kind)) do
        merged[kind][#merged[kind] + 1] = ms
      end
      kind_errors[kind] = kind_errors[kind] + errs[kind]
    end
    for status, count in pairs(thread:get("statuses")) do
      all_statuses[status] = (all_statuses[status] or 0) + count
    end
    for _, ms in ipairs(thread:get("server_ms")) do
      server[#server + 1] = ms
    end
    lost = lost + thread:get("unmatched")
  end
  local kinds = {}
  for _, kind in ipairs(KINDS) do
    if #merged[kind] > 0 then
      kinds[kind] = percentiles(merged[kind])
      kinds[kind].errors = kind_errors[kind]
    end
  end
  local out = {
    duration_s = summary.duration / 1000000,
    requests = summary.requests,
    socket_errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      timeout = summary.errors.timeout,
    },
    non_2xx = all_statuses,
    latency_ms = {
      p50_ms = latency:percentile(50) / 1000,
      p95_ms = latency:percentile(95) / 1000,
      p99_ms = latency:percentile(99) / 1000,
    },
    kinds = kinds,
    first_page_server_ms = percentiles(server),
    unmatched = lost,
  }
  io.write("serve_load_json ", to_json(out), "\n")
end
