--[[ invite_revoke.lua: revoke an invitation that nobody has taken, atomically.

A pending invitation (expired ones too) becomes revoked; one claimed or accepted stays as it
is, so a revoke racing an accept has one winner.

KEYS[1] invitation hash
Reply: 'revoked' | 'already-revoked' | 'accepted' | 'unknown'
]]

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state == 'revoked' then return 'already-revoked' end
if state ~= 'pending' then return 'accepted' end
redis.call('HSET', KEYS[1], 'state', 'revoked')
return 'revoked'
