--[[ stock.lua: set or adjust a variant's available stock, with an audit entry.

`total` counts every unit ever made available (initial + restocked - removed), so at any
moment total = avail + held + sold for each variant.

Idempotent by operation id: a retried call replays the first answer instead of adjusting twice;
the same operation id with another variant, mode or value is a conflict, not a replay.

KEYS[1] stock hash   KEYS[2] audit stream   KEYS[3] operation record
ARGV[1] variant   ARGV[2] mode: set | adjust   ARGV[3] value (set) or delta (adjust)
ARGV[4] who       ARGV[5] why                  ARGV[6] audit max length
ARGV[7] operation record TTL in s   ARGV[8] kind: received | returned | damaged | lost
        | correction | initial | other (what the change was for; the audit keeps it)

Reply (JSON): {"r":"ok","avail":n,"delta":d} | {"r":"rejected","code":"variant_not_found"}
              | {"r":"rejected","code":"negative_stock","avail":n} | {"r":"conflict"}
]]

local request = ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3]
local seen = redis.call('GET', KEYS[3])
if seen then
  local record = cjson.decode(seen)
  if record.request ~= nil and record.request ~= request then
    return cjson.encode({r = 'conflict'})
  end
  record.request = nil
  return cjson.encode(record)
end
local function done(reply)
  reply.request = request
  redis.call('SET', KEYS[3], cjson.encode(reply), 'EX', tonumber(ARGV[7]))
  reply.request = nil
  return cjson.encode(reply)
end

local variant = ARGV[1]
local avail = tonumber(redis.call('HGET', KEYS[1], 'avail:' .. variant))
if not avail then return cjson.encode({r = 'rejected', code = 'variant_not_found'}) end
local delta
if ARGV[2] == 'set' then
  delta = tonumber(ARGV[3]) - avail
else
  delta = tonumber(ARGV[3])
end
if avail + delta < 0 then
  return done({r = 'rejected', code = 'negative_stock', avail = avail})
end
redis.call('HINCRBY', KEYS[1], 'avail:' .. variant, delta)
redis.call('HINCRBY', KEYS[1], 'total:' .. variant, delta)
local t = redis.call('TIME')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'variant', variant, 'delta', delta,
  'avail', avail + delta, 'who', ARGV[4], 'why', ARGV[5], 'at', t[1], 'kind', ARGV[8] or 'other')
return done({r = 'ok', avail = avail + delta, delta = delta})
