-- load_no_hooks.lua: a valid script that defines no hook.

local function on_join(req) return nil end
query_radius = 5
