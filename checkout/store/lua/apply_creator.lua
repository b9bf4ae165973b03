--[[ apply_creator.lua (after apply_lib.lua): fold the commission of an order through a
creator (credited when paid, reversed by a refund) into the creator's earnings, their
breakdowns and the commission ledger, once. Every key is in the creator's slot. Only a
commission or refund of an order with a creator moves them: any other event is refused
unrecorded.

KEYS[1] dedupe record   KEYS[2] creator totals hash (and breakdowns)
KEYS[3] creator ledger stream
ARGV[1..4] as apply_lib.lua   ARGV[5] ledger max length
ARGV[6..8] refund: its amount, the commission it reverses (after_sale.lua), '1' when it
        refunds the rest of the order (the creator's order count goes down then)

Reply: 1 applied, 0 already applied (or nothing to fold).
]]

if not is_money or o.creator == '' then return 0 end
if not first_fold() then return 0 end
local sign = kind == 'commission' and 1 or -1
if kind == 'refund' then
  amount, commission = tonumber(ARGV[6]), tonumber(ARGV[7])
end
-- A partial refund keeps the order.
local counts_order = kind == 'commission' or ARGV[8] == '1'
redis.call('HINCRBY', KEYS[2], 'earned_minor:' .. o.currency, sign * commission)
if counts_order then
  redis.call('HINCRBY', KEYS[2], 'orders', sign)
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'order', o.id, 'creator', o.creator,
  'brand', o.brand, 'kind', kind == 'commission' and 'credit' or 'reversal',
  'commission_minor', sign * commission, 'amount_minor', sign * amount,
  'currency', o.currency, 'at', at,
  'product', o.product, 'stream', o.stream, 'channel', o.channel or '')
-- The studio's breakdowns:
-- '<show|replay|brand|product>:<id>:<currency>:<commission|sales|orders>' ('show:-:...' for
-- sales through links; 'replay:<stream>:...' for sales from a show's replay, apart from its
-- live sales under 'show:'), beside the totals they add up to.
local through = o.stream ~= '' and o.stream or '-'
local by = {(o.channel == 'replay' and 'replay:' or 'show:') .. through, 'brand:' .. o.brand,
  'product:' .. o.product}
for _, what in ipairs(by) do
  local field = what .. ':' .. o.currency .. ':'
  redis.call('HINCRBY', KEYS[2], field .. 'commission', sign * commission)
  redis.call('HINCRBY', KEYS[2], field .. 'sales', sign * amount)
  if counts_order then
    redis.call('HINCRBY', KEYS[2], field .. 'orders', sign)
  end
end
return 1
