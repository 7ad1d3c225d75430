-- auth_token.lua: refuse to register clients that do not present a valid token.
--
-- The token is read from the WebSocket URL's query (ws://host:8080/?token=XYZ)
-- or from an "Authorization: Bearer XYZ" header of the upgrade request. It is
-- valid when it equals one of `tokens`, or, when `secret` is set, when it is
-- the HMAC-SHA256 of the client_id keyed with `secret`, in lower-case hex
-- (so a game backend can mint per-player tokens earshot checks without a
-- database). A refused client gets Error "<reason>" and stays unregistered.
--
-- Settings:
--   tokens       list of accepted shared tokens            (default: none)
--   secret       HMAC key; "" turns per-client tokens off  (default: "")
--   query_param  name of the query parameter               (default: "token")
--   reason       the Error text a refused client gets      (default: "invalid token")
--
-- Put it first in the hooks list, so nothing else runs for a refused client.
-- It answers nil (pass) for a good token, so later join hooks still run.

local settings = earshot.settings
local tokens = settings.tokens or {}
local secret = settings.secret or ""
local param = settings.query_param or "token"
local reason = settings.reason or "invalid token"

if #tokens == 0 and secret == "" then
  error("auth_token: set `tokens` or `secret`, or every client would be refused")
end

-- The value of `name` in a query string "a=1&token=xyz".
local function query_value(query, name)
  for pair in string.gmatch(query, "[^&]+") do
    local k, v = string.match(pair, "^([^=]*)=(.*)$")
    if k == name then
      return v
    end
  end
  return nil
end

local function presented_token(req)
  local t = query_value(req.query or "", param)
  if t and t ~= "" then
    return t
  end
  local auth = req.headers["authorization"]
  if auth then
    return string.match(auth, "^[Bb]earer%s+(%S+)%s*$")
  end
  return nil
end

function on_join(req)
  local token = presented_token(req)
  if not token then
    return false, reason
  end
  for _, t in ipairs(tokens) do
    if earshot.secure_equals(token, t) then
      return nil
    end
  end
  if secret ~= "" and earshot.secure_equals(string.lower(token),
                                            earshot.hmac_sha256(secret, req.client_id)) then
    return nil
  end
  earshot.log("info", "refused " .. req.client_id .. " from " .. req.address)
  return false, reason
end
