-- ApplyScores for one board (after common.lua and board.lua), atomic per event.
-- ARGV: mode ('live' | 'shadow'), now_ms, page_ttl_ms, policy, windows per event, events: one
-- string, each event packed as board.lua's EVENT then WINDOW once per window (one argument
-- instead of seven or more per event: Valkey turns every argument into an object and a Lua
-- string, which cost more than the unpacking here).
-- live: returns 'gone' when the board has no meta key (deleted, or Redis lost it), else one
-- string of RESULT per event: status (0 applied, 1 duplicate, 2 deferred: a rebuild is
-- running and the event is queued for it), improved, whether there is an all-time standing,
-- its stored score and first_ms (0 when none), rank, players strictly below, total. shadow (a
-- rebuild replaying history; ARGV[3] is then the rebuild flag's TTL, which every call renews):
-- returns the count.
local mode, now, ttl, policy, nwin = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local data = ARGV[6]
local RESULT = '>BBBi8i8i8i8i8'

-- The events are read in one loop for both modes, each into one table reused for every
-- event (none keeps it past its event); written out here rather than as a function: a
-- Lua call per event costs more than its body.
local shadow = mode == 'shadow'
local rebuilding = false
if shadow then
  if rcall('PEXPIRE', B .. ':rb', ttl) == 0 then return redis.error_reply('REBUILD_LOST') end
else
  if rcall('EXISTS', B .. ':meta') == 0 then return 'gone' end
  rebuilding = rcall('EXISTS', B .. ':rb') == 1
  if not rebuilding and rcall('LLEN', B .. ':pend') > 0 then
    -- A rebuild died before its swap: what it queued still has to reach the live state.
    drain_pending(LIVE, policy, now, ttl, 0)
  end
  prune_registries(LIVE, now)
end

local ev, pos, out, n = {}, 1, {}, 0
while pos <= #data do
  local p
  ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], ev[7], p = sunpack(EVENT, data, pos)
  for j = 1, nwin do
    ev[6 + 2 * j], ev[7 + 2 * j], p = sunpack(WINDOW, data, p)
  end
  pos = p
  n = n + 1
  if shadow then
    apply_event(SHADOW, policy, ev, now, ttl)
  else
    local status, improved, e, hidden = 2, false, nil, nil
    if rebuilding then
      rcall('RPUSH', B .. ':pend', cmsgpack.pack(ev))
    else
      status, improved, e, hidden = apply_event(LIVE, policy, ev, now, ttl)
    end
    local uk = ev[2]
    if hidden == nil then
      -- Deferred or duplicate: the event wrote nothing, so read the standing.
      hidden = is_hidden(uk)
      e = read_entry(LIVE, 'a', uk, hidden)
    end
    local rank, below, total = standing(LIVE, 'a', e and (e[5] or fmt(e[1])), hidden)
    out[n] = spack(
      RESULT, status, improved and 1 or 0, e and 1 or 0, e and e[1] or 0, e and e[2] or 0, rank, below, total
    )
  end
end
finish_writes()
if shadow then return n end
return table.concat(out)
