--[[ order_lib.lua: what transition.lua and after_sale.lua share about one order, put in
front of each by checkout/store/scripts.py so the rule is written once.

Both scripts take the same first keys:
KEYS[1] order hash   KEYS[2] stock hash   KEYS[3] offers hash   KEYS[4] bought hash
]]

-- The order as a table, without its payment token (never in a reply).
local function order_table()
  local flat = redis.call('HGETALL', KEYS[1])
  local o = {}
  for i = 1, #flat, 2 do o[flat[i]] = flat[i + 1] end
  o.payment_token = nil
  return o
end

-- Gives the order's units back to stock (from its `held:` or `sold:` count), to the buyer's
-- limit and to its deal's per-buyer limit. A unit of an earlier deal goes back to stock,
-- never to the current deal's count.
local function give_back(from_field)
  local o = redis.call('HMGET', KEYS[1], 'variant', 'qty', 'stream', 'buyer', 'deal')
  local variant, qty, stream, buyer, deal = o[1], tonumber(o[2]), o[3], o[4], o[5]
  redis.call('HINCRBY', KEYS[2], from_field .. variant, -qty)
  redis.call('HINCRBY', KEYS[2], 'avail:' .. variant, qty)
  redis.call('HINCRBY', KEYS[4], 'b:' .. buyer, -qty)
  if deal == nil or deal == '' then return end
  redis.call('HINCRBY', KEYS[4], 'deal:' .. deal .. ':' .. buyer, -qty)
  local raw = redis.call('HGET', KEYS[3], stream)
  if raw then
    local offer = cjson.decode(raw)
    if type(offer.deal) == 'table' and tostring(offer.deal.id) == deal then
      redis.call('HINCRBY', KEYS[3], 'dealsold:' .. stream, -qty)
    end
  end
end

