-- ListEntriesForUsers (after common.lua). ARGV: period, user keys...
-- Returns {total, then per user: stored ('' = unranked), first_ms, rank, below, name}.
local P = ARGV[1]
local R = LIVE .. 'r:' .. P
local out = {rcall('ZCARD', R)}
for i = 2, #ARGV do
  local uk = ARGV[i]
  local v = rcall('HGET', LIVE .. 's:' .. P, uk)
  local stored = v and rcall('ZSCORE', R, ssub(v, 1, 6) .. uk)
  local n = #out
  if stored then
    out[n + 1] = stored
    out[n + 2] = u6(v, 1)
    out[n + 3] = rcall('ZCOUNT', R, '-inf', '(' .. stored) + 1
    out[n + 4] = rcall('ZCOUNT', R, '(' .. stored, '+inf')
    out[n + 5] = P == 'a' and name_of(v) or name_of(rcall('HGET', LIVE .. 's:a', uk))
  else
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = '', 0, 0, 0, ''
  end
end
return out
