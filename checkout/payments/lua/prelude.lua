-- prelude.lua: put before every sandbox script by the loader (checkout/store/scripts.py).
-- reply(outcome) returns {outcome, field1, value1, ...} with the record as it stands
-- after the script; int(n) formats a Lua number as a plain integer (tostring would
-- switch to exponent notation past 1e14).
local key = KEYS[1]
local function reply(outcome)
  local r = {outcome}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat do r[#r + 1] = flat[i] end
  return r
end
local function int(n) return string.format('%d', n) end
