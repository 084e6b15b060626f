-- Applying score events to one board (after common.lua). An event is the list
-- {event_id, user_key, stored_score, achieved_ms, display_name, dedup_bucket, bucket_expiry,
--  period_1, expiry_1, ...}: one (period, expiry) per window besides all-time, period ''
-- when the event's period is past retention. Callers send it packed (rank_store.py's
-- encode_events): EVENT, then WINDOW for each (period, expiry); strings carry their length.
local EVENT = '>Hc0c16i8i8Hc0Bc0i8'
local WINDOW = '>Bc0i8'

-- Returns status (0 applied, 1 duplicate), whether the all-time standing improved, and
-- for an applied event the all-time {stored, first_ms} after it and whether the player is
-- hidden (the answer reports them: no second read).
local function apply_event(ns, policy, ev, now, ttl)
  local eid, uk, s, t = ev[1], ev[2], tonumber(ev[3]), tonumber(ev[4])
  if ev[6] ~= '' and not first_time(ns .. 'e:', ns .. 'eb', ev[6], ev[7], eid) then return 1, false end
  local hidden = any_hidden ~= false and is_hidden(uk)
  local improved, entry = false, nil
  local nwin = (#ev - 7) / 2
  for i = 0, nwin do
    local P, exp = 'a', 0
    if i > 0 then P, exp = ev[6 + 2 * i], ev[7 + 2 * i] end
    if P ~= '' then
      local old = read_entry(ns, P, uk, hidden)
      local ns_, nt = combine(policy, old, s, t)
      local changed = not old or ns_ ~= old[1] or nt ~= old[2]
      if changed then
        write_entry(ns, P, uk, hidden, old, ns_, nt, ev[5], now, ttl)
        touch(ns, P, exp)
      elseif i == 0 and ev[5] ~= '' then
        rename(ns, uk, ev[5], old[4])
      end
      if i == 0 then
        improved = (not old) or ns_ < old[1]
        entry = changed and {ns_, nt} or old
      end
    end
  end
  return 0, improved, entry, hidden
end

-- Apply events buffered while a rebuild ran, oldest first, into namespace ns.
local function drain_pending(ns, policy, now, ttl, limit)
  local n = 0
  while limit <= 0 or n < limit do
    local item = rcall('LPOP', B .. ':pend')
    if not item then break end
    apply_event(ns, policy, cmsgpack.unpack(item), now, ttl)
    n = n + 1
  end
  return n
end

local KINDS = {'r:', 's:', 'x:', 'o:', 'ol:', 'pg:'}

local function union(a, b)
  local seen, out = {}, {}
  for _, list in ipairs({a, b}) do
    for _, v in ipairs(list) do
      if not seen[v] then seen[v] = true; out[#out + 1] = v end
    end
  end
  return out
end

-- Every key of namespace ns (per period and dedup bucket, then the singletons).
local function ns_keys(ns)
  local keys = {}
  for _, P in ipairs(rcall('ZRANGE', ns .. 'per', 0, -1)) do
    for _, kind in ipairs(KINDS) do keys[#keys + 1] = ns .. kind .. P end
  end
  for _, b in ipairs(rcall('ZRANGE', ns .. 'eb', 0, -1)) do keys[#keys + 1] = ns .. 'e:' .. b end
  for _, single in ipairs({'q', 'per', 'eb'}) do keys[#keys + 1] = ns .. single end
  return keys
end

local function unlink_all(keys)
  for i = 1, #keys, 500 do
    rcall('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
  end
end

-- Replace the live namespace by the shadow one; page tokens of the old state expire.
local function swap()
  local periods = union(rcall('ZRANGE', SHADOW .. 'per', 0, -1), rcall('ZRANGE', LIVE .. 'per', 0, -1))
  for _, P in ipairs(periods) do
    for _, kind in ipairs({'r:', 's:', 'x:'}) do
      if rcall('EXISTS', SHADOW .. kind .. P) == 1 then
        rcall('RENAME', SHADOW .. kind .. P, LIVE .. kind .. P)
      else
        rcall('UNLINK', LIVE .. kind .. P)
      end
    end
    rcall('UNLINK', LIVE .. 'o:' .. P, LIVE .. 'ol:' .. P, LIVE .. 'pg:' .. P)
  end
  local bs = union(rcall('ZRANGE', SHADOW .. 'eb', 0, -1), rcall('ZRANGE', LIVE .. 'eb', 0, -1))
  for _, b in ipairs(bs) do
    if rcall('EXISTS', SHADOW .. 'e:' .. b) == 1 then
      rcall('RENAME', SHADOW .. 'e:' .. b, LIVE .. 'e:' .. b)
    else
      rcall('UNLINK', LIVE .. 'e:' .. b)
    end
  end
  for _, single in ipairs({'q', 'per', 'eb'}) do
    if rcall('EXISTS', SHADOW .. single) == 1 then
      rcall('RENAME', SHADOW .. single, LIVE .. single)
    else
      rcall('UNLINK', LIVE .. single)
    end
  end
  rcall('HINCRBY', B .. ':meta', 'g', 1)
end
