-- limits.lua: on_join does what its client id names, without protection, so
-- the host has to stop it: memory and instruction bombs, errors, a new global.
-- "ok" answers false, "ok" (a normal answer after a stopped call).

hoard = {}     -- memory the "fill" probe keeps
counter = 0    -- a declared global: assigning it is fine

local actions = {
  ok = function() return false, "ok" end,
  rep = function() return false, string.rep("x", 1 << 30) end,
  rep_small = function() return false, #string.rep("x", 1 << 20) .. " bytes" end,
  grow = function()
    local t = {}
    for i = 1, math.maxinteger do
      t[i] = i
    end
  end,
  loop = function() while true do end end,
  pcall_loop = function()
    while true do
      pcall(function() while true do end end)
    end
  end,
  tail_pcall = function()
    return pcall(function() while true do end end)
  end,
  gsub_loop = function()
    return string.gsub("aaa", "a", function() while true do end end)
  end,
  error = function() error("boom") end,
  error_table = function() error({}) end,
  declared = function()
    counter = counter + 1
    return false, "counter " .. counter
  end,
  undeclared = function()
    undeclared_global = 1
    return false, "assigned"
  end,
  -- take memory until the limit refuses even one byte, and keep it
  fill = function()
    local size = 1 << 20
    while size >= 1 do
      local ok = pcall(function() hoard[#hoard + 1] = string.rep("x", size) end)
      if not ok then
        size = size // 2
      end
    end
    return false, "full"
  end,
  free = function()
    hoard = {}
    return false, "freed"
  end,
}

function on_join(req)
  return actions[req.client_id]()
end
