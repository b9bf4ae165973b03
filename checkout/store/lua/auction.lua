--[[ auction.lua: every change of a live auction in one step of its stream's slot (docs/
auctions.md): create, open, bid, close, cancel. A bid is checked (the clock, the bidder,
the amount), resolved against the standing max bid the way eBay's and Whatnot's proxy
bidding do, logged and made public, atomically and once per bid id. Creating, opening and
closing are sequenced events; a bid is not (one frame per bid per viewer put a busy room
minutes behind): it writes the public fields to KEYS[9], which the hub sends coalesced
each tick.

KEYS[1] auction hash   KEYS[2] stream sequence   KEYS[3] stream event log
KEYS[4] bid log (stream: at_ms, bid_id, bidder, max_minor, outcome, price_minor, and for an
        accepted bid `tick`, the public fields KEYS[9] got: the replay re-runs them)   KEYS[5] max bids (hash bidder -> max minor)
KEYS[6] bid ids (hash bid id -> reply JSON)   KEYS[7] paddles (hash bidder -> n)
KEYS[8] the show's chat bans (hash chat user -> until ms, 0 for good)
KEYS[9] the show's auction as viewers see it (string, JSON: the public fields after the
        latest accepted bid; the hub's tick reads it, see docs/auctions.md)
KEYS[10] when each max was set (hash bidder -> the auction's bid count with that bid): of
        two equal maxes the earlier one leads, and is the runner-up
ARGV[1] op: create | open | bid | close | cancel | second_chance | accept | lapse | settle
ARGV[2] the op's argument (JSON)
ARGV[3] now (ms)   ARGV[4] event log max length   ARGV[5] events pub/sub channel
ARGV[6] bid log max length

create {id, product, variant, currency, start_minor, reserve_minor, increments
        ([[below_minor or -1, step_minor], ...], ascending; -1: no upper bound),
        format: standard | sudden_death, extend_ms, duration_ms, seller, open: bool}
bid {bidder, user (chat user), bid_id, max_minor}
After a `sold` close (the money, live/auctions/desk.py):
settle {lot: held | returned | sold, order?, buyer?}: records what became of the lot
second_chance {window_ms}: once, the winner's charge failed: the runner-up (the highest
  other max that meets the reserve; of equal ones the earlier set, KEYS[10]) is
  offered the lot at their max until now + window_ms (`auction.second_chance` event), or
  nobody is (second: false)
accept {bidder}: the runner-up takes the offer before it lapses (once; the same again is ok)
lapse: an offer not taken by its deadline lapses
Reply (JSON): {"r":"ok",...} | {"r":"refused","code":"...","detail":"...",...}
  | {"r":"missing"} (no such auction)

The price is the lowest that beats the second-highest max: the high bidder pays at most one
increment over the runner-up, never more than their own max; a tie goes to the earlier max.
A met reserve lifts the price to the reserve. Standard auctions extend the clock to
`extend_ms` from a bid made in their last `extend_ms`; sudden death never extends. Nothing
is accepted at or after the deadline (server time: the latest ARGV[3] any bid or close
brought, see `clock_ms`).
]]

local op, arg, now = ARGV[1], cjson.decode(ARGV[2]), tonumber(ARGV[3])

local function refused(code, detail, extra)
  local reply = {r = 'refused', code = code, detail = detail}
  for k, v in pairs(extra or {}) do reply[k] = v end
  return cjson.encode(reply)
end

if op == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return refused('exists', 'an auction with this id exists')
  end
  redis.call('HSET', KEYS[1], 'id', arg.id, 'product', arg.product, 'variant', arg.variant,
    'currency', arg.currency, 'start_minor', arg.start_minor, 'reserve_minor', arg.reserve_minor,
    'increments', cjson.encode(arg.increments), 'format', arg.format, 'extend_ms', arg.extend_ms,
    'duration_ms', arg.duration_ms, 'seller', arg.seller, 'state', 'scheduled', 'bids', 0,
    'price_minor', 0, 'created_ms', now)
  emit('auction.created', '"auction":' .. cjson.encode(arg.id) .. ',"product":' ..
    cjson.encode(arg.product) .. ',"start_minor":' .. arg.start_minor)
  if not arg.open then return cjson.encode({r = 'ok', state = 'scheduled'}) end
  op = 'open'
