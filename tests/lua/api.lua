-- api.lua: on_join runs the earshot-table call named by the client id and
-- denies with its result as text, so the test checks each one exactly.

local calls = {
  hmac_fox = function()
    return earshot.hmac_sha256("key", "The quick brown fox jumps over the lazy dog")
  end,
  -- RFC 4231 test case 2 and 6 (a key longer than the block)
  hmac_rfc2 = function() return earshot.hmac_sha256("Jefe", "what do ya want for nothing?") end,
  hmac_rfc6 = function()
    return earshot.hmac_sha256(string.rep("\xaa", 131),
                               "Test Using Larger Than Block-Size Key - Hash Key First")
  end,
  hmac_nul = function() return earshot.hmac_sha256("k\0ey", "m\0sg") end,
  sha_abc = function() return earshot.sha256("abc") end,
  sha_empty = function() return earshot.sha256("") end,
  sha_nul = function() return earshot.sha256("\0") end,
  eq_same = function() return earshot.secure_equals("token", "token") end,
  eq_diff = function() return earshot.secure_equals("token", "tokem") end,
  eq_prefix = function() return earshot.secure_equals("token", "tokens") end,
  eq_empty = function() return earshot.secure_equals("", "") end,
  eq_nul = function() return earshot.secure_equals("a\0b", "a\0c") end,
  now = function()
    local a = earshot.now()
    local b = earshot.now()
    return math.type(a) .. " " .. tostring(b >= a)
  end,
  name = function() return earshot.name end,
  log = function()
    earshot.log("debug", "d")
    earshot.log("info", "i")
    earshot.log("warn", "w")
    earshot.log("error", "e")
    return "logged"
  end,
  log_bad_level = function() earshot.log("loud", "x") end,
  emit = function()
    earshot.emit("EMITTED {\"line\":1}")
    return "emitted"
  end,
  print = function()
    print("printed", 1, true)
    return "printed"
  end,
}

function on_join(req)
  local ok, v = pcall(calls[req.client_id])
  if not ok then
    return false, "error: " .. tostring(v)
  end
  return false, tostring(v)
end
