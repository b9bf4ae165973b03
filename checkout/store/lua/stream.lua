--[[ stream.lua: one change to a live stream, checked, written and announced atomically in
the stream's slot ({s:<id>}): two hosts pinning at once (REST and socket, two nodes) can't
lose an update or pass the pin cap, and no change is stored without its event (`emit`, from event_lib.lua in front).

Every change bumps the stream's `rev`; the offers the buy script reads (in each product's
slot, so not writable here) are synced after it by offer_sync.lua, newest rev wins.

KEYS[1] stream hash   KEYS[2] sequence counter   KEYS[3] event log (entry id "<seq>-0")
ARGV[1] op: pin | unpin | lineup | deal | end_deal | state | ingest | cover
ARGV[2] the op's argument as JSON:
        pin/unpin/end_deal {product_id}   lineup {lineup: [...]}
        deal {the deal record}   state {action, rules: 'from=to;...'}   ingest {ingest}
        cover {cover_url: a URL or a /media/images/ path; '' removes it}
ARGV[3] now (ms)   ARGV[4] event log max length (approximate)   ARGV[5] pub/sub channel
ARGV[6] most products pinned at once (pin)   ARGV[7] most product codes a show hands out (lineup)

Product codes (comment-to-buy, docs/chat.md): `codes` {product: n} and `next_code`; each
product gets the next number the first time it joins the lineup, and keeps it for the show.

Reply (JSON): {"r":"ok","seq":n,"removed":[...]}  (seq 0: nothing changed, nothing said)
  | {"r":"refused","status":409|404,"kind":"...","detail":"..."} | {"r":"missing"}
  | {"r":"illegal","state":s}   (state: the lifecycle table has no such move)
]]

local op, arg = ARGV[1], cjson.decode(ARGV[2])
local now = tonumber(ARGV[3])

-- cjson writes an empty table as {}: lists go through this so [] stays [].
local function list(t)
  if #t == 0 then return '[]' end
  return cjson.encode(t)
end

local function refuse(status, kind, detail)
  return cjson.encode({r = 'refused', status = status, kind = kind, detail = detail})
end

local function done(seq, removed)
  if seq > 0 then redis.call('HINCRBY', KEYS[1], 'rev', 1) end
  return '{"r":"ok","seq":' .. seq .. ',"removed":' .. list(removed or {}) .. '}'
end

local s = redis.call('HMGET', KEYS[1], 'state', 'lineup', 'pinned', 'deals')
local state = s[1]
if not state then return cjson.encode({r = 'missing'}) end
local lineup, pinned = cjson.decode(s[2] or '[]'), cjson.decode(s[3] or '[]')
local deals = cjson.decode(s[4] or '{}')

local function contains(t, x)
  for _, v in ipairs(t) do if v == x then return true end end
  return false
end

