--[[ apply_brand.lua (after apply_lib.lua): fold one order event into its brand's totals,
per-minute sales, breakdown and order list, once. Every key is in the brand's slot.

KEYS[1] dedupe record   KEYS[2] brand totals hash   KEYS[3] brand per-minute hash
KEYS[4] brand breakdown hash ('<product>:units', 'stream:<id>:gmv_minor', ...): per stream
        the live show's sales (units, orders, gmv_minor) and its replay's apart
        (replay_units, replay_orders, replay_gmv_minor: channel `replay`)
KEYS[5] brand orders zset
ARGV[1..4] as apply_lib.lua
ARGV[5..6] refund: its amount, the commission it reverses (after_sale.lua)

Reply: 1 applied, 0 already applied.
]]

if not first_fold() then return 0 end
local minute = tostring(math.floor(at / 60000) * 60)

if is_sale then
  local sign = kind == 'sale' and 1 or -1
  redis.call('HINCRBY', KEYS[2], 'units', sign * qty)
  redis.call('HINCRBY', KEYS[2], 'orders', sign)
  redis.call('HINCRBY', KEYS[2], 'gmv_minor', sign * amount)
  redis.call('HINCRBY', KEYS[3], minute, sign * amount)
  redis.call('HINCRBY', KEYS[3], minute .. ':orders', sign)
  redis.call('HINCRBY', KEYS[4], o.product .. ':units', sign * qty)
  redis.call('HINCRBY', KEYS[4], o.product .. ':gmv_minor', sign * amount)
  if o.stream ~= '' then
    local field = 'stream:' .. o.stream .. (o.channel == 'replay' and ':replay_' or ':')
    redis.call('HINCRBY', KEYS[4], field .. 'units', sign * qty)
    redis.call('HINCRBY', KEYS[4], field .. 'orders', sign)
    redis.call('HINCRBY', KEYS[4], field .. 'gmv_minor', sign * amount)
  end
  if kind == 'sale' then
    redis.call('ZADD', KEYS[5], tonumber(o.created_ms), o.id)
  end
elseif is_money then
  local sign = kind == 'commission' and 1 or -1
  if kind == 'commission' then
    redis.call('HINCRBY', KEYS[2], 'captured_minor', amount)
  else
    amount, commission = tonumber(ARGV[5]), tonumber(ARGV[6])
    redis.call('HINCRBY', KEYS[2], 'refunded_minor', amount)
  end
  if o.creator ~= '' then
    redis.call('HINCRBY', KEYS[2], 'commission_minor', sign * commission)
  end
end
return 1
