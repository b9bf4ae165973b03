--[[ hook_pump.lua: move the deliveries whose retry is due back into the outbox stream, in
one step (a crash leaves each either still scheduled or in the outbox, never neither).

KEYS[1] retry sorted set (delivery id -> due ms)   KEYS[2] outbox stream
ARGV[1] now (ms)   ARGV[2] at most this many

Reply: how many were moved.
]]

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, delivery in ipairs(due) do
  redis.call('ZREM', KEYS[1], delivery)
  redis.call('XADD', KEYS[2], '*', 'd', delivery)
end
return #due
