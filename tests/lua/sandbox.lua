-- sandbox.lua: on_join runs the probe named by the client id inside pcall and
-- denies with "<pcall ok>|<first result>|<second result>", so the test sees
-- exactly what the sandbox let through. settings.file names a file that
-- exists, for the probes that try to read one.

local file = earshot.settings.file or "/etc/hostname"

-- The header of a Lua 5.4 binary chunk: load() must refuse it as binary.
local binary = "\27Lua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08\x78\x56\x00\x00\x00\x00\x00\x00"
  .. "\x00\x00\x00\x00\x00\x00\x00\x00\x28\x77\x40\x01\x00\x00\x00"

local probes = {
  os_execute = function() return os.execute("true") end,
  os_exit = function() return os.exit(3) end,
  io_open = function() return io.open(file) end,
  io_lines = function() return io.lines(file)() end,
  require = function() return require("io") end,
  dofile = function() return dofile(file) end,
  loadfile = function() return loadfile(file) end,
  load_binary = function() return load(binary) end,
  load_binary_mode_b = function() return load(binary, "=chunk", "b") end,
  load_reader = function()
    local given = false
    return load(function()
      if given then return nil end
      given = true
      return binary
    end)
  end,
  load_text = function() return load("return 6 * 7")() end,
  load_env = function() return load("return x", "=chunk", "t", { x = 5 })() end,
  string_dump = function() return string.dump(function() end) end,
  string_meta_dump = function() return getmetatable("").__index.dump end,
  debug_sethook = function() return debug.sethook(function() end, "", 1) end,
  debug_getregistry = function() return debug.getregistry() end,
  collectgarbage = function() return collectgarbage("count") end,
  package_loadlib = function() return package.loadlib("libc.so.6", "system") end,
  globals = function()
    local names = { "os", "io", "require", "dofile", "loadfile", "collectgarbage", "debug",
                    "package", "coroutine", "load", "print", "pcall", "earshot", "string",
                    "table", "math", "utf8" }
    local parts = {}
    for i, n in ipairs(names) do
      parts[i] = n .. "=" .. type(_G[n])
    end
    parts[#parts + 1] = "string.dump=" .. type(string.dump)
    return table.concat(parts, " ")
  end,
  -- with grant = ["io"]: write settings.out, read it back
  io_write = function()
    local f = assert(io.open(earshot.settings.out, "w"))
    f:write("written by lua")
    f:close()
    local g = assert(io.open(earshot.settings.out, "r"))
    local text = g:read("a")
    g:close()
    return text
  end,
  -- with grant = ["os"]
  os_parts = function()
    return string.format("exit=%s time=%s getenv=%s clock=%s", type(os.exit), type(os.time),
                         type(os.getenv), type(os.clock))
  end,
}

function on_join(req)
  local probe = probes[req.client_id]
  if not probe then
    return false, "no probe " .. req.client_id
  end
  local ok, a, b = pcall(probe)
  return false, string.format("%s|%s|%s", tostring(ok), tostring(a), tostring(b))
end
