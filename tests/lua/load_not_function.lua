-- load_not_function.lua: a hook global that is not a function.

function on_join(req) return nil end
on_relay = "yes please"
