-- ListTopEntries (after common.lua). ARGV: period, page_size, now_ms, page_ttl_ms, then for
-- pages after the first: generation, snapshot seq, cursor stored score, cursor member.
--
-- The first page reads the live set and notes the board's change sequence S; while tokens
-- may be in use, replaced entries are kept as tombstones. A later page lists the board as
-- it was at S, strictly after the cursor: live entries created at or before S, merged with
-- tombstones alive at S (created <= S < replaced). So no player is skipped or repeated
-- while scores change between pages.
-- Returns {generation, S, total, more, n, then per entry: stored, member, below, name,
-- then (later pages) cursor stored, cursor member} or {'stale'} when the token's
-- generation is gone (the board was rebuilt).
local P, size, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local R, O = LIVE .. 'r:' .. P, LIVE .. 'o:' .. P
local gen = rcall('HGET', B .. ':meta', 'g') or '0'
local total = rcall('ZCARD', R)

-- below: per entry, or nil to count (entries of a snapshot page are not one live run).
local function finish(seq, more, stored, members, below, tail)
  local out = {gen, seq, total, more and 1 or 0, #members}
  if #members > 0 then
    local uks = {}
    for i, m in ipairs(members) do uks[i] = ssub(m, 7) end
    local names = rcall('HMGET', LIVE .. 's:a', unpack(uks))
    local counted = {}
    for i, m in ipairs(members) do
      local s = stored[i]
      local b = below and below[i]
      if not b then
        b = counted[s]
        if b == nil then
          b = total - rcall('ZCOUNT', R, '-inf', s)
          counted[s] = b
        end
      end
      local n = #out
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = s, m, b, name_of(names[i])
    end
  end
  if tail then out[#out + 1] = tail[1]; out[#out + 1] = tail[2] end
  return out
end

if #ARGV == 4 then
  local seq = rcall('GET', LIVE .. 'q') or '0'
  local items = rcall('ZRANGE', R, 0, size - 1, 'WITHSCORES')
  local stored, members = {}, {}
  for i = 1, #items, 2 do members[#members + 1] = items[i]; stored[#stored + 1] = items[i + 1] end
  local more = total > size
  if more then
    -- Tombstones must outlive every token handed out: keep the flag at least ttl ahead.
    local pg = LIVE .. 'pg:' .. P
    if rcall('PTTL', pg) < ttl then rcall('SET', pg, '1', 'PX', 2 * ttl) end
  end
  return finish(seq, more, stored, members, below_run(R, stored, 0, total), nil)
end

if ARGV[5] ~= gen then return {'stale'} end
local S, cs, cm = tonumber(ARGV[6]), ARGV[7], ARGV[8]

-- Index of the first element of z after (cs, bound) in (score, member) order.
local function after(z, bound)
  local lo = rcall('ZCOUNT', z, '-inf', '(' .. cs)
  local hi = rcall('ZCOUNT', z, '-inf', cs)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if le(rcall('ZRANGE', z, mid, mid)[1], bound) then lo = mid + 1 else hi = mid end
  end
  return lo
end

local CHUNK = math.max(16, size)
local function source(z, start)
  return {z = z, pos = start, buf = {}, i = 1, done = false}
end
local function peek(src)
  if src.i > #src.buf then
    if src.done then return nil end
    src.buf = rcall('ZRANGE', src.z, src.pos, src.pos + CHUNK - 1, 'WITHSCORES')
    src.i = 1
    src.pos = src.pos + CHUNK
    if #src.buf < 2 * CHUNK then src.done = true end
    if #src.buf == 0 then return nil end
  end
  return src.buf[src.i], src.buf[src.i + 1]
end

local live, dead = source(R, after(R, cm)), source(O, after(O, cm .. string.rep('\255', 12)))
local stored, members = {}, {}
local last_s, last_m = cs, cm
local budget = 20 * size + 200
while #members < size and budget > 0 do
  local lm, ls = peek(live)
  local dm, ds = peek(dead)
  if not lm and not dm then break end
  local take_live
  if not dm then
    take_live = true
  elseif not lm then
    take_live = false
  else
    local a, b = tonumber(ls), tonumber(ds)
    take_live = a < b or (a == b and le(lm, ssub(dm, 1, 22)))
  end
  budget = budget - 1
  if take_live then
    live.i = live.i + 2
    last_s, last_m = ls, lm
    local v = rcall('HGET', LIVE .. 's:' .. P, ssub(lm, 7))
    if v and u6(v, 7) <= S then stored[#stored + 1] = ls; members[#members + 1] = lm end
  else
    dead.i = dead.i + 2
    last_s, last_m = ds, ssub(dm, 1, 22)
    if u6(dm, 23) <= S and S < u6(dm, 29) then stored[#stored + 1] = ds; members[#members + 1] = last_m end
  end
end
local more = peek(live) ~= nil or peek(dead) ~= nil
return finish(ARGV[6], more, stored, members, nil, {last_s, last_m})
