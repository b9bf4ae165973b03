--[[ hook_done.lua: the outcome of one delivery attempt, recorded once (docs/webhooks.md).

Acknowledges and deletes the outbox entry. Unless the delivery is no longer pending (an
entry handed out twice, after a crash), it records the attempt, then:
  ok     delivered; the endpoint's failure streak ends
  retry  still pending; due again at ARGV[7] (the retry sorted set)
  fail   given up (the schedule is spent)
  drop   given up without an attempt (endpoint disabled or deleted, event expired)
Delivered or given up, the queue moves on: its next delivery enters the outbox.
A failed attempt lengthens the endpoint's streak; a streak of ARGV[10] attempts or one
older than ARGV[9] ms disables the endpoint (reply "disabled": true, once).

KEYS[1] delivery hash   KEYS[2] endpoint hash   KEYS[3] the delivery's queue (list)
KEYS[4] outbox stream   KEYS[5] retry sorted set
ARGV[1] delivery id   ARGV[2] outbox entry id ('' when it came from nowhere)
ARGV[3] outcome: ok | retry | fail | drop   ARGV[4] HTTP status (0: none)
ARGV[5] error text   ARGV[6] now (ms)   ARGV[7] next attempt (ms, retry)
ARGV[8] how long a finished delivery is kept (ms)
ARGV[9] failing this long (ms) disables   ARGV[10] this many failed attempts in a row disable
ARGV[11] the outbox's consumer group

Reply (JSON): {"r":"ok","disabled":bool} | {"r":"stale"}
]]

if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[4], ARGV[11], ARGV[2])
  redis.call('XDEL', KEYS[4], ARGV[2])
end
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  return cjson.encode({r = 'stale'})
end
local outcome, now = ARGV[3], tonumber(ARGV[6])
local fields = {'updated_ms', now, 'last_error', ARGV[5]}
if outcome ~= 'drop' then
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  fields[#fields + 1] = 'last_status'
  fields[#fields + 1] = ARGV[4]
  fields[#fields + 1] = 'last_attempt_ms'
  fields[#fields + 1] = now
end

local disabled = false
if outcome == 'ok' then
  redis.call('HSET', KEYS[2], 'failures', 0, 'failing_since_ms', 0)
elseif outcome ~= 'drop' and redis.call('EXISTS', KEYS[2]) == 1 then
  local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
  local since = tonumber(redis.call('HGET', KEYS[2], 'failing_since_ms') or '0')
  if since == 0 then
    since = now
    redis.call('HSET', KEYS[2], 'failing_since_ms', now)
  end
  local enabled = redis.call('HGET', KEYS[2], 'enabled') == '1'
  if enabled and (failures >= tonumber(ARGV[10]) or now - since >= tonumber(ARGV[9])) then
    redis.call('HSET', KEYS[2], 'enabled', '0', 'disabled_ms', now, 'disabled_reason',
      failures .. ' failed attempts in a row, failing since ' .. since)
    disabled = true
  end
end

if outcome == 'retry' then
  fields[#fields + 1] = 'next_ms'
  fields[#fields + 1] = ARGV[7]
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])
  return cjson.encode({r = 'ok', disabled = disabled})
end

fields[#fields + 1] = 'status'
fields[#fields + 1] = outcome == 'ok' and 'delivered' or 'failed'
fields[#fields + 1] = 'next_ms'
fields[#fields + 1] = 0
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if redis.call('LINDEX', KEYS[3], 0) == ARGV[1] then redis.call('LPOP', KEYS[3]) end
local next_delivery = redis.call('LINDEX', KEYS[3], 0)
if next_delivery then
  redis.call('XADD', KEYS[4], '*', 'd', next_delivery)
end
return cjson.encode({r = 'ok', disabled = disabled})
