-- Finish a rebuild (after common.lua and board.lua): apply up to ARGV[4] queued events to the
-- shadow; once the queue is empty, swap shadow and live and let live applies resume, all in
-- this one atomic step. ARGV: now_ms, page_ttl_ms, policy, limit, flag_ttl_ms.
-- Returns {done (0/1), drained}.
local now, ttl, policy, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if rcall('PEXPIRE', B .. ':rb', ARGV[5]) == 0 then return redis.error_reply('REBUILD_LOST') end
local n = drain_pending(SHADOW, policy, now, ttl, limit)
finish_writes()
if rcall('LLEN', B .. ':pend') > 0 then return {0, n} end
swap()
rcall('DEL', B .. ':rb')
return {1, n}
