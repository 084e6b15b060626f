-- Start rebuilding a board (after common.lua and board.lua). ARGV: flag_ttl_ms, hidden user keys...
-- Returns 0 when a rebuild is already running. Live applies now queue their events; the
-- hidden set is re-synced from PostgreSQL; leftovers of a failed rebuild are cleared.
if rcall('SET', B .. ':rb', '1', 'NX', 'PX', ARGV[1]) == false then return 0 end
unlink_all(ns_keys(SHADOW))
rcall('HSETNX', B .. ':meta', 'g', 0)
rcall('UNLINK', B .. ':hid')
for i = 2, #ARGV, 500 do
  rcall('SADD', B .. ':hid', unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return 1
