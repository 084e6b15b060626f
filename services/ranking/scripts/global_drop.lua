-- Forget a board in global once its contributions are reconciled away (after common.lua and
-- global.lua). ARGV: board.
local board = ARGV[1]
local keys = {B .. ':gpend:' .. board, B .. ':grb:' .. board}
for _, pfx in ipairs({LIVE, SHADOW}) do
  for _, b in ipairs(rcall('ZRANGE', pfx .. 'geb:' .. board, 0, -1)) do
    keys[#keys + 1] = pfx .. 'ge:' .. board .. ':' .. b
  end
  keys[#keys + 1] = pfx .. 'geb:' .. board
  keys[#keys + 1] = pfx .. 'm:' .. board
end
rcall('HDEL', B .. ':w', board)
rcall('UNLINK', unpack(keys))
return #keys
