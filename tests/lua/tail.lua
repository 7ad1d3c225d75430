-- tail.lua: the last link of a test chain, so a test can tell a pass (the
-- chain goes on and reaches this) from an allow (it does not). Denies joins
-- and relays with "tail", positions with "tail <game> <map> <x> <y> <channel>"
-- of the position it got; allows every match.

function on_join(req)
  return false, "tail"
end

function on_position(client, pos)
  return false, string.format("tail %d %d %d %d %d", pos.game_id, pos.map_id, pos.x, pos.y,
                              pos.channel)
end

function match_filter(a, b, matched)
  return true
end

function on_relay(r)
  return false, "tail"
end
