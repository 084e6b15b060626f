-- The global leaderboard (after common.lua; KEYS[1] is its base key). For every board that
-- counts towards it, the mirror hash m:<board> keeps each player's standing on that board
-- (computed here from the same events, so one pipelined round trip updates both), the
-- contribution round(weight * standing) it added to the player's global score, and when.
-- Global events: {board, policy, sign (-1 descending), event_id, user_key, stored_score,
-- achieved_ms, display_name, dedup_bucket, bucket_expiry}. Weights live in hash w.

local function round(x)
  if x >= 0 then return math.floor(x + 0.5) end
  return -math.floor(-x + 0.5)
end

local function mirror_get(M, uk)
  local v = rcall('HGET', M, uk)
  if not v then return nil end
  local real, c, t = sunpack('>ddI6', v)
  return {real, c, t}
end

local function mirror_put(M, uk, real, c, t)
  rcall('HSET', M, uk, spack('>ddI6', real, c, t))
end

-- Set uk's global score to total (nil: no entry) keeping its first-achieved time if unchanged.
local function g_set(uk, total, t, now, ttl)
  local hidden = is_hidden(uk)
  local old = read_entry(LIVE, 'a', uk, hidden)
  if not old then
    -- Left in the other place when the hidden set was re-synced: drop it.
    local stray = read_entry(LIVE, 'a', uk, not hidden)
    if stray then remove_entry(LIVE, 'a', uk, not hidden, stray, now, ttl) end
  end
  if total == nil then
    if old then remove_entry(LIVE, 'a', uk, hidden, old, now, ttl) end
    return
  end
  total = clamp(total)
  if old and 0 - old[1] == total then return end
  -- A reconciled entry keeps its name; a new one gets it with the player's next event.
  write_entry(LIVE, 'a', uk, hidden, old, 0 - total, t, '', now, ttl)
  touch(LIVE, 'a', 0)
end

local function g_add(uk, delta, t, name, now, ttl)
  local hidden = is_hidden(uk)
  local old = read_entry(LIVE, 'a', uk, hidden)
  local cur = old and 0 - old[1] or 0
  local total = clamp(cur + delta)
  if old and total == cur then
    rename(LIVE, uk, name, old[4])
    return
  end
  write_entry(LIVE, 'a', uk, hidden, old, 0 - total, t, name, now, ttl)
  touch(LIVE, 'a', 0)
end

-- Apply one global event to namespace pfx's mirror; with update_g also to the global score.
local function mirror_apply(pfx, ev, w, update_g, now, ttl)
  local board, policy, sign = ev[1], tonumber(ev[2]), tonumber(ev[3])
  local eid, uk, s, t = ev[4], ev[5], tonumber(ev[6]), tonumber(ev[7])
  if not first_time(pfx .. 'ge:' .. board .. ':', pfx .. 'geb:' .. board, ev[9], ev[10], eid) then
    return
  end
  local M = pfx .. 'm:' .. board
  local old = mirror_get(M, uk)
  local olde = nil
  if old then olde = {sign * old[1], old[3]} end
  local nst, nt = combine(policy, olde, s, t)
  if olde and nst == olde[1] then
    if update_g then rename(LIVE, uk, ev[8]) end
    return
  end
  local real = sign * nst + 0
  local c = round(w * real)
  mirror_put(M, uk, real, c, t)
  if update_g then
    if not old or c ~= old[2] then
      g_add(uk, c - (old and old[2] or 0), t, ev[8], now, ttl)
    else
      rename(LIVE, uk, ev[8])
    end
  end
end

local weights = {}
local function weight(board)
  local w = weights[board]
  if w == nil then
    w = tonumber(rcall('HGET', B .. ':w', board) or '0')
    weights[board] = w
  end
  return w
end

local function drain_global(board, pfx, now, ttl, limit)
  local n = 0
  while limit <= 0 or n < limit do
    local item = rcall('LPOP', B .. ':gpend:' .. board)
    if not item then break end
    mirror_apply(pfx, cmsgpack.unpack(item), weight(board), pfx == LIVE, now, ttl)
    n = n + 1
  end
  return n
end

local function clear_shadow(board)
  for _, b in ipairs(rcall('ZRANGE', SHADOW .. 'geb:' .. board, 0, -1)) do
    rcall('UNLINK', SHADOW .. 'ge:' .. board .. ':' .. b)
  end
  rcall('UNLINK', SHADOW .. 'geb:' .. board, SHADOW .. 'm:' .. board)
end
