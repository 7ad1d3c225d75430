-- settings.lua: on_join denies with a dump of earshot.settings and
-- earshot.name, so the test sees exactly what reached the script.

local function dump(v)
  local t = type(v)
  if t == "string" then
    return string.format("%q", v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
    local parts = {}
    for i, k in ipairs(keys) do
      parts[i] = tostring(k) .. "=" .. dump(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end

function on_join(req)
  return false, "name=" .. earshot.name .. " settings=" .. dump(earshot.settings)
end
