-- ListEntriesForUsers (after common.lua). ARGV: period, user keys...
-- Returns {total, then per user: stored ('' = unranked), first_ms, rank, below, name}.
local P = ARGV[1]
local R = LIVE .. 'r:' .. P
local out = {redis.call('ZCARD', R)}
for i = 2, #ARGV do
  local uk = ARGV[i]
  local v = redis.call('HGET', LIVE .. 's:' .. P, uk)
  local stored = v and redis.call('ZSCORE', R, string.sub(v, 1, 6) .. uk)
  local n = #out
  if stored then
    out[n + 1] = stored
    out[n + 2] = u6(v, 1)
    out[n + 3] = redis.call('ZCOUNT', R, '-inf', '(' .. stored) + 1
    out[n + 4] = redis.call('ZCOUNT', R, '(' .. stored, '+inf')
    out[n + 5] = P == 'a' and name_of(v) or name_of(redis.call('HGET', LIVE .. 's:a', uk))
  else
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = '', 0, 0, 0, ''
  end
end
return out
