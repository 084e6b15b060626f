-- Set a board's weight towards global (after common.lua and global.lua). ARGV: board, weight.
redis.call('HSETNX', B .. ':meta', 'g', 0)
redis.call('HSET', B .. ':w', ARGV[1], ARGV[2])
return 1
