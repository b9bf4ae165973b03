--[[ stock_history.lua: record a live show's stock as its room saw it, in the stream's slot
(docs/recording.md, "Stock then"). Each hub calls it after a tick that read a change of
its room's stock; every hub serving the show reads the same stock, so the write is
idempotent: a product is appended only when its levels differ from the last recorded ones
and its read is not older than theirs (a slower hub's stale read never lands after a newer
one). One entry per call: at most one per product per tick of each hub.

KEYS[1] the stream hash (only a `live` show is recorded)
KEYS[2] the history (stream; entries `at_ms`, then product -> levels JSON)
KEYS[3] the last recorded levels (hash: product -> '<read ms> <levels JSON>')
ARGV[1] when the hub read the stock (ms, its clock)
ARGV[2] the history's limit in entries (exact MAXLEN: the oldest go first)
ARGV[3..] product id, levels JSON ({variant: available}, keys sorted), ...

Reply: the number of products appended (0: none changed); nothing recorded when the show
is not live: -1 not yet (the hub offers the same again next tick), -2 over (it stops).
]]

local state = redis.call('HGET', KEYS[1], 'state')
if state == 'ended' or state == 'cancelled' then return -2 end
if state ~= 'live' then return -1 end
local read_ms = tonumber(ARGV[1])
local fields = {}
for i = 3, #ARGV, 2 do
  local product, levels = ARGV[i], ARGV[i + 1]
  local last = redis.call('HGET', KEYS[3], product)
  local fresh = true
  if last then
    local gap = string.find(last, ' ', 1, true)
    local last_ms, last_levels = tonumber(string.sub(last, 1, gap - 1)), string.sub(last, gap + 1)
    fresh = last_levels ~= levels and read_ms >= last_ms
  end
  if fresh then
    redis.call('HSET', KEYS[3], product, read_ms .. ' ' .. levels)
    fields[#fields + 1] = product
    fields[#fields + 1] = levels
  end
end
if #fields == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', tonumber(ARGV[2]), '*', 'at_ms', read_ms, unpack(fields))
return #fields / 2
