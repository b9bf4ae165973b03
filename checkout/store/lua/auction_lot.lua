--[[ auction_lot.lua: the unit a live auction sells, held in its product's slot
(docs/auctions.md, "The lot"), each move once whatever is retried.

The lot record (KEYS[2], field: the lot id `<stream>/<auction>`, value JSON {variant,
state, order?}) is the one truth of where the unit is: `held` (the stock hash's `lot:<v>`
counts it: gone from `avail:<v>`, so one-tap buys cannot sell it meanwhile), `order` (an
order made from it holds or sold it: reserve.lua moved it to `held:<v>`; transition.lua
brings it back to `held` if that order dies unpaid), or `returned` (back in `avail:<v>`,
for good). So total = avail + held + sold + lot for each variant.

KEYS[1] stock hash   KEYS[2] lot records (hash)
ARGV[1] op: take | give_back   ARGV[2] lot id   ARGV[3] variant

take: the first take moves one unit avail -> lot; a retry answers the same. A lot given
  back (or never taken and given back) cannot be taken again: `returned`.
give_back: a held lot goes lot -> avail once; a lot never taken is marked returned (so a
  late take cannot take it); a lot with an order stays with its order.
Reply (JSON): {"r":"ok","state":"held"|"returned"|"order","moved":0|1}
  | {"r":"rejected","code":"variant_not_found"|"sold_out"}
]]

local id, variant = ARGV[2], ARGV[3]
local raw = redis.call('HGET', KEYS[2], id)
local rec = raw and cjson.decode(raw) or nil

local function reply(state, moved)
  return cjson.encode({r = 'ok', state = state, moved = moved})
end

if ARGV[1] == 'take' then
  if rec then return reply(rec.state, 0) end
  local avail = tonumber(redis.call('HGET', KEYS[1], 'avail:' .. variant))
  if not avail then return cjson.encode({r = 'rejected', code = 'variant_not_found'}) end
  if avail < 1 then return cjson.encode({r = 'rejected', code = 'sold_out'}) end
  redis.call('HINCRBY', KEYS[1], 'avail:' .. variant, -1)
  redis.call('HINCRBY', KEYS[1], 'lot:' .. variant, 1)
  redis.call('HSET', KEYS[2], id, cjson.encode({variant = variant, state = 'held'}))
  return reply('held', 1)
end

if not rec then
  redis.call('HSET', KEYS[2], id, cjson.encode({variant = variant, state = 'returned'}))
  return reply('returned', 0)
end
if rec.state ~= 'held' then return reply(rec.state, 0) end
redis.call('HINCRBY', KEYS[1], 'lot:' .. rec.variant, -1)
redis.call('HINCRBY', KEYS[1], 'avail:' .. rec.variant, 1)
rec.state = 'returned'
redis.call('HSET', KEYS[2], id, cjson.encode(rec))
return reply('returned', 1)
