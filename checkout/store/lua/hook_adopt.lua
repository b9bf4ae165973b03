--[[ hook_adopt.lua: one endpoint moved into its webhook partition from the legacy `{wh}`
slot, all of it or nothing (live/webhooks/migration.py, docs/webhooks.md "Migration").

The caller read the endpoint's legacy record, its delivery log, the deliveries of the log
and of its queues, the events they name and its queues; this writes them under the
partition's prefix. Each queue's head goes back where it waits: into the retry sorted set
at its due time if it was scheduled there, else into the outbox (a head handed out and not
settled before the move is attempted again: at least once). An endpoint already here (a
move that crashed before the legacy keys were deleted, run again) is left as it is.

KEYS[1] endpoint hash   KEYS[2] owner set   KEYS[3] delivery log (sorted set)
KEYS[4] outbox stream   KEYS[5] retry sorted set
ARGV[1] the endpoint id
ARGV[2] JSON: {"endpoint": [field, value, ...], "log": [[id, ms], ...],
  "deliveries": [{"key": k, "fields": [field, value, ...], "pttl": ms}, ...] (their queue
  fields already the partition's), "events": [{"key": k, "fields": [...], "pttl": ms}, ...],
  "queues": [{"key": k, "items": [ids], "due": ms or 0}, ...]}, every key k the
  partition's (its slot's), pttl <= 0: no expiry

Reply: "ok" | "dup"
]]

if redis.call('EXISTS', KEYS[1]) == 1 then return 'dup' end
local moved = cjson.decode(ARGV[2])

local function put_hash(key, fields, pttl)
  for i = 1, #fields, 2 do
    redis.call('HSET', key, fields[i], fields[i + 1])
  end
  if pttl > 0 then redis.call('PEXPIRE', key, pttl) end
end

put_hash(KEYS[1], moved.endpoint, 0)
redis.call('SADD', KEYS[2], ARGV[1])
for _, entry in ipairs(moved.log) do
  redis.call('ZADD', KEYS[3], entry[2], entry[1])
end
for _, d in ipairs(moved.deliveries) do
  put_hash(d.key, d.fields, d.pttl)
end
for _, e in ipairs(moved.events) do
  if redis.call('EXISTS', e.key) == 0 then put_hash(e.key, e.fields, e.pttl) end
end
for _, q in ipairs(moved.queues) do
  for _, delivery in ipairs(q.items) do
    redis.call('RPUSH', q.key, delivery)
  end
  if #q.items > 0 then
    if q.due > 0 then
      redis.call('ZADD', KEYS[5], q.due, q.items[1])
    else
      redis.call('XADD', KEYS[4], '*', 'd', q.items[1])
    end
  end
end
return 'ok'
