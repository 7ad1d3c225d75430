-- moderation.lua: the ban and mute lists from a join hook (test_admin.py).
--   troll-*        banned by id for 60 s, then refused
--   mute-me-*      muted, then passed on
--   ask-<id>       refused with "muted=<bool> banned=<bool>" about <id>
--   unmute-<id>    unmutes <id>, refused with the result
--   bad-ban        refused with the results of bans the lists refuse

local function starts(s, p) return s:sub(1, #p) == p end

function on_join(req)
  local id = req.client_id
  if starts(id, "troll") then
    earshot.ban_id(id, 60, "scripted ban")
    return false, "troll"
  elseif starts(id, "mute-me") then
    earshot.mute(id, "scripted mute")
  elseif starts(id, "ask-") then
    local who = id:sub(5)
    return false, "muted=" .. tostring(earshot.muted(who)) .. " banned=" .. tostring(earshot.banned(who))
  elseif starts(id, "unmute-") then
    return false, "unmuted=" .. tostring(earshot.unmute(id:sub(8)))
  elseif id == "bad-ban" then
    return false, tostring(earshot.ban_id("x", 0)) .. " " .. tostring(earshot.ban_address("", 60))
      .. " " .. tostring(earshot.ban_address("192.0.2.1", 1e12))
  end
end
