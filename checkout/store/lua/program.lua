--[[ program.lua: one move of a creator's application to a brand's affiliate program,
checked against the state table and written atomically in the brand's slot ({b:<id>}): a
creator applying while the brand approves, or two admins deciding at once, can't leave the
record and the per-state lists out of step.

The table is checkout/programs.py's, handed in as rules for each mode; the script reads the
program's mode itself, so a move is judged by the mode in force when it lands.

KEYS[1] program settings hash ({default_bps, mode, ...})   KEYS[2] applications hash
KEYS[3] pending   KEYS[4] approved   KEYS[5] rejected   KEYS[6] removed  (sorted sets:
        creator -> when it entered that state, ms)
ARGV[1] action: apply | approve | reject | remove   ARGV[2] creator   ARGV[3] message ('')
ARGV[4] now (ms)   ARGV[5] rules in an approval program 'from=to;...'
ARGV[6] rules in an open program ('' : the action is refused there)
ARGV[7] most applications one program keeps   ARGV[8] who ('creator:cleo', 'brand:acme')

Reply (JSON): {"r":"ok","from":s,"application":{...}}  | {"r":"missing"} (no program)
  | {"r":"illegal","state":s} | {"r":"open"} (refused in an open program) | {"r":"full"}
]]

local action, creator, message = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local mode = redis.call('HGET', KEYS[1], 'mode')
if not mode then return cjson.encode({r = 'missing'}) end

local rules = mode == 'open' and ARGV[6] or ARGV[5]
if rules == '' then return cjson.encode({r = 'open'}) end

local raw = redis.call('HGET', KEYS[2], creator)
local record = raw and cjson.decode(raw) or nil
local state = record and record.state or 'none'
local target = nil
for src, dst in string.gmatch(rules, '([%w_]+)=([%w_]+)') do
  if src == state then target = dst end
end
if not target then return cjson.encode({r = 'illegal', state = state}) end
if not record and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[7]) then
  return cjson.encode({r = 'full'})
end

local lists = {pending = KEYS[3], approved = KEYS[4], rejected = KEYS[5], removed = KEYS[6]}
record = record or {creator_id = creator, applied_ms = now, message = ''}
if action == 'apply' then
  record.message = message
  record.applied_ms = now
end
if target ~= state then
  if lists[state] then redis.call('ZREM', lists[state], creator) end
  redis.call('ZADD', lists[target], now, creator)
  record.state = target
  record.updated_ms = now
  record.decided_by = action == 'apply' and '' or ARGV[8]
elseif action == 'apply' then
  redis.call('ZADD', lists[target], now, creator)  -- a new message: listed as new again
  record.updated_ms = now
end
redis.call('HSET', KEYS[2], creator, cjson.encode(record))
return cjson.encode({r = 'ok', from = state, application = record})
