-- verdicts.lua: every hook returns what its client id names (join and
-- position: the client's id, match_filter: a's id, relay: the sender's id),
-- to exercise each return convention.

local answers = {
  ["nil"] = function() return nil end,
  ["none"] = function() end,
  ["true"] = function() return true end,
  ["true+reason"] = function() return true, "ignored" end,
  ["false"] = function() return false end,
  ["false+reason"] = function() return false, "go away" end,
  ["false+number"] = function() return false, 42 end,
  ["false+empty"] = function() return false, "" end,
  ["false+long"] = function() return false, string.rep("\u{e9}", 600) end,
  ["number"] = function() return 1 end,
  ["string"] = function() return "yes" end,
  ["table"] = function() return {} end,
  ["function"] = function() return print end,
  ["pos"] = function() return { x = 11, y = -12 } end,
  ["pos-all"] = function() return { game_id = 5, map_id = 3, x = 1, y = 2, channel = 4 } end,
  ["pos-limits"] = function() return { x = -2147483648, y = 2147483647 } end,
  ["pos-same"] = function(pos) pos.x = pos.x + 1; return pos end,
  ["pos-float"] = function() return { x = 1.5 } end,
  ["pos-big"] = function() return { x = 2147483648 } end,
  ["pos-small"] = function() return { y = -2147483649 } end,
  ["pos-text"] = function() return { x = "east" } end,
  ["pos-bool"] = function() return { map_id = true } end,
  ["pos-table"] = function() return { channel = {} } end,
}

local function answer(id, ...)
  local f = answers[id]
  if not f then
    error("verdicts.lua: no answer named " .. id)
  end
  return f(...)
end

function on_join(req)
  return answer(req.client_id)
end

function on_position(client, pos)
  return answer(client.client_id, pos)
end

function match_filter(a, b, matched)
  return answer(a.client_id)
end

function on_relay(r)
  return answer(r.sender.client_id)
end

function on_leave(client, reason)
  return answer(client.client_id)
end
