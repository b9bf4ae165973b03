--[[ event_lib.lua: put in front of the scripts that write a stream's sequenced events
(stream.lua, chat_moderate.lua, auction.lua), so an event is numbered, logged and announced one way.
Both take KEYS[2] the sequence counter, KEYS[3] the event log (entry id "<seq>-0"),
ARGV[3] now (ms), ARGV[4] the log's max length (approximate), ARGV[5] the shard pub/sub channel (in the stream's slot: SPUBLISH, so on a cluster the
event goes to the stream's shard only). ]]

local function emit(kind, body)
  local seq = redis.call('INCR', KEYS[2])
  local message = '{"seq":' .. seq .. ',"type":' .. cjson.encode(kind) .. ',"at_ms":' .. ARGV[3]
  if body ~= '' then message = message .. ',' .. body end
  message = message .. '}'
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[4]), seq .. '-0', 'e', message)
  redis.call('SPUBLISH', ARGV[5], message)
  return seq
end
