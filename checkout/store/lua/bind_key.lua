--[[ bind_key.lua: bind an Idempotency-Key to one request fingerprint, first use wins.

Lives in the buyer's slot, so a key reused for a different product (another slot) is still
caught before reserve.lua runs.

KEYS[1] binding record   ARGV[1] fingerprint   ARGV[2] TTL in s
Reply: the fingerprint now bound to the key (equal to ARGV[1] unless the key was reused).
]]

local old = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', tonumber(ARGV[2]))
if old then return old end
return ARGV[1]
