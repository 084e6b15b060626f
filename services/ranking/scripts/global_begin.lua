-- Start replaying one board's history into global (after common.lua and global.lua).
-- ARGV: board, weight, flag_ttl_ms. Returns 0 when a replay of that board is running.
local board = ARGV[1]
if rcall('SET', B .. ':grb:' .. board, '1', 'NX', 'PX', ARGV[3]) == false then return 0 end
rcall('HSETNX', B .. ':meta', 'g', 0)
rcall('HSET', B .. ':w', board, ARGV[2])
clear_shadow(board)
return 1
