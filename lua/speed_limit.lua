-- speed_limit.lua: refuse position updates that move faster than a player can.
--
-- A client that reports a jump larger than `max_speed` units per second
-- (plus `slack` units, for jitter and bursts of updates) gets
-- Error "moving too fast" and stays where it was, so a hacked client cannot
-- teleport next to players it was never near to eavesdrop. Changing map or
-- game is not a move and is always allowed (respawns, portals).
--
-- Settings:
--   max_speed  units per second                     (default: 50)
--   slack      units allowed on top of that         (default: 10)
--   clamp      true: move the client as far as allowed towards the reported
--              position instead of refusing the update (default: false)

local max_speed = earshot.settings.max_speed or 50
local slack = earshot.settings.slack or 10
local clamp = earshot.settings.clamp == true

local last_seen = {}    -- client_id -> time of the last accepted update

function on_position(client, pos)
  local now = earshot.now()
  local id = client.client_id
  local before = last_seen[id]
  last_seen[id] = now
  if before == nil or pos.map_id ~= client.map_id or pos.game_id ~= client.game_id then
    return nil
  end
  local dx, dy = pos.x - client.x, pos.y - client.y
  local dist = math.sqrt(dx * dx + dy * dy)
  local allowed = max_speed * (now - before) + slack
  if dist <= allowed then
    return nil
  end
  if not clamp then
    last_seen[id] = before
    return false, "moving too fast"
  end
  -- Round toward zero so the clamped move never exceeds what is allowed.
  local f = allowed / dist
  local function toward_zero(v)
    return math.tointeger(v >= 0 and math.floor(v) or math.ceil(v))
  end
  pos.x = client.x + toward_zero(dx * f)
  pos.y = client.y + toward_zero(dy * f)
  return pos
end

function on_leave(client)
  last_seen[client.client_id] = nil
end
