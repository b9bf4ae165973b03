--[[ apply_lib.lua: what the three folds of one order event share. The loader puts it in
front of apply_brand.lua, apply_stream.lua and apply_creator.lua.

An order event folds into three owners' slots: the brand's, the stream's (a sale through a
show) and the creator's (the money of an order through a creator), one script per slot so
each runs on the shard that owns it. Each part keeps its own dedupe record in its own slot
(one per order and kind, per refund for refunds): a redelivered outbox entry is a no-op per
part, and a part that did not run (a crash between parts) runs when the entry comes again.

KEYS[1] the part's dedupe record
ARGV[1] event kind: sale | sale_reversed | commission | refund   ARGV[2] order JSON
ARGV[3] event time (ms)   ARGV[4] dedupe TTL (s)   (each part's own ARGV follow)
]]

local kind = ARGV[1]
local o = cjson.decode(ARGV[2])
local at = tonumber(ARGV[3])
local qty, amount = tonumber(o.qty), tonumber(o.amount_minor)
local commission = tonumber(o.commission_minor)
local is_sale = kind == 'sale' or kind == 'sale_reversed'
local is_money = kind == 'commission' or kind == 'refund'

-- Records the part as applied: false when it already was (the event folds once).
local function first_fold()
  return redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[4])) ~= false
end
