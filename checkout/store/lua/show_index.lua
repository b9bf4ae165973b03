--[[ show_index.lua: file one stream where discovery finds it (live now, upcoming, a
creator's past shows), in the `{shows}` slot.

stream.lua cannot write these (they are not in the stream's slot), so live/streams/shows.py
runs this after each lifecycle change, with the stream's `rev` as stream.lua left it: a
newer rev is never overwritten by an older one (two changes' follow-ups may arrive out of
order). A follow-up lost to a crash is repaired by the reader, which checks each listed
stream against its own hash and runs this again with what the hash says.

KEYS[1] live (zset id -> started_ms)      KEYS[2] upcoming (zset id -> scheduled_ms)
KEYS[3] creators (zset creator -> last active ms)   KEYS[4] revs (hash id -> rev)
KEYS[5] the creator's live   KEYS[6] the creator's upcoming   KEYS[7] the creator's past
ARGV[1] stream id   ARGV[2] its rev   ARGV[3] state: scheduled | live | ended | cancelled
ARGV[4] scheduled_ms   ARGV[5] started_ms   ARGV[6] ended_ms   ARGV[7] creator id
ARGV[8] now (ms)

Reply: 1 (filed) | 0 (an older rev than the one already filed: nothing changed)
]]

local id, rev, state = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local filed = redis.call('HGET', KEYS[4], id)
if filed and tonumber(filed) > rev then return 0 end
redis.call('HSET', KEYS[4], id, rev)

if state == 'scheduled' then
  redis.call('ZADD', KEYS[2], ARGV[4], id)
  redis.call('ZADD', KEYS[6], ARGV[4], id)
  redis.call('ZADD', KEYS[3], 'GT', ARGV[8], ARGV[7])
  return 1
end

redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[6], id)
if state == 'live' then
  redis.call('ZADD', KEYS[1], ARGV[5], id)
  redis.call('ZADD', KEYS[5], ARGV[5], id)
  redis.call('ZADD', KEYS[3], 'GT', ARGV[8], ARGV[7])
  return 1
end

redis.call('ZREM', KEYS[1], id)
redis.call('ZREM', KEYS[5], id)
if state == 'ended' then redis.call('ZADD', KEYS[7], ARGV[6], id) end
return 1
