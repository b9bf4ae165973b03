--[[ offer_sync.lua: write one stream's offer into a product's slot, unless a newer one is
there. The buy script reads only the product's slot, so each stream change (stream.lua,
which bumps the stream's `rev`) is copied here after it; two changes synced out of order
converge on the newer. A new deal (another deal id) starts its own count of deal units.

KEYS[1] offers hash (product slot): <stream> -> offer JSON, rev:<stream> -> its rev,
        dealsold:<stream> -> units sold of the current deal
ARGV[1] stream id   ARGV[2] the stream's rev   ARGV[3] offer JSON, or '' to withdraw it
Reply: 1 written, 0 a newer rev was there already.
]]

local stream, rev = ARGV[1], tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'rev:' .. stream) or '-1') >= rev then return 0 end

local function deal_id(raw)
  if not raw or raw == '' then return '' end
  local offer = cjson.decode(raw)
  if type(offer.deal) == 'table' then return tostring(offer.deal.id) end
  return ''
end

if deal_id(redis.call('HGET', KEYS[1], stream)) ~= deal_id(ARGV[3]) then
  redis.call('HDEL', KEYS[1], 'dealsold:' .. stream)
end
redis.call('HSET', KEYS[1], 'rev:' .. stream, rev)
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], stream)
else
  redis.call('HSET', KEYS[1], stream, ARGV[3])
end
return 1
