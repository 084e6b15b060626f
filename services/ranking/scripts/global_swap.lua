-- After a replay's reconcile (after common.lua and global.lua): the replay's dedup sets become
-- the live ones and its shadow mirror goes. ARGV: board.
local board = ARGV[1]
local seen, all = {}, {}
for _, pfx in ipairs({SHADOW, LIVE}) do
  for _, b in ipairs(rcall('ZRANGE', pfx .. 'geb:' .. board, 0, -1)) do
    if not seen[b] then seen[b] = true; all[#all + 1] = b end
  end
end
for _, b in ipairs(all) do
  local src, dst = SHADOW .. 'ge:' .. board .. ':' .. b, LIVE .. 'ge:' .. board .. ':' .. b
  if rcall('EXISTS', src) == 1 then rcall('RENAME', src, dst) else rcall('UNLINK', dst) end
end
if rcall('EXISTS', SHADOW .. 'geb:' .. board) == 1 then
  rcall('RENAME', SHADOW .. 'geb:' .. board, LIVE .. 'geb:' .. board)
else
  rcall('UNLINK', LIVE .. 'geb:' .. board)
end
rcall('UNLINK', SHADOW .. 'm:' .. board)
return #all
