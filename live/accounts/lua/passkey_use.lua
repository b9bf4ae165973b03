--[[ passkey_use.lua: record one verified use of a passkey, with the signature counter rule
(W3C WebAuthn L3 section 7.2, step 22), atomically.

When the authenticator or the record keeps a counter (either is above 0), the new count
must be above the stored one: a count that does not go up is a replayed assertion or a
cloned authenticator, and is refused. Checked and written in one step, so two assertions
carrying the same count cannot both pass. Authenticators without a counter send 0 always.

KEYS[1] the passkey's hash   ARGV[1] the assertion's sign count   ARGV[2] now (ms)
Reply: {'ok'} | {'gone'} (the passkey was removed meanwhile) | {'regressed', stored count}
]]

local stored = redis.call('HGET', KEYS[1], 'sign_count')
if not stored then return {'gone'} end
stored = tonumber(stored)
local count = tonumber(ARGV[1])
if (count > 0 or stored > 0) and count <= stored then
  return {'regressed', tostring(stored)}
end
redis.call('HSET', KEYS[1], 'sign_count', count, 'last_used_ms', ARGV[2])
return {'ok'}
