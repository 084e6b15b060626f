-- Hide a player from (ARGV[2] = '1') or restore a player to one board's rankings, in every
-- live period and in a running rebuild's shadow. ARGV: user key, hidden, now_ms, page_ttl_ms.
local uk, hide, now, ttl = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
if hide then redis.call('SADD', B .. ':hid', uk) else redis.call('SREM', B .. ':hid', uk) end
local moved = 0
for _, ns in ipairs({LIVE, SHADOW}) do
  local periods = redis.call('ZRANGEBYSCORE', ns .. 'per', now, '+inf', 'WITHSCORES')
  for i = 1, #periods, 2 do
    local P, exp = periods[i], periods[i + 1]
    local v = redis.call('HGET', ns .. 's:' .. P, uk)
    if v then
      local member = string.sub(v, 1, 6) .. uk
      local R, X = ns .. 'r:' .. P, ns .. 'x:' .. P
      if hide then
        local stored = redis.call('ZSCORE', R, member)
        if stored then
          local seq = redis.call('INCR', ns .. 'q')
          redis.call('ZREM', R, member)
          tombstone(ns, P, tonumber(stored), member, u6(v, 7), seq, now, ttl)
          redis.call('HSET', X, uk, stored)
          if exp ~= 'inf' then redis.call('PEXPIREAT', X, exp) end
          moved = moved + 1
        end
      else
        local stored = redis.call('HGET', X, uk)
        if stored then
          local seq = redis.call('INCR', ns .. 'q')
          redis.call('HDEL', X, uk)
          redis.call('ZADD', R, stored, member)
          if exp ~= 'inf' then redis.call('PEXPIREAT', R, exp) end
          redis.call('HSET', ns .. 's:' .. P, uk, string.sub(v, 1, 6) .. p6(seq) .. string.sub(v, 13))
          moved = moved + 1
        end
      end
    end
  end
end
return moved
