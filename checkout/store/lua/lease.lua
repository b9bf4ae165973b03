--[[ lease.lua: take or renew a partition's lease, or release it, never one another node holds.

Compare and act in one step (checkout/partitions.py): a slow node can neither extend nor
drop a lease that expired and was taken by another node meanwhile. Taking is SET NX PX; a
node restarted under the same id finds its own lease and simply renews it.

KEYS[1] the lease   ARGV[1] our node id   ARGV[2] 'hold' or 'release'   ARGV[3] TTL in ms
Reply: 1 when the lease is ours (held for the TTL from now) or was ours (released), else 0.
]]

local holder = redis.call('GET', KEYS[1])
if ARGV[2] == 'release' then
  if holder ~= ARGV[1] then return 0 end
  redis.call('DEL', KEYS[1])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[3])) then return 1 end
return 0
