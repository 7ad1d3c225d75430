-- ticker.lua: a timer every half second. on_tick counts its calls and
-- forgets who joined; on_join reports both.
tick_interval = 0.5

ticks = 0
seen = 0

function on_tick()
  ticks = ticks + 1
  seen = 0
end

function on_join(req)
  seen = seen + 1
  return false, "ticks " .. ticks .. " seen " .. seen
end
