-- The global part of ApplyScores (after common.lua and global.lua).
-- ARGV: mode ('live' | 'shadow'), now_ms, page_ttl_ms, board (shadow only), flag_ttl_ms, events
-- of 10 fields. live: events of boards being replayed into global are queued for that
-- replay; shadow: a replay of one board's history into its shadow mirror.
local mode, now, ttl, only, flag_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local count = (#ARGV - 5) / 10

local function event(i)
  local ev, base = {}, 5 + (i - 1) * 10
  for j = 1, 10 do ev[j] = ARGV[base + j] end
  return ev
end

if mode == 'shadow' then
  if rcall('PEXPIRE', B .. ':grb:' .. only, flag_ttl) == 0 then return redis.error_reply('REBUILD_LOST') end
  local w = weight(only)
  for i = 1, count do mirror_apply(SHADOW, event(i), w, false, now, ttl) end
  return count
end

local replaying = {}
for i = 1, count do
  local ev = event(i)
  local board = ev[1]
  local w = weight(board)
  if w > 0 then
    if replaying[board] == nil then
      replaying[board] = rcall('EXISTS', B .. ':grb:' .. board) == 1
      rcall('ZREMRANGEBYSCORE', LIVE .. 'geb:' .. board, '-inf', '(' .. now)
      if not replaying[board] then drain_global(board, LIVE, now, ttl, 0) end
    end
    if replaying[board] then
      rcall('RPUSH', B .. ':gpend:' .. board, cmsgpack.pack(ev))
    else
      mirror_apply(LIVE, ev, w, true, now, ttl)
    end
  end
end
finish_writes()
return count
