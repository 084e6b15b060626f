-- GetUserRank (after common.lua). ARGV: period, user key.
-- Returns {} when unranked, else {stored, first_ms, rank, below, total, name}.
local P, uk = ARGV[1], ARGV[2]
local v = redis.call('HGET', LIVE .. 's:' .. P, uk)
if not v then return {} end
local R = LIVE .. 'r:' .. P
local stored = redis.call('ZSCORE', R, string.sub(v, 1, 6) .. uk)
if not stored then return {} end
return {
  stored, u6(v, 1),
  redis.call('ZCOUNT', R, '-inf', '(' .. stored) + 1,
  redis.call('ZCOUNT', R, '(' .. stored, '+inf'),
  redis.call('ZCARD', R),
  P == 'a' and name_of(v) or name_of(redis.call('HGET', LIVE .. 's:a', uk)),
}
