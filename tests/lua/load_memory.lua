-- load_memory.lua: the main chunk takes more memory than any limit allows.

function on_join(req) return nil end
local big = string.rep("x", 1 << 30)
