--[[ chat_moderate.lua: one moderation action on a show's chat, with its event (what every
screen must apply: event_lib.lua's `emit`, in front) and its audit entry, in one step in the
stream's slot: no deletion without its event, no action without who did it.

KEYS[1] stream hash   KEYS[2] sequence counter   KEYS[3] event log   KEYS[4] chat log
KEYS[5] chat settings hash   KEYS[6] bans hash   KEYS[7] held hash   KEYS[8] audit log
ARGV[1] op: delete | ban | unban | clear | announce | settings | approve | reject
ARGV[2] the op's argument as JSON:
        delete/approve/reject {id}   ban {user, until_ms (0: for good), scope}
        unban {user, scope}   clear {}   announce {text (absent: removed)}
        settings {slow_s, followers_only, keyword, claim_mode}
ARGV[3] now (ms)   ARGV[4] event log max length   ARGV[5] events shard pub/sub channel
ARGV[6] chat shard pub/sub channel   ARGV[7] who (audited)   ARGV[8] audit log max length
ARGV[9] chat log max length

Reply (JSON): {"r":"ok","seq":n,"message"?:{...}} | {"r":"missing"} (no such stream)
  | {"r":"refused","status":404,"kind":"not-found","detail":"..."}
  | {"r":"refused","status":409,"kind":"author-banned"|"chat-closed",...} (approve: the
    held message is dropped, its author banned since or the show over)
]]

local op, arg = ARGV[1], cjson.decode(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({r = 'missing'}) end

local function audit(target, detail)
  redis.call('XADD', KEYS[8], 'MAXLEN', '~', tonumber(ARGV[8]), '*', 'at_ms', ARGV[3],
    'by', ARGV[7], 'action', op, 'target', target or '', 'detail', detail or '')
end
local function ok(seq, message)
  local reply = '{"r":"ok","seq":' .. seq
  if message then reply = reply .. ',"message":' .. message end
  return reply .. '}'
end
local function not_found(detail)
  return cjson.encode({r = 'refused', status = 404, kind = 'not-found', detail = detail})
end

if op == 'delete' then
  if redis.call('XDEL', KEYS[4], arg.id) == 0 then return not_found('no message ' .. arg.id) end
  audit(arg.id)
  return ok(emit('chat.deleted', '"id":' .. cjson.encode(arg.id)))
end

-- Whether a user is banned or timed out of the show now.
local function barred(user)
  local until_ms = tonumber(redis.call('HGET', KEYS[6], user) or '-1')
  return until_ms == 0 or until_ms > tonumber(ARGV[3])
end

if op == 'ban' then
  redis.call('HSET', KEYS[6], arg.user, string.format('%d', arg.until_ms))
  -- Their messages waiting for review go with them (the log's: chat_purge.lua).
  local held = redis.call('HGETALL', KEYS[7])
  for i = 1, #held, 2 do
    if cjson.decode(held[i + 1]).user == arg.user then redis.call('HDEL', KEYS[7], held[i]) end
  end
  audit(arg.user, arg.scope .. (arg.until_ms == 0 and ' ban' or ' until ' .. arg.until_ms))
  local until_ms = arg.until_ms == 0 and 'null' or string.format('%d', arg.until_ms)
  return ok(emit('chat.banned', '"user":' .. cjson.encode(arg.user) .. ',"until_ms":' .. until_ms))
end

if op == 'unban' then
  redis.call('HDEL', KEYS[6], arg.user)
  audit(arg.user, arg.scope)
  return ok(emit('chat.unbanned', '"user":' .. cjson.encode(arg.user)))
end

if op == 'clear' then
  redis.call('HSET', KEYS[5], 'cleared_ms', ARGV[3])
  audit()
  return ok(emit('chat.cleared', ''))
end

if op == 'announce' then
  if arg.text then
    redis.call('HSET', KEYS[5], 'announcement', arg.text)
  else
    redis.call('HDEL', KEYS[5], 'announcement')
  end
  audit('', arg.text or 'removed')
  return ok(emit('chat.announcement', '"text":' .. (arg.text and cjson.encode(arg.text) or 'null')))
end

if op == 'settings' then
  redis.call('HSET', KEYS[5], 'slow_s', string.format('%d', arg.slow_s), 'followers_only', arg.followers_only and '1' or '0',
    'keyword', arg.keyword, 'claim_mode', arg.claim_mode)
  audit('', ARGV[2])
  return ok(emit('chat.settings', string.sub(ARGV[2], 2, -2)))
end

if op == 'approve' or op == 'reject' then
  local held = redis.call('HGET', KEYS[7], arg.id)
  if not held then return not_found('no held message ' .. arg.id) end
  redis.call('HDEL', KEYS[7], arg.id)
  audit(arg.id)
  if op == 'reject' then return ok(0) end
  local message = cjson.decode(held)
  if barred(message.user) then
    return cjson.encode({r = 'refused', status = 409, kind = 'author-banned',
                         detail = message.user .. ' is banned or timed out: the message is dropped'})
  end
  if redis.call('HGET', KEYS[1], 'state') ~= 'live' then
    return cjson.encode({r = 'refused', status = 409, kind = 'chat-closed',
                         detail = 'the show is not live: the message is dropped'})
  end
  message.id, message.held = nil, nil
  local badges = message.badges
  message.badges = nil
  local stored = '{"badges":' .. (#badges == 0 and '[]' or cjson.encode(badges)) .. ',' ..
    string.sub(cjson.encode(message), 2)
  local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', tonumber(ARGV[9]), '*', 'm', stored)
  local posted = '{"id":' .. cjson.encode(id) .. ',' .. string.sub(stored, 2)
  redis.call('SPUBLISH', ARGV[6], posted)
  return ok(0, posted)
end

return cjson.encode({r = 'refused', status = 400, kind = 'unknown-op', detail = op})