local function without(t, x)
  local out = {}
  for _, v in ipairs(t) do if v ~= x then out[#out + 1] = v end end
  return out
end

if op == 'state' then
  local target = nil
  for src, dst in string.gmatch(arg.rules, '([%w_]+)=([%w_]+)') do
    if src == state then target = dst end
  end
  if not target then return cjson.encode({r = 'illegal', state = state}) end
  local fields = {'state', target}
  if target == 'live' then
    fields[#fields + 1] = 'started_ms'
    fields[#fields + 1] = now
  elseif target == 'ended' or target == 'cancelled' then
    fields[#fields + 1] = 'ended_ms'
    fields[#fields + 1] = now
    fields[#fields + 1] = 'pinned'
    fields[#fields + 1] = '[]'
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  return done(emit('stream.state', '"state":' .. cjson.encode(target)))
end

if op == 'ingest' then
  redis.call('HSET', KEYS[1], 'ingest', arg.ingest)
  return done(emit('stream.ingest', '"ingest":' .. cjson.encode(arg.ingest)))
end

if op == 'lineup' then
  if state == 'ended' or state == 'cancelled' then
    return refuse(409, 'stream-over', 'the stream is over')
  end
  local removed, kept = {}, {}
  for _, p in ipairs(lineup) do
    if not contains(arg.lineup, p) then
      removed[#removed + 1] = p
      -- Its deal goes with it: back in the lineup, it starts without one (its unit count
      -- was withdrawn with the offer, so the old deal would sell its cap a second time).
      deals[p] = nil
    end
  end
  for _, p in ipairs(pinned) do
    if contains(arg.lineup, p) then kept[#kept + 1] = p end
  end
  local c = redis.call('HMGET', KEYS[1], 'codes', 'next_code')
  local codes, next_code = cjson.decode(c[1] or '{}'), tonumber(c[2] or '1')
  -- A stream from before codes: its lineup gets 1, 2, 3... in order, as it reads them.
  for _, p in ipairs(c[1] and {} or lineup) do
    codes[p] = next_code
    next_code = next_code + 1
  end
  for _, p in ipairs(arg.lineup) do
    if codes[p] == nil then
      if next_code > tonumber(ARGV[7]) then
        return refuse(409, 'too-many-codes', 'a show hands out at most ' .. ARGV[7] ..
          ' product codes')
      end
      codes[p] = next_code
      next_code = next_code + 1
    end
  end
  local encoded_codes = next(codes) == nil and '{}' or cjson.encode(codes)
  redis.call('HSET', KEYS[1], 'lineup', list(arg.lineup), 'pinned', list(kept),
    'deals', next(deals) == nil and '{}' or cjson.encode(deals), 'codes', encoded_codes,
    'next_code', next_code)
  return done(emit('lineup.changed', '"lineup":' .. list(arg.lineup) .. ',"pinned":' ..
    list(kept) .. ',"codes":' .. encoded_codes), removed)
end

-- The show's picture in listings, while it can still be listed (scheduled or live): an
-- ended show is in no listing, and its cover stays what its audience saw.
if op == 'cover' then
  if state == 'ended' or state == 'cancelled' then
    return refuse(409, 'stream-over', 'the stream is over')
  end
  if (redis.call('HGET', KEYS[1], 'cover_url') or '') == arg.cover_url then return done(0) end
  if arg.cover_url == '' then
    redis.call('HDEL', KEYS[1], 'cover_url')
  else
    redis.call('HSET', KEYS[1], 'cover_url', arg.cover_url)
  end
  return done(emit('stream.cover', '"cover_url":' .. cjson.encode(arg.cover_url)))
end

-- Pins and deals happen only while the stream is live.
if state ~= 'live' then
  return refuse(409, 'stream-not-live', 'the stream is ' .. state)
end
local product = arg.product_id

if op == 'pin' then
  if not contains(lineup, product) then
    return refuse(409, 'not-in-lineup', product .. " is not in this stream's lineup")
  end
  if contains(pinned, product) then return done(0) end
  local cap = tonumber(ARGV[6])
  if #pinned >= cap then
    return refuse(409, 'too-many-pins', 'at most ' .. cap .. ' products can be pinned at once')
  end
  pinned[#pinned + 1] = product
  redis.call('HSET', KEYS[1], 'pinned', list(pinned))
  return done(emit('pin', '"product_id":' .. cjson.encode(product) .. ',"pinned":' .. list(pinned)))
end

if op == 'unpin' then
  if not contains(pinned, product) then return done(0) end
  pinned = without(pinned, product)
  redis.call('HSET', KEYS[1], 'pinned', list(pinned))
  return done(emit('unpin', '"product_id":' .. cjson.encode(product) .. ',"pinned":' .. list(pinned)))
end

if op == 'deal' then
  if not contains(lineup, product) then
    return refuse(409, 'not-in-lineup', product .. ' is not in the lineup')
  end
  deals[product] = arg
  redis.call('HSET', KEYS[1], 'deals', cjson.encode(deals))
  return done(emit('deal.scheduled', string.sub(ARGV[2], 2, -2)))
end

if op == 'end_deal' then
  if deals[product] == nil then return refuse(404, 'not-found', 'no deal on ' .. product) end
  deals[product] = nil
  local encoded = next(deals) == nil and '{}' or cjson.encode(deals)
  redis.call('HSET', KEYS[1], 'deals', encoded)
  return done(emit('deal.closed', '"product_id":' .. cjson.encode(product)))
end

return cjson.encode({r = 'refused', status = 400, kind = 'unknown-op', detail = op})
