--[[ after_sale.lua: what happens to a captured order, each change one atomic step.

Refunds (full or part) and returns. A refund is opened first (recorded on the order, its
amount held against what remains, a refund owed on the product's list), then the gateway
is asked (checkout/fulfilment.py), then it is settled here: the refunded total grows, the
commission reversed grows by what Python computed from the running total (checkout/money.py,
`commission_reversed`), stock comes back when asked, and the order becomes `refunded` when
the refunds add up to the amount captured. The order decides; the gateway follows it.

KEYS[1] order hash   KEYS[2] stock hash   KEYS[3] offers hash   KEYS[4] bought hash
KEYS[5] outbox stream   KEYS[6] refunds-owed sorted set
ARGV[1] op   ARGV[2] order id   ARGV[3] now ms   ARGV[4] outbox max length
ARGV[5] rules of the move to refunded ('from=effect=debt;...', checkout/order_states.py):
        its sources are the states a refund or a return may start from

op 'refund'  ARGV[6] key   ARGV[7] amount ('' = all that remains)   ARGV[8] restock '1'|''
             ARGV[9] reason   ARGV[10] when the sweeper finishes it if nobody has (ms)
  -> {"r":"ok"|"replay","refund":{...}} | {"r":"conflict"} | {"r":"illegal","state":s}
     | {"r":"exceeds","remaining":n}
op 'settle'  ARGV[6] refund number   ARGV[7] gateway ref   ARGV[8] refunded total it was
             computed on   ARGV[9] commission this refund reverses
  -> {"r":"ok","order":{...}} | {"r":"same"} | {"r":"stale"} (another refund settled first)
op 'fail'    ARGV[6] refund number   ARGV[7] why  -> {"r":"ok"} | {"r":"same"}
op 'return'  ARGV[6] reason  -> {"r":"ok"|"same","order":{...}} | {"r":"illegal","state":s}
             | {"r":"return_exists","return_state":s}
op 'decide'  ARGV[6] approved|rejected   ARGV[7] note   ARGV[8] amount   ARGV[9] restock
             ARGV[10] as op 'refund'
             (approved: opens the refund `return` in the same step, as op 'refund')
  -> {"r":"ok"|"same","order":{...},"refund":{...}?} | {"r":"no_return","return_state":s}
     | {"r":"exceeds","remaining":n}
Order replies leave out the payment token.
]]

local op, order_id = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return cjson.encode({r = 'missing'}) end

local function num(field)
  return tonumber(redis.call('HGET', KEYS[1], field) or '0')
end

local function refundable(s)
  for src in string.gmatch(ARGV[5], '([%w_]+)=[%w_]+=[%w_]+') do
    if src == s then return true end
  end
  return false
end

local function event(kind, fields)
  local entry = {'type', kind, 'order', order_id, 'state', redis.call('HGET', KEYS[1], 'state'),
                 'from', state, 'at', now}
  for i = 1, #fields do entry[#entry + 1] = fields[i] end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', unpack(entry))
end

-- Opens refund `key` of `amount_arg` ('' = all that remains): returns (reply, refund).
local function open_refund(key, amount_arg, restock, reason, due_ms)
  local fingerprint = amount_arg .. ':' .. restock
  local known = redis.call('HGET', KEYS[1], 'refund_key:' .. key)
  if known then
    local refund = cjson.decode(redis.call('HGET', KEYS[1], 'refund:' .. known))
    if refund.fingerprint ~= fingerprint then return {r = 'conflict'} end
    return {r = 'replay', refund = refund}
  end
  if not refundable(state) then return {r = 'illegal', state = state} end
  local remaining = num('amount_minor') - num('refunded_minor') - num('refund_pending_minor')
  local amount = remaining
  if amount_arg ~= '' then amount = tonumber(amount_arg) end
  if amount > remaining or amount <= 0 then return {r = 'exceeds', remaining = remaining} end
  local n = redis.call('HINCRBY', KEYS[1], 'refund_count', 1)
  local refund = {n = n, key = key, fingerprint = fingerprint, amount_minor = amount,
                  restock = restock == '1', reason = reason, state = 'pending', at_ms = now}
  redis.call('HSET', KEYS[1], 'refund:' .. n, cjson.encode(refund), 'refund_key:' .. key, n)
  redis.call('HINCRBY', KEYS[1], 'refund_pending_minor', amount)
  redis.call('ZADD', KEYS[6], 'NX', due_ms, order_id)
  return {r = 'ok', refund = refund}
end

-- Gives the order's units back (order_lib.lua's give_back), once.
local function restock()
  if redis.call('HGET', KEYS[1], 'restocked') == '1' then return end
  give_back('sold:')
  redis.call('HSET', KEYS[1], 'restocked', '1')
