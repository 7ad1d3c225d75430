-- radius.lua: declares query_radius = settings.radius (absent: none) and a
-- match filter that passes.

query_radius = earshot.settings.radius

function match_filter(a, b, matched)
  return nil
end
