--[[ reserve.lua: the one-tap buy decision, atomically, in the product's hash slot.

Checks, in order: the idempotency record, the product, the variant, the
offer (stream live and product in its lineup, or a link/showcase sale), the price (deal price
while the deal is open, not exhausted and not below the brand's floor), the buyer's limits,
the stock.

A replay buy (channel `replay`, docs/checkout.md "Buying from a replay") is a sale from an
ended show's recording: the show must be `ended` (else `not_a_replay`), the product still in
its lineup (its offer record), the price today's list price (a deal of the show never
applies, nor its cap), the limits and stock as any buy; the show's creator is credited as
for a live sale.

Limits: the brand's `max_per_buyer` counts every unit a buyer holds or bought of the product,
whatever the channel (every stream, link, showcase, cart, waitlist); a deal's own per-buyer
limit counts its deal units and is never above the brand's. Then it moves `qty` from avail to
held, writes the order (with the product's title of the moment: a receipt shows what was
bought), the outbox event (with the units of the variant left: the stock webhooks), the
expiry entry and the idempotency record.

Safe to run twice: the idempotency record is written in the same atomic step as the
decrement, so a re-run (redis-py retrying after a lost reply) only replays the stored answer.

KEYS[1] product hash      KEYS[2] stock hash        KEYS[3] offers hash
KEYS[4] bought hash ('b:<buyer>' every unit, 'deal:<id>:<buyer>' deal units)
KEYS[5] idempotency record
KEYS[6] order hash        KEYS[7] outbox stream     KEYS[8] expiry sorted set
KEYS[9] invited creators set
KEYS[10] (channel auction) the product's lot records (auction_lot.lua)
ARGV[1] buyer id          ARGV[2] request fingerprint
ARGV[3] stream id or ''   ARGV[4] variant           ARGV[5] quantity
ARGV[6] new order id      ARGV[7] hold in ms        ARGV[8] idempotency TTL in s
ARGV[9] link creator or '' ARGV[10] link code or '' ARGV[11] expected unit price or ''
ARGV[12] payment token or ''  ARGV[13] channel: stream | replay | link | showcase | waitlist | auction
ARGV[14] outbox max length (approximate trim)
ARGV[15] 'paying' when the caller pays at once (the one-tap buy): the order starts claimed
         (see checkout/order_states.py), its hold (ARGV[7]) the window to pay in;
         else 'reserved'
ARGV[16] (channel auction) the lot id   ARGV[17] (channel auction) the hammer price
ARGV[18] the buyer's picture's delay behind the room, ms (0: none; bounded by the caller):
         a deal is open for this buyer while it was open that long ago, so a viewer whose
         player is seconds behind gets the window their screen shows

An auction's order (docs/auctions.md, "The charge") is the sale of its lot: the unit comes
from the lot (lot:<v> -> held:<v>, the lot record now names the order), at the auction's
price, attributed to the show's creator (ARGV[9]); no offer, deal or per-buyer limit
applies (the winner bought that one unit under the auction's own rules).

Reply: a JSON string.
  {"r":"ok","order":{...}}                a new reservation
  {"r":"rejected","code":"...",...}       a refusal (stored: the same key replays it)
  {"r":"replay","stored":{...}}           the key was seen with the same fingerprint
  {"r":"conflict"}                        the key was seen with a different fingerprint
]]

local stored = redis.call('GET', KEYS[5])
if stored then
  local rec = cjson.decode(stored)
  if rec.fp ~= ARGV[2] then
    return cjson.encode({r = 'conflict'})
  end
  return cjson.encode({r = 'replay', stored = rec.reply})
end

local buyer, stream, variant = ARGV[1], ARGV[3], ARGV[4]
local qty = tonumber(ARGV[5])
local order_id, channel = ARGV[6], ARGV[13]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = now - tonumber(ARGV[18] or '0')  -- the room's moment on the buyer's screen

local function finish(reply)
  redis.call('SET', KEYS[5], cjson.encode({fp = ARGV[2], reply = reply}), 'EX', tonumber(ARGV[8]))
  return cjson.encode(reply)
end

local function reject(code, extra)
  local reply = extra or {}
  reply.r = 'rejected'
  reply.code = code
  return finish(reply)
end

local p = redis.call('HMGET', KEYS[1], 'status', 'price_minor', 'currency', 'brand_id',
  'commission_bps', 'commission_mode', 'max_per_buyer', 'deal_floor_minor', 'title', 'variants')
if not p[1] then return reject('product_not_found') end
if p[1] ~= 'active' then return reject('product_unavailable') end
local price, currency, brand = tonumber(p[2]), p[3], p[4]
local commission_bps, commission_mode = tonumber(p[5]), p[6]
local limit = tonumber(p[7]) or 0
-- No floor set: the brand allows no deal below its regular price.
local floor = tonumber(p[8]) or price
local deal_limit = 0

local avail = tonumber(redis.call('HGET', KEYS[2], 'avail:' .. variant))
if not avail then return reject('variant_not_found') end

local creator, link = ARGV[9], ARGV[10]
local deal_price = false
local lot = nil
if channel == 'auction' then
  local raw = redis.call('HGET', KEYS[10], ARGV[16])
  lot = raw and cjson.decode(raw) or nil
  if not lot or lot.state ~= 'held' or lot.variant ~= variant or qty ~= 1 then
    return reject('lot_unavailable')
  end
  price = tonumber(ARGV[17])
elseif channel == 'stream' then
  local raw = redis.call('HGET', KEYS[3], stream)
  if not raw then return reject('not_offered') end
  local offer = cjson.decode(raw)
  if offer.state ~= 'live' then return reject('stream_not_live') end
  creator, link = offer.creator, ''
  local deal = offer.deal
  if type(deal) == 'table' and seen >= deal.opens_ms and seen < deal.closes_ms
      and deal.price_minor >= floor and deal.price_minor < price then
    local dealsold = tonumber(redis.call('HGET', KEYS[3], 'dealsold:' .. stream) or '0')
    local left = deal.cap - dealsold
    if left > 0 then
      if qty > left then return reject('deal_quantity_exceeded', {left = left}) end
      price = deal.price_minor
      deal_limit = deal.per_buyer_limit
      if limit > 0 and limit < deal_limit then deal_limit = limit end
      deal_price = tostring(deal.id)
    end
  end
elseif channel == 'replay' then
  local raw = redis.call('HGET', KEYS[3], stream)
  if not raw then return reject('not_offered') end
  local offer = cjson.decode(raw)
  if offer.state ~= 'ended' then return reject('not_a_replay', {state = offer.state}) end
  creator, link = offer.creator, ''
end

if ARGV[11] ~= '' and tonumber(ARGV[11]) ~= price then
  return reject('price_changed', {unit_price_minor = price})
end

local buyer_field = 'b:' .. buyer
local already = tonumber(redis.call('HGET', KEYS[4], buyer_field) or '0')
if limit > 0 and not lot and already + qty > limit then
  return reject('limit_reached', {limit = limit, bought = already})
end
-- Deal units have a limit of their own: units bought at the regular price do not use it up.
local deal_field = deal_price and ('deal:' .. deal_price .. ':' .. buyer)
if deal_field then
  local dealt = tonumber(redis.call('HGET', KEYS[4], deal_field) or '0')
  if dealt + qty > deal_limit then
    return reject('limit_reached', {limit = deal_limit, bought = dealt})
  end
end

if not lot and avail < qty then
  if avail == 0 then return reject('sold_out') end
  return reject('insufficient_stock', {available = avail})
end

if creator ~= '' and commission_mode == 'invited'
    and redis.call('SISMEMBER', KEYS[9], creator) == 0 then
  commission_bps = 0
end
if creator == '' then commission_bps = 0 end

redis.call('HINCRBY', KEYS[2], (lot and 'lot:' or 'avail:') .. variant, -qty)
redis.call('HINCRBY', KEYS[2], 'held:' .. variant, qty)
if lot then
  lot.state, lot.order = 'order', order_id
  redis.call('HSET', KEYS[10], ARGV[16], cjson.encode(lot))
  avail = avail + qty  -- the outbox's `left` below: the lot was never for sale
end
redis.call('HINCRBY', KEYS[4], buyer_field, qty)
if deal_field then redis.call('HINCRBY', KEYS[4], deal_field, qty) end
if deal_price then redis.call('HINCRBY', KEYS[3], 'dealsold:' .. stream, qty) end

local amount = price * qty
-- Integer commission, rounded down: the ledger adds up to the cent (docs/checkout.md).
-- Split so no intermediate passes 2^53 (amount * bps alone could): floor(a*b/10^4) ==
-- floor(a/10^4)*b + floor((a mod 10^4)*b/10^4), each term exact in a double.
local commission = math.floor(amount / 10000) * commission_bps
  + math.floor((amount % 10000) * commission_bps / 10000)
local expires = now + tonumber(ARGV[7])
local state = ARGV[15] == 'paying' and 'paying' or 'reserved'
-- The variant's name as the buyer saw it ("M / Red"), kept with the order like its title.
local variant_name = ''
if p[10] then
  for _, v in ipairs(cjson.decode(p[10])) do
    if v.id == variant then variant_name = v.name or '' break end
  end
end
local order = {
  id = order_id, product = string.match(KEYS[1], '{p:(.-)}'), title = p[9] or '',
  variant = variant, variant_name = variant_name, qty = qty,
  buyer = buyer, stream = stream, channel = channel, unit_price_minor = price,
  amount_minor = amount, currency = currency, brand = brand, creator = creator, link = link,
  commission_bps = commission_bps, commission_minor = commission,
  deal = deal_price or '', state = state, reason = '', auction = lot and ARGV[16] or nil,
  created_ms = now, updated_ms = now, expires_ms = expires, payment_token = ARGV[12],
  -- why a deal price was given after the room's close: the buyer's screen was this far behind
  viewer_delay_ms = (deal_price and seen ~= now) and (now - seen) or nil,
}
local fields = {}
for k, v in pairs(order) do
  fields[#fields + 1] = k
  fields[#fields + 1] = tostring(v)
end
redis.call('HSET', KEYS[6], unpack(fields))
redis.call('ZADD', KEYS[8], expires, order_id)
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[14], '*', 'type', 'order.reserved',
  'order', order_id, 'state', state, 'at', now, 'left', avail - qty)
order.payment_token = nil
finish({r = 'ok', order_id = order_id})
return cjson.encode({r = 'ok', order = order})