end

local function pending_done()
  if num('refund_pending_minor') == 0 then redis.call('ZREM', KEYS[6], order_id) end
end

if op == 'refund' then
  return cjson.encode(open_refund(ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])))
end

if op == 'settle' or op == 'fail' then
  local raw = redis.call('HGET', KEYS[1], 'refund:' .. ARGV[6])
  if not raw then return cjson.encode({r = 'missing'}) end
  local refund = cjson.decode(raw)
  if refund.state ~= 'pending' then return cjson.encode({r = 'same', refund = refund}) end
  local amount = tonumber(refund.amount_minor)
  if op == 'fail' then
    refund.state, refund.why = 'failed', ARGV[7]
    redis.call('HSET', KEYS[1], 'refund:' .. ARGV[6], cjson.encode(refund))
    redis.call('HINCRBY', KEYS[1], 'refund_pending_minor', -amount)
    pending_done()
    return cjson.encode({r = 'ok', refund = refund})
  end
  if num('refunded_minor') ~= tonumber(ARGV[8]) then return cjson.encode({r = 'stale'}) end
  local reversal = tonumber(ARGV[9])
  refund.state, refund.gateway_ref, refund.done_ms = 'done', ARGV[7], now
  refund.commission_reversed_minor = reversal
  redis.call('HSET', KEYS[1], 'refund:' .. ARGV[6], cjson.encode(refund))
  redis.call('HINCRBY', KEYS[1], 'refund_pending_minor', -amount)
  local refunded = redis.call('HINCRBY', KEYS[1], 'refunded_minor', amount)
  redis.call('HINCRBY', KEYS[1], 'commission_reversed_minor', reversal)
  if refund.restock then restock() end
  local full = refunded == num('amount_minor')
  if full then
    redis.call('HSET', KEYS[1], 'state', 'refunded', 'reason', refund.reason, 'updated_ms', now)
  else
    redis.call('HSET', KEYS[1], 'updated_ms', now)
  end
  if redis.call('HGET', KEYS[1], 'return_refund') == ARGV[6] then
    redis.call('HSET', KEYS[1], 'return_state', 'refunded')
  end
  pending_done()
  event('order.refund', {'refund', ARGV[6], 'amount_minor', amount,
                         'commission_minor', reversal, 'full', full and '1' or ''})
  if full then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'type', 'order.refunded',
      'order', order_id, 'state', 'refunded', 'from', state, 'at', now)
  end
  return cjson.encode({r = 'ok', order = order_table()})
end

if op == 'return' then
  local current = redis.call('HGET', KEYS[1], 'return_state')
  if current == 'requested' then return cjson.encode({r = 'same', order = order_table()}) end
  if current then return cjson.encode({r = 'return_exists', return_state = current}) end
  if not refundable(state) then return cjson.encode({r = 'illegal', state = state}) end
  redis.call('HSET', KEYS[1], 'return_state', 'requested', 'return_reason', ARGV[6],
             'return_requested_ms', now, 'updated_ms', now)
  event('order.return', {'return_state', 'requested'})
  return cjson.encode({r = 'ok', order = order_table()})
end

if op == 'decide' then
  local decision = ARGV[6]
  local current = redis.call('HGET', KEYS[1], 'return_state')
  if current == decision or (decision == 'approved' and current == 'refunded') then
    return cjson.encode({r = 'same', order = order_table()})
  end
  if current ~= 'requested' then
    return cjson.encode({r = 'no_return', return_state = current or ''})
  end
  local opened = nil
  if decision == 'approved' then
    opened = open_refund('return', ARGV[8], ARGV[9], 'returned', tonumber(ARGV[10]))
    if opened.r ~= 'ok' then return cjson.encode(opened) end
    redis.call('HSET', KEYS[1], 'return_refund', opened.refund.n)
  end
  redis.call('HSET', KEYS[1], 'return_state', decision, 'return_note', ARGV[7],
             'return_decided_ms', now, 'updated_ms', now)
  event('order.return', {'return_state', decision})
  local reply = {r = 'ok', order = order_table()}
  if opened then reply.refund = opened.refund end
  return cjson.encode(reply)
end

return cjson.encode({r = 'unknown_op'})
