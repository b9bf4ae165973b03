--[[ touch.lua: update fields of a session that still exists, and set its expiry.

A plain HSET on a session that signed out meanwhile would bring back a partial record
with no expiry; this writes only while the session is there.

KEYS[1] session hash   ARGV[1] expiry (ms from now)   ARGV[2..] field, value, ...
Reply: 1 if the session was there and is updated, else 0.
]]

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