end

if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({r = 'missing'}) end
local a = {}
do
  local raw = redis.call('HGETALL', KEYS[1])
  for i = 1, #raw, 2 do a[raw[i]] = raw[i + 1] end
end
local id = a.id

-- The auction's clock never runs backwards: a caller stamps `now` before it waits for a
-- connection (and nodes' clocks differ by their NTP error), so a call stamped earlier can
-- run after one stamped later. Each bid or close moves the auction's clock to the latest
-- `now` seen; so once a bid was refused as late, no bid is accepted before the deadline.
if a.clock_ms and tonumber(a.clock_ms) > now then now = tonumber(a.clock_ms) end
if op == 'bid' or op == 'close' then redis.call('HSET', KEYS[1], 'clock_ms', now) end

-- The step above `price`: the band of the increment table the price falls in.
local function step(price)
  for _, band in ipairs(cjson.decode(a.increments)) do
    if band[1] < 0 or price < band[1] then return band[2] end
  end
  return 1
end

-- The public state of the auction, for events and replies.
local function public()
  local high = a.high and a.high ~= '' and redis.call('HGET', KEYS[7], a.high) or nil
  local price = tonumber(a.price_minor)
  local next_min = tonumber(a.bids) == 0 and tonumber(a.start_minor) or price + step(price)
  return '"auction":' .. cjson.encode(id) .. ',"state":' .. cjson.encode(a.state) ..
    ',"price_minor":' .. price .. ',"next_minor":' .. next_min ..
    ',"high_paddle":' .. (high or 'null') .. ',"bids":' .. a.bids ..
    ',"ends_ms":' .. (a.ends_ms or 'null') ..
    ',"reserve_met":' .. tostring(tonumber(a.reserve_minor) == 0 or
      (tonumber(a.bids) > 0 and price >= tonumber(a.reserve_minor)))
end

if op == 'open' then
  if a.state ~= 'scheduled' then return refused('not-scheduled', 'the auction is ' .. a.state) end
  a.state, a.ends_ms = 'open', tostring(now + tonumber(a.duration_ms))
  -- The caller took the lot (a unit on hold in the product's slot) before opening.
  redis.call('HSET', KEYS[1], 'state', a.state, 'opened_ms', now, 'ends_ms', a.ends_ms,
    'lot', 'held')
  local seq = emit('auction.opened', public())
  return '{"r":"ok","seq":' .. seq .. ',' .. public() .. '}'
end

if op == 'cancel' then
  if a.state ~= 'scheduled' and a.state ~= 'open' then
    return refused('not-open', 'the auction is ' .. a.state)
  end
  if tonumber(a.bids) > 0 then return refused('has-bids', 'an auction with bids cannot be cancelled') end
  a.state = 'cancelled'
  redis.call('HSET', KEYS[1], 'state', a.state, 'closed_ms', now)
  local seq = emit('auction.closed', public() .. ',"result":"cancelled"')
  return '{"r":"ok","seq":' .. seq .. ',"result":"cancelled",' .. public() .. '}'
end

if op == 'close' then
  if a.state == 'closed' or a.state == 'cancelled' then
    return '{"r":"ok","already":true,"result":' .. cjson.encode(a.result or 'cancelled') ..
      ',"winner":' .. cjson.encode(a.winner or '') .. ',' .. public() .. '}'
  end
  if a.state ~= 'open' or now < tonumber(a.ends_ms) then
    return refused('not-due', 'the auction ends at ' .. (a.ends_ms or 'its opening'))
  end
  local sold = tonumber(a.bids) > 0 and tonumber(a.price_minor) >= tonumber(a.reserve_minor)
  a.state, a.result = 'closed', sold and 'sold' or (tonumber(a.bids) > 0 and 'reserve-not-met' or 'no-bids')
  a.winner = sold and a.high or ''
  redis.call('HSET', KEYS[1], 'state', a.state, 'result', a.result, 'winner', a.winner, 'closed_ms', now)
  local seq = emit('auction.closed', public() .. ',"result":' .. cjson.encode(a.result))
  return '{"r":"ok","seq":' .. seq .. ',"result":' .. cjson.encode(a.result) ..
    ',"winner":' .. cjson.encode(a.winner) .. ',' .. public() .. '}'
end

-- The money after a sale: what the desk did with the lot, and the second chance.
local function money()
  return '{"r":"ok","result":' .. cjson.encode(a.result or '') .. ',"winner":' ..
    cjson.encode(a.winner or '') .. ',"price_minor":' .. a.price_minor .. ',"lot":' ..
    cjson.encode(a.lot or '') .. ',"order":' .. cjson.encode(a.order or '') ..
    ',"second":' .. cjson.encode(a.second or '') .. ',"second_state":' ..
    cjson.encode(a.second_state or '') .. ',"second_minor":' .. (a.second_minor or 0) ..
    ',"second_until_ms":' .. (a.second_until_ms or 0) .. '}'
end

if op == 'settle' then
  a.lot, a.order, a.buyer = arg.lot, arg.order or '', arg.buyer or ''
  redis.call('HSET', KEYS[1], 'lot', a.lot, 'order', a.order, 'buyer', a.buyer)
  return money()
end

if op == 'second_chance' then
  if a.result ~= 'sold' then return refused('not-sold', 'the auction did not sell') end
  if a.second_state and a.second_state ~= '' then return money() end
  -- The highest other max; of equal ones the earlier set (its bid count, KEYS[10]; an
  -- auction from before that was kept has none: then the lower paddle, the earlier bidder).
  local best, best_max, best_paddle, best_at = nil, 0, 0, 0
  local reserve = tonumber(a.reserve_minor)
  local raw = redis.call('HGETALL', KEYS[5])
  for i = 1, #raw, 2 do
    local bidder, max = raw[i], tonumber(raw[i + 1])
    local paddle = tonumber(redis.call('HGET', KEYS[7], bidder) or '0')
    local at = tonumber(redis.call('HGET', KEYS[10], bidder) or '0')
    local earlier = at < best_at or (at == best_at and paddle < best_paddle)
    if bidder ~= a.winner and max >= reserve and
        (max > best_max or (max == best_max and earlier)) then
      best, best_max, best_paddle, best_at = bidder, max, paddle, at
    end
  end
  if not best then
    a.second_state = 'none'
    redis.call('HSET', KEYS[1], 'second_state', 'none')
    return money()
  end
  a.second, a.second_minor, a.second_state = best, tostring(best_max), 'offered'
  a.second_until_ms = tostring(now + tonumber(arg.window_ms))
  redis.call('HSET', KEYS[1], 'second', best, 'second_minor', best_max, 'second_state',
    'offered', 'second_until_ms', a.second_until_ms)
  emit('auction.second_chance', '"auction":' .. cjson.encode(id) .. ',"paddle":' ..
    best_paddle .. ',"price_minor":' .. best_max .. ',"until_ms":' .. a.second_until_ms)
  return money()
end

if op == 'accept' then
  if a.second ~= arg.bidder then return refused('no-offer', 'no second-chance offer for you') end
  if a.second_state == 'accepted' then return money() end
  if a.second_state ~= 'offered' or now >= tonumber(a.second_until_ms) then
    return refused('offer-lapsed', 'the second-chance offer is over')
  end
  a.second_state = 'accepted'
  redis.call('HSET', KEYS[1], 'second_state', 'accepted', 'accepted_ms', now)
  return money()
end

if op == 'lapse' then
  if a.second_state == 'offered' and now >= tonumber(a.second_until_ms) then
    a.second_state = 'lapsed'
    redis.call('HSET', KEYS[1], 'second_state', 'lapsed')
  end
  return money()
end

if op ~= 'bid' then return refused('unknown-op', op) end

-- A bid id answers once: the same bid again is the same answer, another bid under it a 409.
local fingerprint = arg.bidder .. '|' .. arg.max_minor
local seen = redis.call('HGET', KEYS[6], arg.bid_id)
if seen then
  local before = cjson.decode(seen)
  if before.fingerprint ~= fingerprint then
    return refused('bid-id-reused', 'this bid id was used for another bid')
  end
  return seen
end

local tick = nil  -- an accepted bid's public fields, as KEYS[9] has them: the replay's
local function answer(reply)
  reply.fingerprint, reply.bid_id = fingerprint, arg.bid_id
  local encoded = cjson.encode(reply)
  redis.call('HSET', KEYS[6], arg.bid_id, encoded)
  local entry = {'at_ms', now, 'bid_id', arg.bid_id, 'bidder', arg.bidder,
    'max_minor', arg.max_minor, 'outcome', reply.outcome or reply.code,
    'price_minor', a.price_minor}
  if tick then entry[#entry + 1], entry[#entry + 2] = 'tick', tick end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', tonumber(ARGV[6]), '*', unpack(entry))
  return encoded
end
local function refuse(code, detail, extra)
  local reply = {r = 'refused', code = code, detail = detail}
  for k, v in pairs(extra or {}) do reply[k] = v end
  return answer(reply)
end

if a.state ~= 'open' and a.state ~= 'scheduled' then
  return refuse('closed', 'the auction is ' .. a.state)
end
if a.state == 'open' and now >= tonumber(a.ends_ms) then
  return refuse('closed', 'the auction ended')
end
if arg.bidder == a.seller then return refuse('seller', 'the seller cannot bid') end
local ban = redis.call('HGET', KEYS[8], arg.user)
if ban and (tonumber(ban) == 0 or tonumber(ban) > now) then
  return refuse('banned', 'you are banned from this show')
end

local max = tonumber(arg.max_minor)
local price, bids = tonumber(a.price_minor), tonumber(a.bids)
local high = (a.high and a.high ~= '') and a.high or nil
local high_max = high and tonumber(redis.call('HGET', KEYS[5], high)) or 0
local reserve = tonumber(a.reserve_minor)
local minimum = bids == 0 and tonumber(a.start_minor) or price + step(price)
local outcome

if high == arg.bidder then
  if max <= high_max then
    return refuse('not-higher', 'your max bid is already ' .. high_max, {max_minor = high_max})
  end
  redis.call('HSET', KEYS[5], arg.bidder, max)
  redis.call('HSET', KEYS[10], arg.bidder, bids + 1)
  high_max, outcome = max, 'raised'
else
  if max < minimum then
    return refuse('too-low', 'the least bid now is ' .. minimum, {next_minor = minimum})
  end
  local own = tonumber(redis.call('HGET', KEYS[5], arg.bidder) or '0')
  if max > own then
    redis.call('HSET', KEYS[5], arg.bidder, max)
    redis.call('HSET', KEYS[10], arg.bidder, bids + 1)
  end
  if redis.call('HEXISTS', KEYS[7], arg.bidder) == 0 then
    redis.call('HSET', KEYS[7], arg.bidder, redis.call('HLEN', KEYS[7]) + 1)
  end
  if not high then
    price, high, high_max, outcome = minimum, arg.bidder, max, 'high'
  elseif max > high_max then
    price = math.min(max, high_max + step(high_max))
    high, high_max, outcome = arg.bidder, max, 'high'
  else  -- the standing max holds (a tie goes to the earlier)
    price, outcome = math.min(high_max, max + step(max)), 'outbid'
  end
end
if reserve > 0 and high_max >= reserve and price < reserve then price = reserve end

bids = bids + 1
a.price_minor, a.bids, a.high = tostring(price), tostring(bids), high
local fields = {'price_minor', price, 'bids', bids, 'high', high}
if a.state == 'open' and a.format == 'standard' then
  local extend = tonumber(a.extend_ms)
  if tonumber(a.ends_ms) - now < extend then
    a.ends_ms = tostring(now + extend)
    fields[#fields + 1], fields[#fields + 2] = 'ends_ms', a.ends_ms
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
tick = '{' .. public() .. '}'
redis.call('SET', KEYS[9], tick)
local paddle = tonumber(redis.call('HGET', KEYS[7], arg.bidder))
return answer({r = 'ok', outcome = outcome, bids = bids, paddle = paddle,
               high = high == arg.bidder, price_minor = price, ends_ms = tonumber(a.ends_ms),
               max_minor = tonumber(redis.call('HGET', KEYS[5], arg.bidder))})
