--[[ wallet.lua: one change to a buyer's wallet, atomically, in the buyer's slot ({u:<id>}).

The wallet is one hash: `address:<id>` and `card:<id>` hold an entry's JSON (with the
`added_ms` this script gives it), `default_address` and `default_card` the default of each
kind. Every change keeps this true: a kind's default is one of its entries, and a kind
with entries has one (the first entry becomes it; removing it promotes the newest left).

KEYS[1] wallet hash
ARGV[1] op: add | replace | remove | default
ARGV[2] kind: address | card
ARGV[3] the entry's id
ARGV[4] add, replace: the entry's JSON (replace keeps the old entry's `added_ms`)
ARGV[5] add: most entries of this kind
ARGV[6] add: '1' to make it the default
ARGV[7] add, card: its payment token; a card of that token in the wallet already is not
        added again: the reply names it (and it becomes the default if ARGV[6] says so)

Reply (JSON): {"r":"ok","id":s} | {"r":"exists","id":s} | {"r":"full","max":n}
              | {"r":"missing"}
]]

local op, kind, id = ARGV[1], ARGV[2], ARGV[3]
local prefix = kind .. ':'
local field = prefix .. id
local default_field = 'default_' .. kind

local function entries()
  local found = {}
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, #prefix) == prefix then
      found[#found + 1] = {id = string.sub(flat[i], #prefix + 1), entry = cjson.decode(flat[i + 1])}
    end
  end
  return found
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

if op == 'add' then
  local existing = entries()
  if ARGV[7] ~= '' then
    for _, e in ipairs(existing) do
      if e.entry.token == ARGV[7] then
        if ARGV[6] == '1' then redis.call('HSET', KEYS[1], default_field, e.id) end
        return cjson.encode({r = 'exists', id = e.id})
      end
    end
  end
  if #existing >= tonumber(ARGV[5]) then
    return cjson.encode({r = 'full', max = tonumber(ARGV[5])})
  end
  local entry = cjson.decode(ARGV[4])
  entry.added_ms = now_ms()
  redis.call('HSET', KEYS[1], field, cjson.encode(entry))
  if ARGV[6] == '1' or redis.call('HEXISTS', KEYS[1], default_field) == 0 then
    redis.call('HSET', KEYS[1], default_field, id)
  end
  return cjson.encode({r = 'ok', id = id})
end

local old = redis.call('HGET', KEYS[1], field)
if not old then return cjson.encode({r = 'missing'}) end

if op == 'replace' then
  local entry = cjson.decode(ARGV[4])
  entry.added_ms = cjson.decode(old).added_ms
  redis.call('HSET', KEYS[1], field, cjson.encode(entry))
elseif op == 'default' then
  redis.call('HSET', KEYS[1], default_field, id)
elseif op == 'remove' then
  redis.call('HDEL', KEYS[1], field)
  if redis.call('HGET', KEYS[1], default_field) == id then
    local newest, newest_ms = nil, -1
    for _, e in ipairs(entries()) do
      if e.entry.added_ms > newest_ms or (e.entry.added_ms == newest_ms and e.id > newest) then
        newest, newest_ms = e.id, e.entry.added_ms
      end
    end
    if newest then
      redis.call('HSET', KEYS[1], default_field, newest)
    else
      redis.call('HDEL', KEYS[1], default_field)
    end
  end
else
  return redis.error_reply('wallet.lua: unknown op ' .. op)
end
return cjson.encode({r = 'ok', id = id})
