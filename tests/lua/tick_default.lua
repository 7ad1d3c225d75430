-- tick_default.lua: a timer with no tick_interval: once a second.
function on_tick() end
