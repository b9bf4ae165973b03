--[[ bind_key.lua: bind an Idempotency-Key to one request fingerprint, first use wins.

Lives in the buyer's slot, so a key reused for a different product (another slot) is still
caught before reserve.lua runs.

KEYS[1] binding record   ARGV[1] fingerprint   ARGV[2] TTL in s
ARGV[3] '1' when the node's sold-out gate refuses this buy (checkout/sold_out_gate.py): a key
        bound anew then records that refusal, which the same key replays as reserve.lua
        replays its own; '' otherwise (and from callers that never gate: the cart).
Reply: 1 bound anew; 2 bound anew with the gate's refusal; else the value bound before (the
fingerprint, or it with '|sold_out'). The same request again (on its way to reserve.lua)
renews the binding's TTL, so a binding outlives the answer reserve.lua records under its
key, whenever that request comes.
]]

local gated = ARGV[1] .. '|sold_out'
local value = ARGV[3] == '1' and gated or ARGV[1]
local old = redis.call('SET', KEYS[1], value, 'NX', 'GET', 'EX', tonumber(ARGV[2]))
if not old then return value == gated and 2 or 1 end
if old == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return old
