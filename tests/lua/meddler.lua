-- meddler.lua: on_position and on_relay, for the client "meddle", take a
-- field out of the reused argument tables and give them a __newindex
-- metamethod that raises, so refilling them runs script code that fails.
-- Everyone else passes.

local function trap()
  error("refilling a table the script trapped")
end

function on_position(client, pos)
  if client.client_id == "meddle" then
    client.x = nil
    pos.y = nil
    setmetatable(client, { __newindex = trap })
    setmetatable(pos, { __newindex = trap })
  end
  return nil
end

function on_relay(r)
  if r.sender.client_id == "meddle" then
    r.payload = nil
    setmetatable(r, { __newindex = trap })
  end
  return nil
end
