-- Set a board's weight towards global (after common.lua and global.lua). ARGV: board, weight.
rcall('HSETNX', B .. ':meta', 'g', 0)
rcall('HSET', B .. ':w', ARGV[1], ARGV[2])
return 1
