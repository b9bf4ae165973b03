--[[ capture.lua (sandbox gateway), run after prelude.lua.

KEYS[1] order hash. ARGV[1] gateway_ref to use if this call captures.
Reply: reply(outcome), outcome one of new, replay (already captured),
  unknown (no authorization), invalid_state (declined or voided),
  unavailable (the tok_capture_outage card: nothing changed but the failure count).
]]

local state = redis.call('HGET', key, 'state')
if not state then return {'unknown'} end
if state == 'captured' then return reply('replay') end
if state ~= 'authorized' then return reply('invalid_state') end
if not capture(ARGV[1]) then return {'unavailable'} end
return reply('new')
