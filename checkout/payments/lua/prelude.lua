-- prelude.lua: put before every sandbox script by the loader (checkout/store/scripts.py).
-- reply(outcome) returns {outcome, field1, value1, ...} with the record as it stands
-- after the script; int(n) formats a Lua number as a plain integer (tostring would
-- switch to exponent notation past 1e14). capture(ref) captures an authorized record in
-- full (capture.lua, and authorize.lua when it charges); false when refused: the
-- tok_capture_outage card's first 3 captures fail, the hold standing.
local key = KEYS[1]
local function reply(outcome)
  local r = {outcome}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat do r[#r + 1] = flat[i] end
  return r
end
local function int(n) return string.format('%d', n) end
local function capture(ref)
  if redis.call('HGET', key, 'token') == 'tok_capture_outage'
      and redis.call('HINCRBY', key, 'capture_failures', 1) <= 3 then
    return false
  end
  local amount = redis.call('HGET', key, 'amount_minor')
  redis.call('HSET', key, 'state', 'captured', 'captured_minor', amount,
             'capture_ref', ref, 'refunded_minor', '0', 'refund_count', '0')
  return true
end
