--[[ transition.lua: move one order to a new state, with its stock effect, exactly once.

The legal source states, their stock effects, the void debts and the deadline rules come
from checkout/order_states.py. Re-running a finished move is a no-op that answers "same",
so a retried call never releases or sells stock twice.

KEYS[1] order hash   KEYS[2] stock hash   KEYS[3] offers hash   KEYS[4] bought hash
KEYS[5] outbox stream   KEYS[6] expiry sorted set   KEYS[7] captures-owed sorted set
KEYS[8] voids-owed sorted set   KEYS[9] the product's auction lot records (auction_lot.lua)
ARGV[1] order id   ARGV[2] target state   ARGV[3] rules 'from=effect=debt;...'
        (debt 'void': the move records a void owed now, paid by the sweeper)
ARGV[4] reason     ARGV[5] extra fields as a JSON object (e.g. gateway_ref)
ARGV[6] outbox max length
ARGV[7] when moving to authorized: ms after which a capture is owed (0: none owed).
        The capture debt is written in the same step as the authorization, so a node
        that dies before capturing leaves it for the sweeper; leaving authorized clears it.
ARGV[8] deadline rule: '' | 'before' (only while now < expires_ms: the claim)
        | 'after' (only once now >= expires_ms: expiry)
ARGV[9] now in ms, or '' for the server's clock (the sweeper passes its own)
ARGV[10] when moving to paying: the payment window in ms; the order's deadline becomes
        now + window (also its score in the expiry index)

Reply (JSON): {"r":"ok","from":s,"order":{...}} | {"r":"same","order":{...}}
              | {"r":"illegal","state":s} | {"r":"missing"}
              | {"r":"early"|"late","state":s}   (the deadline rule refused the move)
]]

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return cjson.encode({r = 'missing'}) end
local target = ARGV[2]
local now
if ARGV[9] ~= '' then
  now = tonumber(ARGV[9])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local deadline = tonumber(redis.call('HGET', KEYS[1], 'expires_ms') or '0')
local late = ARGV[8] == 'before' and now >= deadline
if state == target then
  -- A payer retrying its own claim may go on only while the claim's window is open.
  if late then return cjson.encode({r = 'late', state = state}) end
  return cjson.encode({r = 'same', order = order_table()})
end

-- An auction's order that dies unpaid gives its unit back to the auction's lot, not to
-- stock: the desk offers it to the runner-up or returns it (docs/auctions.md).
local function back_to_lot()
  local o = redis.call('HMGET', KEYS[1], 'auction', 'variant', 'qty', 'buyer')
  if not o[1] or o[1] == '' then return false end
  local raw = redis.call('HGET', KEYS[9], o[1])
  local lot = raw and cjson.decode(raw) or nil
  if not lot or lot.state ~= 'order' or lot.order ~= ARGV[1] then return false end
  redis.call('HINCRBY', KEYS[2], 'held:' .. o[2], -tonumber(o[3]))
  redis.call('HINCRBY', KEYS[2], 'lot:' .. o[2], tonumber(o[3]))
  redis.call('HINCRBY', KEYS[4], 'b:' .. o[4], -tonumber(o[3]))
  lot.state, lot.order = 'held', nil
  redis.call('HSET', KEYS[9], o[1], cjson.encode(lot))
  return true
end

local effect, debt = nil, nil
for src, eff, owed in string.gmatch(ARGV[3], '([%w_]+)=([%w_]+)=([%w_]+)') do
  if src == state then effect, debt = eff, owed end
end
if not effect then return cjson.encode({r = 'illegal', state = state}) end
if late then return cjson.encode({r = 'late', state = state}) end
if ARGV[8] == 'after' and now < deadline then
  return cjson.encode({r = 'early', state = state})
end

if effect == 'sell' then
  local o = redis.call('HMGET', KEYS[1], 'variant', 'qty')
  redis.call('HINCRBY', KEYS[2], 'held:' .. o[1], -tonumber(o[2]))
  redis.call('HINCRBY', KEYS[2], 'sold:' .. o[1], tonumber(o[2]))
elseif effect == 'release' and not back_to_lot() then
  give_back('held:')
elseif effect == 'restore' then
  give_back('sold:')
end

local fields = {'state', target, 'reason', ARGV[4], 'updated_ms', now}
if target == 'paying' then
  deadline = now + tonumber(ARGV[10])
  fields[#fields + 1] = 'expires_ms'
  fields[#fields + 1] = deadline
end
local extra = cjson.decode(ARGV[5])
for k, v in pairs(extra) do
  fields[#fields + 1] = k
  fields[#fields + 1] = tostring(v)
end
redis.call('HSET', KEYS[1], unpack(fields))
-- The expiry index holds exactly the orders whose payment is pending (reserved, paying).
if target == 'paying' then
  redis.call('ZADD', KEYS[6], deadline, ARGV[1])
elseif state == 'reserved' or state == 'paying' then
  redis.call('ZREM', KEYS[6], ARGV[1])
end
if debt == 'void' then redis.call('ZADD', KEYS[8], now, ARGV[1]) end
if state == 'authorized' then redis.call('ZREM', KEYS[7], ARGV[1]) end
if target == 'authorized' and tonumber(ARGV[7]) > 0 then
  redis.call('ZADD', KEYS[7], ARGV[7], ARGV[1])
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', 'type', 'order.' .. target,
  'order', ARGV[1], 'state', target, 'from', state, 'at', now)
return cjson.encode({r = 'ok', from = state, order = order_table()})
