--[[ bind_key.lua: bind an Idempotency-Key to one request fingerprint, first use wins.

Lives in the buyer's slot, so a key reused for a different product (another slot) is still
caught before reserve.lua runs.

KEYS[1] binding record   ARGV[1] fingerprint   ARGV[2] TTL in s
Reply: 1 when this call bound the key (no request used it within the TTL: nothing can be
recorded under it, which the sold-out gate relies on, checkout/sold_out_gate.py); else the
fingerprint bound before (ARGV[1] again for a retry of the same request).
]]

local old = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'GET', 'EX', tonumber(ARGV[2]))
if old then return old end
return 1
