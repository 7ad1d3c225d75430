-- looping.lua: every verdict hook runs forever.

function on_join(req) while true do end end
function on_position(client, pos) while true do end end
function match_filter(a, b, matched) while true do end end
function on_relay(r) while true do end end
