--[[ bounded_add.lua: add a member to one of an account's sorted sets within its cap.

Two adds at once cannot both pass the count and leave the account over its cap; adding a
member the set has already is always fine (it is idempotent and keeps its first score).

KEYS[1] the sorted set   ARGV[1] the cap   ARGV[2] the member   ARGV[3] its score
ARGV[4] drop members scored below this first (expired RSVPs), or '' to drop none
Reply: 'ok' (added) | 'exists' | 'full'
]]

if ARGV[4] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4]) end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 'exists' end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'full' end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return 'ok'
