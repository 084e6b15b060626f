-- ApplyScores for one board (after common.lua and board.lua), atomic per event.
-- ARGV: mode ('live' | 'shadow'), now_ms, page_ttl_ms, policy, fields per event, events...
-- live: returns 'gone' when the board has no meta key (deleted, or Redis lost it), else
-- 7 values per event: status (0 applied, 1 duplicate, 2 deferred: a rebuild is running and
-- the event is queued for it), improved, all-time stored score ('' = none), first_ms, rank,
-- players strictly below, total. shadow (a rebuild replaying history; ARGV[3] is then the
-- rebuild flag's TTL, which every call renews): returns the count.
local mode, now, ttl, policy, width = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local count = (#ARGV - 5) / width

-- Event i's fields, in one table reused for every event (none keeps it past its event).
local ev = {}
local function event(i)
  local base = 5 + (i - 1) * width
  for j = 1, width do ev[j] = ARGV[base + j] end
  return ev
end

if mode == 'shadow' then
  if redis.call('PEXPIRE', B .. ':rb', ttl) == 0 then return redis.error_reply('REBUILD_LOST') end
  for i = 1, count do apply_event(SHADOW, policy, event(i), now, ttl) end
  finish_writes()
  return count
end

if redis.call('EXISTS', B .. ':meta') == 0 then return 'gone' end
local rebuilding = redis.call('EXISTS', B .. ':rb') == 1
if not rebuilding and redis.call('LLEN', B .. ':pend') > 0 then
  -- A rebuild died before its swap: what it queued still has to reach the live state.
  drain_pending(LIVE, policy, now, ttl, 0)
end
prune_registries(LIVE, now)

local out = {}
for i = 1, count do
  local ev = event(i)
  local status, improved, e, hidden = 2, false, nil, nil
  if rebuilding then
    redis.call('RPUSH', B .. ':pend', cmsgpack.pack(ev))
  else
    status, improved, e, hidden = apply_event(LIVE, policy, ev, now, ttl)
  end
  local uk = ev[2]
  if hidden == nil then
    -- Deferred or duplicate: the event wrote nothing, so read the standing.
    hidden = is_hidden(uk)
    e = read_entry(LIVE, 'a', uk, hidden)
  end
  local s = e and fmt(e[1])
  local rank, below, total = standing(LIVE, 'a', s, hidden)
  local n = #out
  out[n + 1] = status
  out[n + 2] = improved and 1 or 0
  out[n + 3] = s or ''
  out[n + 4] = e and e[2] or 0
  out[n + 5] = rank
  out[n + 6] = below
  out[n + 7] = total
end
finish_writes()
return out
