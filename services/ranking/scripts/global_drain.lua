-- Apply events queued during a replay of ARGV[1] (after common.lua and global.lua), up to
-- ARGV[5] of them, into the shadow mirror ('shadow') or the live state ('live'). When the
-- queue is empty in live mode the replay ends. ARGV: board, target, now_ms, page_ttl_ms,
-- limit, flag_ttl_ms. Returns {done, drained}. Live mode also ends a failed replay.
local board, target, now, ttl, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if rcall('PEXPIRE', B .. ':grb:' .. board, ARGV[6]) == 0 and target ~= 'live' then
  return redis.error_reply('REBUILD_LOST')
end
local n = drain_global(board, target == 'live' and LIVE or SHADOW, now, ttl, limit)
finish_writes()
if rcall('LLEN', B .. ':gpend:' .. board) > 0 then return {0, n} end
if target == 'live' then
  rcall('DEL', B .. ':grb:' .. board)
  clear_shadow(board)
end
return {1, n}
