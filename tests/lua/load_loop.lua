-- load_loop.lua: the main chunk never ends.

function on_join(req) return nil end
while true do end
