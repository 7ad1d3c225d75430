-- load_runtime_error.lua: the main chunk fails on line 4.

function on_join(req) return nil end
local broken = nil + 1
