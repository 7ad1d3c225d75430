-- The stock proximity rule written in Lua, for measuring what a Lua match
-- filter costs per call against the C plugin (bench/inproc).
query_radius = 25

function match_filter(a, b, matched)
  if a.map_id ~= b.map_id or a.game_id ~= b.game_id or a.channel ~= b.channel then
    return false
  end
  local dx, dy = a.x - b.x, a.y - b.y
  local r = matched and 25 or 20
  return dx * dx + dy * dy <= r * r
end
