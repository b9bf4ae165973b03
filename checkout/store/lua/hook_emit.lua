--[[ hook_emit.lua: record one webhook event and queue a delivery of it to every endpoint
of one webhook partition that wants it, atomically and once per event id, in the
partition's `{wh:<k>}` slot (docs/webhooks.md). An event whose owners are in two partitions
(a brand's and the operator's) is recorded by one call per partition, each on its own.

Mode 'event': the endpoints are those of the owner sets (KEYS[4..]) that are enabled and
subscribed to the event's type; an event id seen before in this partition is a no-op (the
aggregator's fold is at-least-once, and a retry after a crash between the calls of the
partitions redoes only the missing one), and an event nobody here wants writes nothing.
Mode 'resend': one more delivery of a recorded event to the one endpoint ARGV[8].

Each delivery joins the tail of its (endpoint, resource) queue; only a queue's head is ever
in the outbox stream, so a later event about a resource waits for the earlier one to be
delivered or given up. Per-endpoint and per-delivery keys are ARGV[7] + a part (all in the
partition's slot, ids already key-safe, see checkout/store/keys.py HookKeys); delivery ids
are ARGV[12] + the partition's counter.

KEYS[1] event record (hash)   KEYS[2] outbox stream   KEYS[3] delivery counter
KEYS[4..] owner sets (endpoint ids), mode 'event' only
ARGV[1] mode: event | resend   ARGV[2] event id   ARGV[3] type   ARGV[4] resource
ARGV[5] the resource as a key part   ARGV[6] the body (JSON, mode 'event')
ARGV[7] key prefix   ARGV[8] endpoint id (resend)   ARGV[9] now (ms)
ARGV[10] how long records are kept (ms)   ARGV[11] deliveries listed per endpoint
ARGV[12] delivery id prefix (`dl_<k>_`)

Reply (JSON): {"r":"ok","deliveries":[ids]} | {"r":"dup"} | {"r":"none"}
  | {"r":"missing"} (resend: no such event or endpoint any more)
]]

local mode, event_id, kind = ARGV[1], ARGV[2], ARGV[3]
local resource, resource_part, prefix = ARGV[4], ARGV[5], ARGV[7]
local now, keep_ms, log_keep = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])

local function wants(endpoint_id)
  local e = redis.call('HMGET', prefix .. 'ep:' .. endpoint_id, 'events', 'enabled')
  if not e[1] or e[2] ~= '1' then return false end
  return string.find(' ' .. e[1] .. ' ', ' ' .. kind .. ' ', 1, true) ~= nil
end

local targets = {}
if mode == 'resend' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return cjson.encode({r = 'missing'}) end
  if redis.call('EXISTS', prefix .. 'ep:' .. ARGV[8]) == 0 then
    return cjson.encode({r = 'missing'})
  end
  kind = redis.call('HGET', KEYS[1], 'type')
  resource = redis.call('HGET', KEYS[1], 'resource')
  resource_part = redis.call('HGET', KEYS[1], 'resource_part')
  targets[1] = ARGV[8]
else
  if redis.call('EXISTS', KEYS[1]) == 1 then return cjson.encode({r = 'dup'}) end
  local seen = {}
  for i = 4, #KEYS do
    for _, endpoint_id in ipairs(redis.call('SMEMBERS', KEYS[i])) do
      if not seen[endpoint_id] and wants(endpoint_id) then
        seen[endpoint_id] = true
        targets[#targets + 1] = endpoint_id
      end
    end
  end
  if #targets == 0 then return cjson.encode({r = 'none'}) end
  redis.call('HSET', KEYS[1], 'id', event_id, 'type', kind, 'resource', resource,
    'resource_part', resource_part, 'body', ARGV[6], 'created_ms', now)
end
redis.call('PEXPIRE', KEYS[1], keep_ms)

local made = {}
for _, endpoint_id in ipairs(targets) do
  local delivery = ARGV[12] .. redis.call('INCR', KEYS[3])
  local queue = prefix .. 'q:' .. endpoint_id .. ':' .. resource_part
  redis.call('HSET', prefix .. 'dl:' .. delivery, 'id', delivery, 'endpoint', endpoint_id,
    'event', event_id, 'type', kind, 'resource', resource, 'status', 'pending',
    'attempts', 0, 'last_status', 0, 'last_error', '', 'created_ms', now, 'updated_ms', now,
    'next_ms', now, 'queue', queue)
  if redis.call('RPUSH', queue, delivery) == 1 then
    redis.call('XADD', KEYS[2], '*', 'd', delivery)
  end
  local log = prefix .. 'log:' .. endpoint_id
  redis.call('ZADD', log, now, delivery)
  redis.call('ZREMRANGEBYRANK', log, 0, -(log_keep + 1))
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - keep_ms)
  made[#made + 1] = delivery
end
return cjson.encode({r = 'ok', deliveries = made})
