--[[ invite_claim.lua: claim an invitation for one account, atomically.

Only a pending invitation within its time is claimed; the claim names the account, so two
accepts (two tabs, two people) cannot both take it, and a revoke after the claim finds it
taken. A claim by the same account that was not finished (the caller crashed before the
grant) answers 'again' so that account can finish it; nobody else can.

KEYS[1] invitation hash (secret, state, expires_ms, account, ...)
ARGV[1] SHA-256 (hex) of the token's secret   ARGV[2] account id   ARGV[3] now (ms)
Reply: 'ok' | 'again' | 'unknown' | 'used' | 'revoked' | 'expired' (as a one-item array)
]]

local fields = redis.call('HMGET', KEYS[1], 'secret', 'state', 'expires_ms', 'account')
local secret, state, expires, account = fields[1], fields[2], fields[3], fields[4]
if not secret or secret ~= ARGV[1] then return {'unknown'} end
if state == 'claimed' and account == ARGV[2] then return {'again'} end
if state == 'claimed' or state == 'accepted' then return {'used'} end
if state == 'revoked' then return {'revoked'} end
if tonumber(expires) <= tonumber(ARGV[3]) then return {'expired'} end
redis.call('HSET', KEYS[1], 'state', 'claimed', 'account', ARGV[2])
return {'ok'}
