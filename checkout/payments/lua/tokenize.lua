--[[ tokenize.lua (sandbox gateway), run after prelude.lua.

KEYS[1] the new token's hash, KEYS[2] the count of tokens kept.
ARGV[1] at most this many tokens, ARGV[2] behaviour (approve|decline), ARGV[3] decline
code or '', ARGV[4] brand, ARGV[5] last4, ARGV[6] exp_month, ARGV[7] exp_year.
Never a card number or a CVC: the caller has none to give.
Reply: reply(outcome), outcome one of
  new     the token was stored
  taken   a token of that name exists (a random collision): nothing changed
  full    ARGV[1] tokens are kept already: nothing changed
]]

if redis.call('EXISTS', key) == 1 then return {'taken'} end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[1]) then return {'full'} end
redis.call('INCR', KEYS[2])
redis.call('HSET', key, 'behaviour', ARGV[2], 'decline_code', ARGV[3], 'brand', ARGV[4],
           'last4', ARGV[5], 'exp_month', ARGV[6], 'exp_year', ARGV[7])
return reply('new')
