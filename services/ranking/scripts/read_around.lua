-- ListEntriesAroundUser (after common.lua). ARGV: period, user key, before, after.
-- Returns {} when unranked, else {total, index of the first entry (0-based), its rank, n,
-- then per entry: stored, member, below, name}; entries are in rank order, the player's
-- included.
local P, uk, before, after = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local R = LIVE .. 'r:' .. P
local v = rcall('HGET', LIVE .. 's:' .. P, uk)
if not v then return {} end
local pos = rcall('ZRANK', R, ssub(v, 1, 6) .. uk)
if not pos then return {} end
local lo = math.max(0, pos - before)
local items = rcall('ZRANGE', R, lo, pos + after, 'WITHSCORES')
local total = rcall('ZCARD', R)
local out = {total, lo, rcall('ZCOUNT', R, '-inf', '(' .. items[2]) + 1, #items / 2}
local uks, scores = {}, {}
for i = 1, #items, 2 do
  uks[#uks + 1] = ssub(items[i], 7)
  scores[#scores + 1] = items[i + 1]
end
local names = rcall('HMGET', LIVE .. 's:a', unpack(uks))
local below = below_run(R, scores, lo, total)
for j = 1, #uks do
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4] = scores[j], items[2 * j - 1], below[j], name_of(names[j])
end
return out
