-- Hide a player from (ARGV[2] = '1') or restore a player to one board's rankings, in every
-- live period and in a running rebuild's shadow. ARGV: user key, hidden, now_ms, page_ttl_ms.
local uk, hide, now, ttl = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
if hide then rcall('SADD', B .. ':hid', uk) else rcall('SREM', B .. ':hid', uk) end
local moved = 0
for _, ns in ipairs({LIVE, SHADOW}) do
  local periods = rcall('ZRANGEBYSCORE', ns .. 'per', now, '+inf', 'WITHSCORES')
  for i = 1, #periods, 2 do
    local P, exp = periods[i], periods[i + 1]
    local v = rcall('HGET', ns .. 's:' .. P, uk)
    if v then
      local member = ssub(v, 1, 6) .. uk
      local R, X = ns .. 'r:' .. P, ns .. 'x:' .. P
      if hide then
        local stored = rcall('ZSCORE', R, member)
        if stored then
          local seq = rcall('INCR', ns .. 'q')
          rcall('ZREM', R, member)
          tombstone(ns, P, tonumber(stored), member, u6(v, 7), seq, now, ttl)
          rcall('HSET', X, uk, stored)
          if exp ~= 'inf' then rcall('PEXPIREAT', X, exp) end
          moved = moved + 1
        end
      else
        local stored = rcall('HGET', X, uk)
        if stored then
          local seq = rcall('INCR', ns .. 'q')
          rcall('HDEL', X, uk)
          rcall('ZADD', R, stored, member)
          if exp ~= 'inf' then rcall('PEXPIREAT', R, exp) end
          rcall('HSET', ns .. 's:' .. P, uk, ssub(v, 1, 6) .. p6(seq) .. ssub(v, 13))
          moved = moved + 1
        end
      end
    end
  end
end
return moved
