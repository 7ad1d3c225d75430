-- broken_join.lua: on_join fails with a runtime error (line 5) for everyone.

function on_join(req)
  local profile = nil
  return profile.allowed
end
