-- finalizer.lua: "arm" leaves a table whose __gc finalizer runs a long loop
-- (3,000,000 iterations, far past any instruction limit the test sets) and
-- makes garbage until the collector has run it; any other id reports how far
-- the finalizer got. A finalizer is script code like any other: the
-- instruction limit must stop it too.

spins = 0

function on_join(req)
  if req.client_id == "arm" then
    setmetatable({}, { __gc = function()
      for i = 1, 3000000 do
        spins = i
      end
    end })
    local n = 0
    while spins == 0 and n < 20000 do
      local garbage = { n }
      n = n + 1
    end
    return false, "armed"
  end
  return false, "spins " .. spins
end
