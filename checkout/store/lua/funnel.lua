--[[ funnel.lua: add one batch of a show's product funnel counts, in the stream's slot.

The hub sums its sockets' product_seen / product_tap frames per tick and sends each show's
batch as one call of this script (checkout/funnel.py), so a room full of viewers costs one
step per tick, not one per frame; a successful cart add with the stream sends its own.

KEYS[1] funnel hash: '<product>:clicks', '<product>:cart_adds', '<product>:cart_units'
KEYS[2..n+1] the products' seen HyperLogLogs (their views), in ARGV's order
ARGV[1] n, the number of products in the batch; then, per product, in KEYS' order:
        product id, clicks, cart adds, cart units, k (viewers who saw its card), k viewer ids

Reply: the number of products counted (n).
]]

local CHUNK = 1000  -- PFADD's arguments go through unpack, whose stack is bounded
local n = tonumber(ARGV[1])
local at = 2
for i = 1, n do
  local product = ARGV[at]
  local clicks, adds, units = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local seen = tonumber(ARGV[at + 4])
  at = at + 5
  -- Every counted product gets its fields, zero or not: the reader finds it in the hash.
  redis.call('HINCRBY', KEYS[1], product .. ':clicks', clicks)
  redis.call('HINCRBY', KEYS[1], product .. ':cart_adds', adds)
  redis.call('HINCRBY', KEYS[1], product .. ':cart_units', units)
  local first = at
  while first < at + seen do
    local last = math.min(first + CHUNK - 1, at + seen - 1)
    redis.call('PFADD', KEYS[i + 1], unpack(ARGV, first, last))
    first = last + 1
  end
  at = at + seen
end
return n
