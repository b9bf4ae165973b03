--[[ authorize.lua (sandbox gateway), run after prelude.lua.

KEYS[1] order hash, KEYS[2] approved-authorizations counter, KEYS[3] the token's hash
(read only when ARGV[5] is 'vault': a card tokenized by tokenize.lua).
ARGV[1] order_id, ARGV[2] amount_minor (canonical decimal), ARGV[3] currency,
ARGV[4] token, ARGV[5] behaviour (_Behaviour), ARGV[6] decline code or '',
ARGV[7] gateway_ref to use if this call creates the authorization.
ARGV[8] '1' to capture in the same call (the charge), ARGV[9] the capture's gateway_ref:
        an approved hold not captured yet is captured (also on a replay, so a charge
        retried after a capture outage captures); a refused capture leaves it authorized.
Reply: reply(outcome), outcome one of
  new          the authorization was decided by this call (state captured if charged)
  replay       already decided earlier, same parameters: the stored result
  mismatch     already decided with another amount/currency/token
  unavailable  simulated transient refusal, nothing recorded but the attempt
  timeout      authorization recorded, the caller must see a timeout
  voided       the order was voided before any authorization: it can no longer be paid
  unknown_token  a vault token that was never issued: nothing recorded
]]

local function charge()
  if ARGV[8] == '1' and redis.call('HGET', key, 'state') == 'authorized' then
    capture(ARGV[9])
  end
end

if redis.call('HGET', key, 'state') == 'voided' and redis.call('HEXISTS', key, 'auth_status') == 0 then
  return reply('voided')
end
if redis.call('HEXISTS', key, 'auth_status') == 1 then
  local f = redis.call('HMGET', key, 'amount_minor', 'currency', 'token')
  if f[1] ~= ARGV[2] or f[2] ~= ARGV[3] or f[3] ~= ARGV[4] then
    return reply('mismatch')
  end
  charge()
  return reply('replay')
end
local behaviour, code = ARGV[5], ARGV[6]
if behaviour == 'vault' then
  local card = redis.call('HMGET', KEYS[3], 'behaviour', 'decline_code')
  if not card[1] then return {'unknown_token'} end
  behaviour, code = card[1], card[2]
end
local attempts = redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'order_id', ARGV[1])
if behaviour == 'unavailable_once' and attempts == 1 then
  return reply('unavailable')
end
redis.call('HSET', key, 'amount_minor', ARGV[2], 'currency', ARGV[3],
           'token', ARGV[4], 'auth_ref', ARGV[7])
if behaviour == 'decline' then
  redis.call('HSET', key, 'auth_status', 'declined', 'decline_code', code,
             'state', 'declined')
  return reply('new')
end
redis.call('HSET', key, 'auth_status', 'approved', 'state', 'authorized')
redis.call('INCR', KEYS[2])
charge()
if behaviour == 'timeout_after_charge' then
  return reply('timeout')
end
return reply('new')
