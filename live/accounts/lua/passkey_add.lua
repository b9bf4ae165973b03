--[[ passkey_add.lua: add a passkey to an account, within the account's cap, atomically.

Two registrations at once cannot both pass the count and leave the account over its cap.

KEYS[1] the account's passkeys (sorted set)   KEYS[2] the new passkey's hash
ARGV[1] the cap   ARGV[2] the credential hash (the set's member)   ARGV[3] created (ms)
ARGV[4..] field, value, ... of the passkey's hash
Reply: 'ok' | 'exists' (the account has it already) | 'full'
]]

if redis.call('EXISTS', KEYS[2]) == 1 then return 'exists' end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'full' end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 'ok'
