-- headers.lua: a join hook that refuses every join, giving as its reason the
-- request headers whose names start with "x-game-" (in any case), sorted, as
-- "name=value" joined with ", "; "no x-game- headers" when there are none.
-- It shows which custom upgrade headers reach on_join, and under which names.

local PREFIX = "x-game-"

function on_join(req)
  local seen = {}
  for name, value in pairs(req.headers) do
    if name:lower():sub(1, #PREFIX) == PREFIX then
      seen[#seen + 1] = name .. "=" .. value
    end
  end
  if #seen == 0 then
    return false, "no " .. PREFIX .. " headers"
  end
  table.sort(seen)
  return false, table.concat(seen, ", ")
end
