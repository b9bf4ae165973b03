--[[ chat_post.lua: one chat message, checked and posted (or held) in one step in the
stream's slot, so every rule holds across a user's sockets and every node: the stream is
live, the user is not banned or timed out, its rate, slow mode and duplicate window, and
followers-only mode. Staff (host, moderator, brand) skip slow mode and followers-only;
the host and moderators have their own floor between two messages (no duplicate check), a
brand (a third party) the viewers' gap and duplicate window.
The text arrives normalised and checked (live/chat/text.py); the caller says whether it
matched the channel's blocked words (held) and whether the user follows the creator.

KEYS[1] stream hash   KEYS[2] chat log   KEYS[3] chat settings hash   KEYS[4] bans hash
KEYS[5] last message hash   KEYS[6] held hash   KEYS[7] the show's buyers set
ARGV[1] chat user ('<role>:<subject>')   ARGV[2] display name   ARGV[3] staff badges, JSON list
ARGV[4] text   ARGV[5] text hash (duplicates)   ARGV[6] now (ms)   ARGV[7] least ms between
        two messages of a user   ARGV[8] duplicate window (ms)   ARGV[9] log max length
ARGV[10] shard pub/sub channel of the show's chat (its slot)   ARGV[11] '1' follows the creator
ARGV[12] '1' held for review   ARGV[13] most messages held at once   ARGV[14] buyer id
        ('' when the user is not a buyer: no `buyer` badge)
ARGV[15] least ms between two messages of the host or a moderator

Reply (JSON): {"r":"posted","message":{...}} | {"r":"held","message":{...}}
  | {"r":"refused","code":"...","detail":"...","until_ms"?:n}
]]

local user, now = ARGV[1], tonumber(ARGV[6])
local function refuse(code, detail, extra)
  local reply = {r = 'refused', code = code, detail = detail}
  if extra then reply.until_ms = extra end
  return cjson.encode(reply)
end

local stream = redis.call('HMGET', KEYS[1], 'state', 'started_ms')
if stream[1] ~= 'live' then
  return refuse('chat-closed', 'chat is open while the show is live')
end

local until_ms = redis.call('HGET', KEYS[4], user)
if until_ms then
  until_ms = tonumber(until_ms)
  if until_ms == 0 then return refuse('banned', 'you are banned from this chat') end
  if until_ms > now then
    return refuse('timed-out', 'you are timed out of this chat', until_ms)
  end
  redis.call('HDEL', KEYS[4], user)
end

local badges = cjson.decode(ARGV[3])
local staff = #badges > 0
local trusted = badges[1] == 'host' or badges[1] == 'moderator'
local cfg = redis.call('HMGET', KEYS[3], 'slow_s', 'followers_only')
if not staff and cfg[2] == '1' and ARGV[11] ~= '1' then
  return refuse('followers-only', 'only followers of this creator can chat now')
end
local last = redis.call('HGET', KEYS[5], user)
if last then
  local sep = string.find(last, '|', 1, true)
  local at, hash = tonumber(string.sub(last, 1, sep - 1)), string.sub(last, sep + 1)
  local slow_ms = staff and 0 or tonumber(cfg[1] or '0') * 1000
  local floor = trusted and tonumber(ARGV[15]) or tonumber(ARGV[7])
  local gap = math.max(floor, slow_ms)
  if now - at < gap then
    local code = slow_ms > floor and 'slow-mode' or 'too-fast'
    return refuse(code, 'wait ' .. math.ceil((gap - (now - at)) / 1000) .. ' s', at + gap)
  end
  if not trusted and hash == ARGV[5] and now - at < tonumber(ARGV[8]) then
    return refuse('duplicate', 'you just sent that')
  end
end

if ARGV[14] ~= '' and redis.call('SISMEMBER', KEYS[7], ARGV[14]) == 1 then
  badges[#badges + 1] = 'buyer'
end
local body = {user = user, name = ARGV[2], text = ARGV[4], at_ms = now,
              media_ms = math.max(0, now - tonumber(stream[2] or now))}
local function encode(id, held)
  -- cjson writes an empty list as {}: the badges are spliced in as a list.
  local fields = cjson.encode(body)
  local list = #badges == 0 and '[]' or cjson.encode(badges)
  local extra = held and ',"held":true' or ''
  return '{"id":' .. cjson.encode(id) .. ',"badges":' .. list .. extra .. ',' .. string.sub(fields, 2)
end

if ARGV[12] == '1' and redis.call('HLEN', KEYS[6]) >= tonumber(ARGV[13]) then
  return refuse('held-queue-full', 'too many messages are waiting for review')
end
redis.call('HSET', KEYS[5], user, now .. '|' .. ARGV[5])
if ARGV[12] == '1' then
  local id = 'h' .. redis.call('HINCRBY', KEYS[3], 'held_seq', 1)
  local message = encode(id, true)
  redis.call('HSET', KEYS[6], id, message)
  redis.call('SPUBLISH', ARGV[10], message)
  return '{"r":"held","message":' .. message .. '}'
end
local stored = '{"badges":' .. (#badges == 0 and '[]' or cjson.encode(badges)) .. ',' ..
  string.sub(cjson.encode(body), 2)
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[9]), '*', 'm', stored)
local message = encode(id, false)
redis.call('SPUBLISH', ARGV[10], message)
return '{"r":"posted","message":' .. message .. '}'
