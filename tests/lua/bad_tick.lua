-- bad_tick.lua: a tick_interval that is not a number of seconds.
tick_interval = "often"

function on_tick() end
