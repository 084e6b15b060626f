-- Make a board exist in Redis (after common.lua and board.lua). ARGV: sync ('1' replaces the
-- hidden set by the given user keys), hidden user keys...
redis.call('HSETNX', B .. ':meta', 'g', 0)
if ARGV[1] == '1' then
  redis.call('UNLINK', B .. ':hid')
  for i = 2, #ARGV, 500 do
    redis.call('SADD', B .. ':hid', unpack(ARGV, i, math.min(i + 499, #ARGV)))
  end
end
return 1
