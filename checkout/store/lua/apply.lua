--[[ apply.lua: fold one order event into the aggregates and the commission ledger, once.

Fed by the aggregator from the product outboxes; every key is in the {agg} slot. The
dedupe record (one per order and state) makes a re-delivered event a no-op.

KEYS[1] dedupe record  KEYS[2] brand totals hash   KEYS[3] creator totals hash (and breakdowns)
KEYS[4] stream totals hash   KEYS[5] creator ledger stream   KEYS[6] brand per-minute hash
KEYS[7] brand breakdown hash ('<product>:units', 'stream:<id>:gmv_minor', ...)
KEYS[8] stream ticker list   KEYS[9] brand orders zset   KEYS[10] stream buyers HyperLogLog
KEYS[11] the stream's buyers of the order's product, a HyperLogLog (the show's funnel)
ARGV[1] event kind: sale | sale_reversed | commission | refund
ARGV[2] order JSON   ARGV[3] event time (ms)   ARGV[4] dedupe TTL (s)   ARGV[5] ticker length
ARGV[6] ledger max length
ARGV[7..9] refund: its amount, the commission it reverses (after_sale.lua), '1' when it
        refunds the rest of the order (the creator's order count goes down then)

Reply: 1 applied, 0 already applied.
]]

if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[4])) then return 0 end
local kind = ARGV[1]
local o = cjson.decode(ARGV[2])
local at = tonumber(ARGV[3])
local qty, amount = tonumber(o.qty), tonumber(o.amount_minor)
local commission = tonumber(o.commission_minor)
local minute = tostring(math.floor(at / 60000) * 60)

if kind == 'sale' or kind == 'sale_reversed' then
  local sign = kind == 'sale' and 1 or -1
  redis.call('HINCRBY', KEYS[2], 'units', sign * qty)
  redis.call('HINCRBY', KEYS[2], 'orders', sign)
  redis.call('HINCRBY', KEYS[2], 'gmv_minor', sign * amount)
  redis.call('HINCRBY', KEYS[6], minute, sign * amount)
  redis.call('HINCRBY', KEYS[6], minute .. ':orders', sign)
  redis.call('HINCRBY', KEYS[7], o.product .. ':units', sign * qty)
  redis.call('HINCRBY', KEYS[7], o.product .. ':gmv_minor', sign * amount)
  if o.stream ~= '' then
    redis.call('HINCRBY', KEYS[7], 'stream:' .. o.stream .. ':units', sign * qty)
    redis.call('HINCRBY', KEYS[7], 'stream:' .. o.stream .. ':gmv_minor', sign * amount)
    redis.call('HINCRBY', KEYS[4], 'units', sign * qty)
    redis.call('HINCRBY', KEYS[4], 'orders', sign)
    redis.call('HINCRBY', KEYS[4], 'gmv_minor', sign * amount)
    -- Per product too, for the show's funnel (checkout/funnel.py).
    redis.call('HINCRBY', KEYS[4], 'product:' .. o.product .. ':units', sign * qty)
    redis.call('HINCRBY', KEYS[4], 'product:' .. o.product .. ':orders', sign)
    redis.call('HINCRBY', KEYS[4], 'product:' .. o.product .. ':gmv_minor', sign * amount)
  end
  if kind == 'sale' then
    redis.call('ZADD', KEYS[9], tonumber(o.created_ms), o.id)
    if o.stream ~= '' then
      -- The ticker shows a masked buyer: never the id itself.
      local masked = string.sub(o.buyer, 1, 1) .. '***'
      redis.call('LPUSH', KEYS[8], cjson.encode({order = o.id, product = o.product,
        qty = qty, buyer = masked, at_ms = at}))
      redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[5]) - 1)
      redis.call('PFADD', KEYS[10], o.buyer)
      redis.call('PFADD', KEYS[11], o.buyer)
    end
  end
elseif kind == 'commission' or kind == 'refund' then
  local sign = kind == 'commission' and 1 or -1
  if kind == 'commission' then
    redis.call('HINCRBY', KEYS[2], 'captured_minor', amount)
  else
    amount, commission = tonumber(ARGV[7]), tonumber(ARGV[8])
    redis.call('HINCRBY', KEYS[2], 'refunded_minor', amount)
  end
  if o.creator ~= '' then
    redis.call('HINCRBY', KEYS[2], 'commission_minor', sign * commission)
    redis.call('HINCRBY', KEYS[3], 'earned_minor:' .. o.currency, sign * commission)
    if kind == 'commission' or ARGV[9] == '1' then
      redis.call('HINCRBY', KEYS[3], 'orders', sign)
    end
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'order', o.id, 'creator', o.creator,
      'brand', o.brand, 'kind', kind == 'commission' and 'credit' or 'reversal',
      'commission_minor', sign * commission, 'amount_minor', sign * amount,
      'currency', o.currency, 'at', at,
      'product', o.product, 'stream', o.stream)
    -- The studio's breakdowns: '<show|brand|product>:<id>:<currency>:<commission|sales|orders>'
    -- ('show:-:...' for sales through links), beside the totals they add up to.
    local by = {'show:' .. (o.stream ~= '' and o.stream or '-'), 'brand:' .. o.brand,
      'product:' .. o.product}
    for _, what in ipairs(by) do
      local field = what .. ':' .. o.currency .. ':'
      redis.call('HINCRBY', KEYS[3], field .. 'commission', sign * commission)
      redis.call('HINCRBY', KEYS[3], field .. 'sales', sign * amount)
      if kind == 'commission' or ARGV[9] == '1' then  -- a partial refund keeps the order
        redis.call('HINCRBY', KEYS[3], field .. 'orders', sign)
      end
    end
  end
end
return 1
