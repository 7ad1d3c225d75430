-- map_range.lua: per-map hearing ranges on top of the stock proximity rule.
--
-- Some maps want a different range: a quiet library where you hear only
-- those right next to you, an arena where you hear across the room. For the
-- maps listed in `maps` this script decides the match itself (same game and
-- channel, within `radius`; once matched, within `leave_radius`); for every
-- other map it passes and the next match filter (proximity) decides.
--
-- Put it BEFORE proximity in the hooks list: the first filter that answers
-- decides. The grid must look far enough for the largest range, so the
-- script declares query_radius as the largest leave_radius it has.
--
-- Settings:
--   maps = ( { map_id = 3; radius = 8; leave_radius = 10; },
--            { map_id = 7; radius = 40; leave_radius = 45; game_id = 0; } );
--   leave_radius defaults to radius * 1.25 (rounded down); game_id, when
--   given, limits the override to that game.

local ranges = {}   -- map_id -> list of { game_id?, r2, leave2 }
query_radius = 0

for i, m in ipairs(earshot.settings.maps or {}) do
  local r = m.radius
  if math.type(m.map_id) ~= "integer" or math.type(r) ~= "integer" or r < 0 then
    error(string.format("map_range: maps[%d] needs integer map_id and radius >= 0", i))
  end
  local leave = m.leave_radius or (r * 5) // 4
  if math.type(leave) ~= "integer" or leave < r then
    error(string.format("map_range: maps[%d].leave_radius must be an integer >= radius", i))
  end
  local list = ranges[m.map_id] or {}
  list[#list + 1] = { game_id = m.game_id, r2 = r * r, leave2 = leave * leave }
  ranges[m.map_id] = list
  if leave > query_radius then
    query_radius = leave
  end
end

local function range_for(game_id, map_id)
  local list = ranges[map_id]
  if not list then return nil end
  for _, e in ipairs(list) do
    if e.game_id == nil or e.game_id == game_id then
      return e
    end
  end
  return nil
end

function match_filter(a, b, matched)
  if a.map_id ~= b.map_id or a.game_id ~= b.game_id then
    return nil          -- not ours to decide: proximity refuses these anyway
  end
  local range = range_for(a.game_id, a.map_id)
  if not range then
    return nil          -- a map without an override: the next filter decides
  end
  if a.channel ~= b.channel then
    return false
  end
  local dx, dy = a.x - b.x, a.y - b.y
  -- Coordinates are int32, so dx*dx + dy*dy fits Lua's 64-bit integers.
  return dx * dx + dy * dy <= (matched and range.leave2 or range.r2)
end
