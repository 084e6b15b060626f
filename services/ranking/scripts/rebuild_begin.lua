-- Start rebuilding a board (after common.lua and board.lua). ARGV: flag_ttl_ms, hidden user keys...
-- Returns 0 when a rebuild is already running. Live applies now queue their events; the
-- hidden set is re-synced from PostgreSQL; leftovers of a failed rebuild are cleared.
if redis.call('SET', B .. ':rb', '1', 'NX', 'PX', ARGV[1]) == false then return 0 end
unlink_all(ns_keys(SHADOW))
redis.call('HSETNX', B .. ':meta', 'g', 0)
redis.call('UNLINK', B .. ':hid')
for i = 2, #ARGV, 500 do
  redis.call('SADD', B .. ':hid', unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return 1
