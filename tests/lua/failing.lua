-- failing.lua: every hook raises an error.

function on_join(req) error("join broke") end
function on_position(client, pos) error("position broke") end
function match_filter(a, b, matched) error("match broke") end
function on_relay(r) error("relay broke") end
function on_leave(client, reason) error("leave broke") end
function on_pair(a, b, matched) error("pair broke") end
