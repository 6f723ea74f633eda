-- wrk script of bench/ingest_load.py: POST /events with JSON lists of BATCH events.
--
--   wrk -t2 -c8 -d20s -H "Authorization: Bearer KEY" -s bench/ingest_load.lua URL -- TAG USERS ITEMS BATCH
--
-- Every event is distinct: its id is TAG-thread-request-index; users u0..u(USERS-1) and items
-- i0..i(ITEMS-1) are drawn at random (1% of events name a user, 0.5% an item, never seen before:
-- platforms stream events before they sync profiles), times lie within the last day (unix seconds
-- or RFC 3339 text), types follow a feed's mix (dwell and rating carry a value). The answers'
-- "accepted" counts are summed; done() prints one line "INGEST_LOAD {json}" for the Python side.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local TYPES = { "view", "view", "view", "view", "view", "click", "click", "like", "like",
                "dwell", "bookmark", "share", "rating" }

function init(args)
   tag, users, items, batch = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
   n, accepted, duplicates, failed, first_error = 0, 0, 0, 0, ""
   math.randomseed(tid * 7919 + os.time())
   now = os.time()
   wrk.headers["Content-Type"] = "application/json" -- beside -H Authorization
end

local function event(k)
   local id = string.format("%s-%d-%d-%d", tag, tid, n, k)
   local user = "u" .. math.random(0, users - 1)
   if math.random() < 0.01 then user = "new-" .. id end
   local item = "i" .. math.random(0, items - 1)
   if math.random() < 0.005 then item = "new-" .. id end
   local kind = TYPES[math.random(#TYPES)]
   local at = now - math.random(0, 86400)
   local time = tostring(at)
   if k % 2 == 0 then time = '"' .. os.date("!%Y-%m-%dT%H:%M:%SZ", at) .. '"' end
   local value = ""
   if kind == "dwell" then value = string.format(',"value":%.1f', math.random() * 120) end
   if kind == "rating" then value = ',"value":' .. math.random(1, 5) end
   return string.format('{"event_id":"%s","user_id":"%s","item_id":"%s","type":"%s","timestamp":%s%s}',
                        id, user, item, kind, time, value)
end

function request()
   n = n + 1
   local parts = {}
   for k = 1, batch do parts[k] = event(k) end
   return wrk.format("POST", "/events", nil, "[" .. table.concat(parts, ",") .. "]")
end

function response(status, headers, body)
   if status == 200 or status == 201 then
      accepted = accepted + tonumber(body:match('"accepted":(%d+)') or 0)
      duplicates = duplicates + tonumber(body:match('"duplicates":(%d+)') or 0)
   else
      failed = failed + 1
      if first_error == "" then first_error = status .. " " .. body:sub(1, 300) end
   end
end

function done(summary, latency, requests)
   local acc, dup, bad, example = 0, 0, 0, ""
   for _, thread in ipairs(threads) do
      acc = acc + thread:get("accepted")
      dup = dup + thread:get("duplicates")
      bad = bad + thread:get("failed")
      if example == "" then example = thread:get("first_error") end
   end
   example = example:gsub("[%c\\]", " ") -- so that %q below writes valid JSON text
   local e = summary.errors
   io.write(string.format(
      'INGEST_LOAD {"seconds":%.3f,"requests":%d,"accepted":%d,"duplicates":%d,"failed":%d,' ..
      '"socket_errors":%d,"timeouts":%d,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,' ..
      '"max_ms":%.2f,"error_example":%q}\n',
      summary.duration / 1e6, summary.requests, acc, dup, bad,
      e.connect + e.read + e.write, e.timeout,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000, example))
end
