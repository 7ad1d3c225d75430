-- spin_match.lua: match_filter never returns; the instruction limit has to
-- stop it every time.

function match_filter(a, b, matched)
  while true do end
end
