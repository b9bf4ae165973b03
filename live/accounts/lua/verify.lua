--[[ verify.lua: check one answer to an email sign-in challenge, atomically.

A challenge is single-use: the right answer (the code, or the link's token) deletes it in
the same step, so two requests with the right code cannot both sign in. A wrong answer
counts; at the cap the challenge is locked (kept until its key expires, so the answer
stays "too many attempts" rather than "unknown").

KEYS[1] challenge hash (email, code, link, attempts, expires_ms)
ARGV[1] which answer: 'code' or 'link'   ARGV[2] its HMAC (hex)   ARGV[3] now (ms)
ARGV[4] the cap on wrong answers
Reply: {'ok', email} | {'gone'} | {'expired'} | {'locked'} | {'wrong', attempts left}
]]

local fields = redis.call('HMGET', KEYS[1], 'email', ARGV[1], 'attempts', 'expires_ms')
local email, expected, attempts, expires = fields[1], fields[2], fields[3], fields[4]
if not email then return {'gone'} end
if tonumber(expires) <= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
local cap = tonumber(ARGV[4])
attempts = tonumber(attempts)
if attempts >= cap then return {'locked'} end
if expected == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return {'ok', email}
end
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {'wrong', tostring(cap - attempts)}
