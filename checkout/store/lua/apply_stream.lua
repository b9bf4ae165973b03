--[[ apply_stream.lua (after apply_lib.lua): fold a sale through a show into the stream's
totals (per product too, for the show's funnel, checkout/funnel.py), its 'just bought'
ticker and its buyers, once. Every key is in the stream's slot. Only a sale or its
reversal of an order with a stream moves them: any other event is refused unrecorded.

A sale from the show's replay (channel `replay`, after the show ended) folds into its own
fields, `replay_units`, `replay_orders`, `replay_gmv_minor`, and nothing else: the live
room's counters, its ticker, its buyers and the show's funnel stay what the show sold.

KEYS[1] dedupe record   KEYS[2] stream totals hash   KEYS[3] stream ticker list
KEYS[4] stream buyers HyperLogLog
KEYS[5] the stream's buyers of the order's product, a HyperLogLog (the show's funnel)
ARGV[1..4] as apply_lib.lua   ARGV[5] ticker length

Reply: 1 applied, 0 already applied (or nothing to fold).
]]

if not is_sale or o.stream == '' then return 0 end
if not first_fold() then return 0 end
local sign = kind == 'sale' and 1 or -1
if o.channel == 'replay' then
  redis.call('HINCRBY', KEYS[2], 'replay_units', sign * qty)
  redis.call('HINCRBY', KEYS[2], 'replay_orders', sign)
  redis.call('HINCRBY', KEYS[2], 'replay_gmv_minor', sign * amount)
  return 1
end
redis.call('HINCRBY', KEYS[2], 'units', sign * qty)
redis.call('HINCRBY', KEYS[2], 'orders', sign)
redis.call('HINCRBY', KEYS[2], 'gmv_minor', sign * amount)
redis.call('HINCRBY', KEYS[2], 'product:' .. o.product .. ':units', sign * qty)
redis.call('HINCRBY', KEYS[2], 'product:' .. o.product .. ':orders', sign)
redis.call('HINCRBY', KEYS[2], 'product:' .. o.product .. ':gmv_minor', sign * amount)
if kind == 'sale' then
  -- The ticker shows a masked buyer: never the id itself.
  local masked = string.sub(o.buyer, 1, 1) .. '***'
  redis.call('LPUSH', KEYS[3], cjson.encode({order = o.id, product = o.product,
    qty = qty, buyer = masked, at_ms = at}))
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
  redis.call('PFADD', KEYS[4], o.buyer)
  redis.call('PFADD', KEYS[5], o.buyer)
end
return 1
