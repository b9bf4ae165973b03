--[[ compare_and_set.lua (Stripe gateway's record of an order), run after prelude.lua.

KEYS[1] the order's record. ARGV[1] the states it may be in, comma-separated, where ''
stands for "no record yet" (',authorizing': none or authorizing). ARGV[2..] field, value
pairs to set when it is in one of them.
Reply: reply(outcome), outcome one of
  ok        the record was in an allowed state: the fields are set
  conflict  it was not: nothing changed (the record as it stands comes with the reply)
]]

local state = redis.call('HGET', key, 'state') or ''
for allowed in string.gmatch(ARGV[1] .. ',', '([^,]*),') do
  if allowed == state then
    if #ARGV > 1 then redis.call('HSET', key, unpack(ARGV, 2)) end
    return reply('ok')
  end
end
return reply('conflict')
