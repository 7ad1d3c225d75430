-- c_loops.lua: on_join does what its client id names with the string
-- library, whose work runs in C where the count hook never fires. The host
-- counts it against the instruction limit, so each bomb is stopped.
-- "ok" answers false, "ok"; "patterns" answers with what everyday patterns
-- found, so the guard is seen to change no result.

local actions = {
  ok = function() return false, "ok" end,
  -- backtracking: (3001)^4 ways, hours of C in one call unguarded
  find_bomb = function() return false, tostring(("a"):rep(3000):find(".-.-.-.-b")) end,
  match_bomb = function() return false, tostring(("a"):rep(3000):match("^(a*)(a*)(a*)b")) end,
  gmatch_bomb = function()
    for w in ("a"):rep(3000):gmatch(".-.-.-x") do return false, w end
    return false, "none"
  end,
  gsub_bomb = function() return false, (("a"):rep(3000):gsub(".-.-.-x", "")) end,
  -- each call is within the memory limit; the loop makes them endless
  rep_bomb = function()
    for _ = 1, math.maxinteger do local _ = ("x"):rep(1 << 20) end
  end,
  concat_bomb = function()
    local t = {}
    for i = 1, 1024 do t[i] = ("y"):rep(1024) end
    for _ = 1, math.maxinteger do local _ = table.concat(t) end
  end,
  concat_op_bomb = function()
    local s = ("z"):rep(1 << 20)
    for _ = 1, math.maxinteger do local _ = s .. s end
  end,
  plain_find_bomb = function()
    local s = ("p"):rep(1 << 20)
    for _ = 1, math.maxinteger do s:find("q", 1, true) end
  end,
  -- the patterns a script uses every day, on big subjects: results unchanged
  patterns = function()
    local payload = ("v=0 o=- 1 2 IN IP4 127.0.0.1 "):rep(300) -- 8.7 KB
    local out = {}
    out[#out + 1] = tostring(payload:find("IN IP4", 1, true))
    out[#out + 1] = tostring(payload:find("o=%- (%d+)"))
    out[#out + 1] = tostring(#payload:gsub("%s+", " "))
    out[#out + 1] = tostring(select(2, payload:gsub("IP4", "")))
    local n = 0
    for _ in ("a=1&b=2&c=3"):gmatch("[^&]+") do n = n + 1 end
    out[#out + 1] = tostring(n)
    out[#out + 1] = tostring(("k=v"):match("^([^=]*)=(.*)$"))
    out[#out + 1] = tostring(("Bearer abc "):match("^[Bb]earer%s+(%S+)%s*$"))
    out[#out + 1] = tostring(("x"):rep(1000):find(".-y"))
    out[#out + 1] = tostring(("%b()"):len())
    out[#out + 1] = tostring(("f(a(b)c)d"):match("%b()"))
    return false, table.concat(out, " ")
  end,
}

function on_join(req)
  return actions[req.client_id]()
end
