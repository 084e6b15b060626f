-- GetUserRank (after common.lua). ARGV: period, user key.
-- Returns {} when unranked, else {stored, first_ms, rank, below, total, name}.
local P, uk = ARGV[1], ARGV[2]
local v = rcall('HGET', LIVE .. 's:' .. P, uk)
if not v then return {} end
local R = LIVE .. 'r:' .. P
local stored = rcall('ZSCORE', R, ssub(v, 1, 6) .. uk)
if not stored then return {} end
return {
  stored, u6(v, 1),
  rcall('ZCOUNT', R, '-inf', '(' .. stored) + 1,
  rcall('ZCOUNT', R, '(' .. stored, '+inf'),
  rcall('ZCARD', R),
  P == 'a' and name_of(v) or name_of(rcall('HGET', LIVE .. 's:a', uk)),
}
