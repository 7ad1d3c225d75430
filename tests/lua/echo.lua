-- echo.lua: every hook describes, exactly, the arguments it was called with.
-- The verdict hooks deny with that description as the reason; match_filter,
-- on_leave and on_pair keep it in `last`, which on_join hands back to client
-- "?last". Client "?settings" gets a dump of earshot.name and
-- earshot.settings instead.
-- A description is "<number of arguments> <arg1> <arg2> ...", each argument
-- dumped with its type visible: strings %q-quoted, integers without ".0",
-- tables as {key=value,...} with the keys sorted.

last = ""

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

local function describe(...)
  local parts = { tostring(select("#", ...)) }
  for i = 1, select("#", ...) do
    parts[#parts + 1] = dump((select(i, ...)))
  end
  return table.concat(parts, " ")
end

local function deny_with_description(...)
  return false, describe(...)
end

local function keep_description(...)
  last = describe(...)
end

function on_join(...)
  local req = ...
  if req.client_id == "?last" then
    return false, last
  elseif req.client_id == "?settings" then
    return false, "name=" .. earshot.name .. " settings=" .. dump(earshot.settings)
  end
  return deny_with_description(...)
end

on_position = deny_with_description
on_relay = deny_with_description
match_filter = keep_description -- returns nothing: passes
on_leave = keep_description
on_pair = keep_description
