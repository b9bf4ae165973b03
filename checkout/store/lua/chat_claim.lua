--[[ chat_claim.lua: one comment-to-buy claim's attempt, recorded once in the show's claims
log (docs/chat.md, "Comment-to-buy"), in the stream's slot.

A claim (a buyer, a product, a variant, a quantity, the claim mode) is bought under the
idempotency key of its current attempt `n`, so the same comment again is the same claim.
Once an attempt is over (refused, its order or cart item gone) the next comment is attempt
n + 1: a sold-out item that comes back can be claimed again, and a standing claim never twice.

KEYS[1] the claim attempts hash   KEYS[2] the claims log
ARGV[1] op: record | again | note   ARGV[2] field ('<buyer>|<claim digest>')
ARGV[3] the attempt n the caller used
ARGV[4] record: '1' when the attempt is over (its outcome was a refusal)
ARGV[5] record, note: the log entry (JSON, with `n`)   ARGV[6] the log's max length (~)

record: the attempt's outcome, logged once per attempt (a replay logs nothing).
again: the attempt is over (its order or cart item is gone): the next comment claims anew.
note: an outcome no attempt stands behind (unknown code, no wallet): logged each time.
Reply: 1, or 0 when attempt n is no longer current (another comment moved on).
]]

if ARGV[1] == 'note' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'c', ARGV[5])
  return 1
end
local n = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if n ~= tonumber(ARGV[3]) then return 0 end
if ARGV[1] == 'again' then
  redis.call('HSET', KEYS[1], ARGV[2], n + 1)
  return 1
end
local mark = ARGV[2] .. '#r'
local recorded = redis.call('HGET', KEYS[1], mark)
if not recorded or cjson.decode(recorded).n ~= n then
  redis.call('HSET', KEYS[1], mark, ARGV[5])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'c', ARGV[5])
end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], ARGV[2], n + 1) end
return 1
