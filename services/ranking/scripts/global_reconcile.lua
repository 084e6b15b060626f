-- Recompute some players' global scores from the mirrors (after common.lua and global.lua).
-- ARGV: now_ms, page_ttl_ms, swap_board (copy its shadow mirror entry to live first, or ''),
-- reweigh_board (recompute its contribution with the current weight, or ''), n, the n boards
-- that count, user keys...
local now, ttl, swap, rw, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local boards = {}
for i = 1, nb do boards[i] = ARGV[5 + i] end
for i = 6 + nb, #ARGV do
  local uk = ARGV[i]
  if swap ~= '' then
    local v = rcall('HGET', SHADOW .. 'm:' .. swap, uk)
    if v then rcall('HSET', LIVE .. 'm:' .. swap, uk, v) else rcall('HDEL', LIVE .. 'm:' .. swap, uk) end
  end
  if rw ~= '' then
    local m = mirror_get(LIVE .. 'm:' .. rw, uk)
    if m then mirror_put(LIVE .. 'm:' .. rw, uk, m[1], round(weight(rw) * m[1]), m[3]) end
  end
  local total, any, tmax = 0, false, 0
  for _, b in ipairs(boards) do
    local m = mirror_get(LIVE .. 'm:' .. b, uk)
    if m then
      any = true
      total = total + m[2]
      if m[3] > tmax then tmax = m[3] end
    end
  end
  if any then g_set(uk, total, tmax, now, ttl) else g_set(uk, nil, 0, now, ttl) end
end
finish_writes()
return #ARGV - 5 - nb
