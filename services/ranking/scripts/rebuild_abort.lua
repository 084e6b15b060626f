-- Give up a rebuild (after common.lua and board.lua): live applies resume, and the events
-- queued meanwhile are applied to the live state now. ARGV: now_ms, page_ttl_ms, policy.
rcall('DEL', B .. ':rb')
unlink_all(ns_keys(SHADOW))
local n = drain_pending(LIVE, tonumber(ARGV[3]), tonumber(ARGV[1]), tonumber(ARGV[2]), 0)
finish_writes()
return n
