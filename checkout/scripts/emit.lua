--[[ emit.lua: append one event to a stream's log with the next sequence number, and
publish it to every node's hub. Stream slot ({s:<id>}).

KEYS[1] sequence counter   KEYS[2] event log (a Valkey stream; entry id = "<seq>-0")
ARGV[1] event as a JSON object without "seq"   ARGV[2] log max length (approximate)
ARGV[3] pub/sub channel
Reply: the sequence number given to the event.
]]

local seq = redis.call('INCR', KEYS[1])
local message = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[2]), seq .. '-0', 'e', message)
redis.call('PUBLISH', ARGV[3], message)
return seq
