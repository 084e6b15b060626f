-- Make a board exist in Redis (after common.lua and board.lua). ARGV: sync ('1' replaces the
-- hidden set by the given user keys), hidden user keys...
rcall('HSETNX', B .. ':meta', 'g', 0)
if ARGV[1] == '1' then
  rcall('UNLINK', B .. ':hid')
  for i = 2, #ARGV, 500 do
    rcall('SADD', B .. ':hid', unpack(ARGV, i, math.min(i + 499, #ARGV)))
  end
end
return 1
