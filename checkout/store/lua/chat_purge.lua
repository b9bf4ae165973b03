--[[ chat_purge.lua: a banned or timed-out user's messages taken out of the show's chat log
(so not in the replay, the history or a late joiner's snapshot), a bounded slice of the log
per call so no call holds the server long: the caller walks the log with the cursor.

KEYS[1] the chat log   ARGV[1] the user ('<role>:<subject>')
ARGV[2] cursor: scan entries after this id ('-' from the start)   ARGV[3] entries per call

Reply: {next cursor ('' at the end of the log), messages deleted}
]]

local start = ARGV[2] == '-' and '-' or '(' .. ARGV[2]
local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[3]))
-- A stored message is JSON with "user":"<user>" (chat_post.lua); user names need no escaping.
local needle = '"user":' .. cjson.encode(ARGV[1])
local gone = {}
for _, entry in ipairs(batch) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' and string.find(fields[i + 1], needle, 1, true) then
      gone[#gone + 1] = entry[1]
    end
  end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
local cursor = #batch < tonumber(ARGV[3]) and '' or batch[#batch][1]
return {cursor, #gone}
