-- event_log.lua: an audit trail, one JSON line per join, relay and leave.
--
-- Lines look like
--   {"ts":1764682800.123,"event":"join","client_id":"alice","address":"10.0.0.7","map_id":1}
--   {"ts":...,"event":"relay","kind":"offer","from":"alice","to":"bob","bytes":4312}
--   {"ts":...,"event":"leave","client_id":"alice","reason":"disconnect"}
-- "ts" is seconds on earshot's monotonic clock (earshot.now()).
--
-- An event is logged when it reaches this script in its chain: place the
-- script after the hooks that may refuse (auth_token, relay_guard) to log
-- what was let through, or before them to log every attempt.
--
-- Settings:
--   file    "" writes the lines to earshot's stderr; a path appends to that
--           file, which needs `grant = ["io"];` on this script's entry
--   relays  false leaves relays out (they are the bulk of the traffic)
--           (default: true)

local settings = earshot.settings
local path = settings.file or ""
local log_relays = settings.relays ~= false

local write
if path == "" then
  write = earshot.emit
else
  if not io then
    error("event_log: writing to a file needs grant = [\"io\"]; in its config entry")
  end
  local f = assert(io.open(path, "a"))
  f:setvbuf("line")
  write = function(line) f:write(line, "\n") end
end

-- A JSON string literal for s.
local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function quote(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

local function emit(fields)
  local parts = { string.format('"ts":%.3f', earshot.now()) }
  for i = 1, #fields, 2 do
    local k, v = fields[i], fields[i + 1]
    if type(v) == "string" then
      v = quote(v)
    elseif type(v) == "boolean" then
      v = v and "true" or "false"
    else
      v = string.format("%d", v)
    end
    parts[#parts + 1] = quote(k) .. ":" .. v
  end
  write("{" .. table.concat(parts, ",") .. "}")
end

function on_join(req)
  emit({ "event", "join", "client_id", req.client_id, "address", req.address,
         "game_id", req.game_id, "map_id", req.map_id, "channel", req.channel })
end

if log_relays then
  function on_relay(r)
    emit({ "event", "relay", "kind", r.kind, "from", r.sender.client_id,
           "to", r.target.client_id, "matched", r.matched, "bytes", #r.payload })
  end
end

function on_leave(client, why)
  emit({ "event", "leave", "client_id", client.client_id, "reason", why })
end
