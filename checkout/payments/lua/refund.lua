--[[ refund.lua (sandbox gateway), run after prelude.lua.

KEYS[1] order hash. ARGV[1] amount_minor or '' for all that remains,
ARGV[2] gateway_ref to use if this call refunds, ARGV[3] the caller's refund number or ''
  (with one, a repeat answers that refund: field 'refund_seq:<n>' = '<ref>:<amount>').
Reply: reply(outcome), outcome one of new, replay (full refund asked, nothing
  remains: the last refund), seq_replay (this refund number was made already), exceeds
  (more than remains), unknown (no record), invalid_state (not captured).
]]

local state = redis.call('HGET', key, 'state')
if not state then return {'unknown'} end
if state ~= 'captured' then return reply('invalid_state') end
if ARGV[3] ~= '' and redis.call('HEXISTS', key, 'refund_seq:' .. ARGV[3]) == 1 then
  return reply('seq_replay')
end
local f = redis.call('HMGET', key, 'captured_minor', 'refunded_minor')
local remaining = tonumber(f[1]) - tonumber(f[2])
local amount
if ARGV[1] == '' then
  if remaining == 0 then return reply('replay') end
  amount = remaining
else
  amount = tonumber(ARGV[1])
  if amount > remaining then return reply('exceeds') end
end
redis.call('HINCRBY', key, 'refunded_minor', int(amount))
redis.call('HINCRBY', key, 'refund_count', 1)
redis.call('HSET', key, 'last_refund_ref', ARGV[2], 'last_refund_minor', int(amount))
if ARGV[3] ~= '' then
  redis.call('HSET', key, 'refund_seq:' .. ARGV[3], ARGV[2] .. ':' .. int(amount))
end
return reply('new')
