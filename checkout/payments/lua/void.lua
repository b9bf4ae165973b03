--[[ void.lua (sandbox gateway), run after prelude.lua.

KEYS[1] order hash. ARGV[1] gateway_ref to use if this call voids, ARGV[2] order id.
Reply: reply(outcome), outcome one of new, replay (already voided),
  noop (unknown order or declined: nothing held; an unknown one is recorded as voided,
  so an authorization arriving later is refused), invalid_state (captured).
]]

local state = redis.call('HGET', key, 'state')
if not state then
  -- Voided before any authorization arrived (it may still be in flight): like a cancelled
  -- PaymentIntent, the order can no longer be authorized.
  redis.call('HSET', key, 'order_id', ARGV[2], 'state', 'voided')
  return {'noop'}
end
if state == 'declined' then return {'noop'} end
if state == 'voided' then
  if redis.call('HEXISTS', key, 'auth_status') == 0 then return {'noop'} end
  return reply('replay')
end
if state ~= 'authorized' then return reply('invalid_state') end
redis.call('HSET', key, 'state', 'voided', 'void_ref', ARGV[1])
return reply('new')
