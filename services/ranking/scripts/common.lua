-- Shared by every script (rank_store.py prepends it). KEYS[1] is the leaderboard's base key
-- "<prefix>{lb:<id>}"; all other keys of the board are derived from it, so they share its
-- hash slot (Redis Cluster). Namespaces: B..':' is live, B..':~' the shadow a rebuild fills.
--
-- Scores are kept "stored": smaller is better (descending boards store -score), so every
-- board ranks with ZRANGE/ZCOUNT from -inf. Members are 6 bytes of first-achieved
-- milliseconds then the 16-byte user id, so equal scores list the first achiever first.
-- Library functions as locals: a global's lookup per call was a table read or two each.
local rcall, ssub, sformat = redis.call, string.sub, string.format
local sunpack, spack, tonumber = struct.unpack, struct.pack, tonumber
local B = KEYS[1]
local LIVE = B .. ':'
local SHADOW = B .. ':~'
-- The live all-time keys, which nearly every event reads: built once here instead of
-- concatenated (and the result hashed and interned) per event.
local LIVE_S_A, LIVE_R_A = LIVE .. 's:a', LIVE .. 'r:a'
local MAX = 9007199254740992

-- '%d' is about twice as fast as '%.0f' and prints every nonzero integer within ±MAX (all
-- stored scores) the same; zero keeps '%.0f' for the sign of -0.
local function fmt(n)
  if n ~= 0 and n % 1 == 0 and n >= -MAX and n <= MAX then return sformat('%d', n) end
  return sformat('%.0f', n)
end
local function p6(n) return spack('>I6', n) end
local function u6(s, i) return (sunpack('>I6', s, i or 1)) end
local function clamp(n)
  if n > MAX then return MAX elseif n < -MAX then return -MAX end
  return n
end

-- Bytewise a <= b (Lua's own comparison follows the server's locale).
local function le(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end

-- Per-script caches: a script runs atomically (and keys do not expire while it runs), so
-- what it read stays true until it writes it itself. Each saves a redis.call per event.

-- Whether uk is hidden on this board. The hidden set changes only in board_init, hide and
-- rebuild_begin, none of which asks; while it is empty (the common case) one SCARD per
-- script stands for a SISMEMBER per event.
local any_hidden = nil
local function is_hidden(uk)
  if any_hidden == nil then any_hidden = rcall('SCARD', B .. ':hid') > 0 end
  return any_hidden and rcall('SISMEMBER', B .. ':hid', uk) == 1
end

-- Change sequence of namespace ns (key q): read once, counted here and written back by
-- finish_writes with one INCRBY, so q ends where one INCR per change would have left it.
-- hide.lua, which writes no entries through here, INCRs q itself; no script may do both.
local seqs, seq_read = {}, {}
local function next_seq(ns)
  local n = seqs[ns]
  if n == nil then
    n = tonumber(rcall('GET', ns .. 'q') or '0')
    seq_read[ns] = n
  end
  seqs[ns] = n + 1
  return n + 1
end

-- ZCARD of the ranked sets r:<P> read so far, kept exact by the ZADD/ZREM replies of
-- write_entry and remove_entry (the only writers of r: in scripts that call standing).
local cards = {}
local function card_add(R, n)
  local c = cards[R]
  if c then cards[R] = c + n end
end

-- Whether page tokens of a period may be in use (its pg: key exists); only read_top sets it.
local paged = {}

-- uk's entry in period P: {stored, first_ms, member, standing value, stored as Redis
-- answered it} or nil. Standing hash s:<P> holds first_ms(6) .. seq(6), and in the all-time
-- period also the display name (one hash entry per player instead of two); visible players'
-- scores are in r:<P>, hidden ones' in x:<P>. The seq and the name stay in the standing
-- value until a write needs them: most events change nothing.
local function read_entry(ns, P, uk, hidden)
  local live_a = P == 'a' and ns == LIVE
  local v = rcall('HGET', live_a and LIVE_S_A or ns .. 's:' .. P, uk)
  if not v then return nil end
  local member = ssub(v, 1, 6) .. uk
  local stored
  if hidden then
    stored = rcall('HGET', ns .. 'x:' .. P, uk)
  else
    stored = rcall('ZSCORE', live_a and LIVE_R_A or ns .. 'r:' .. P, member)
  end
  if not stored then return nil end
  -- u6(v) written out: this runs for every event, and a Lua call costs more than its body.
  return {tonumber(stored), (sunpack('>I6', v, 1)), member, v, stored}
end

-- Display names live after the 12 bytes of the all-time standing value.
local function name_of(v)
  if not v then return '' end
  return ssub(v, 13)
end

-- Keep the all-time name current when the standing itself does not change. v: uk's
-- all-time standing value when the caller has it (read_entry's [4]), else nil to read it.
local function rename(ns, uk, name, v)
  if name == '' then return end
  local S = ns .. 's:a'
  v = v or rcall('HGET', S, uk)
  if v and ssub(v, 13) ~= name then rcall('HSET', S, uk, ssub(v, 1, 12) .. name) end
end

-- While page tokens of period P may be in use (pg:<P> exists), keep replaced entries as
-- tombstones (member .. created_seq .. replaced_seq) for ttl ms so later pages can read the
-- board as it was at the first page.
local function tombstone(ns, P, stored, member, created, replaced, now, ttl)
  local pg = ns .. 'pg:' .. P
  local on = paged[pg]
  if on == nil then
    on = rcall('EXISTS', pg) == 1
    paged[pg] = on
  end
  if not on then return end
  local O, OL = ns .. 'o:' .. P, ns .. 'ol:' .. P
  local tm = member .. p6(created) .. p6(replaced)
  rcall('ZADD', O, fmt(stored), tm)
  rcall('RPUSH', OL, p6(now) .. tm)
  rcall('PEXPIRE', O, 2 * ttl)
  rcall('PEXPIRE', OL, 2 * ttl)
  for _ = 1, 4 do
    local head = rcall('LINDEX', OL, 0)
    if not head or u6(head, 1) + ttl >= now then break end
    rcall('LPOP', OL)
    rcall('ZREM', O, ssub(head, 7))
  end
end

-- Replace uk's entry (old: read_entry's result or nil) by (stored, first_ms); name ('' =
-- keep the old one) is kept in the all-time period only.
local function write_entry(ns, P, uk, hidden, old, stored, first_ms, name, now, ttl)
  local seq = next_seq(ns)
  local v = p6(first_ms) .. p6(seq)
  if P == 'a' then
    if name == '' and old then name = ssub(old[4], 13) end
    v = v .. name
  end
  local R = ns .. 'r:' .. P
  if old and not hidden then
    card_add(R, -rcall('ZREM', R, old[3]))
    tombstone(ns, P, old[1], old[3], u6(old[4], 7), seq, now, ttl)
  end
  if hidden then
    rcall('HSET', ns .. 'x:' .. P, uk, fmt(stored))
  else
    card_add(R, rcall('ZADD', R, fmt(stored), ssub(v, 1, 6) .. uk))
  end
  rcall('HSET', ns .. 's:' .. P, uk, v)
end

local function remove_entry(ns, P, uk, hidden, old, now, ttl)
  local seq = next_seq(ns)
  if hidden then
    rcall('HDEL', ns .. 'x:' .. P, uk)
  else
    local R = ns .. 'r:' .. P
    card_add(R, -rcall('ZREM', R, old[3]))
    tombstone(ns, P, old[1], old[3], u6(old[4], 7), seq, now, ttl)
  end
  rcall('HDEL', ns .. 's:' .. P, uk)
end

-- rank (1 + strictly better), players strictly below, total of an entry with stored score
-- s (as Redis answered it, or formatted by fmt; nil = no entry); rank 0 when not ranked.
local function standing(ns, P, s, hidden)
  local R = (P == 'a' and ns == LIVE) and LIVE_R_A or ns .. 'r:' .. P
  local total = cards[R]
  if total == nil then
    total = rcall('ZCARD', R)
    cards[R] = total
  end
  if hidden or not s then return 0, 0, total end
  local open = '(' .. s
  return rcall('ZCOUNT', R, '-inf', open) + 1, rcall('ZCOUNT', R, open, '+inf'), total
end

-- Players strictly below each of a contiguous run of entries (stored scores, ascending),
-- the first at 0-based position first: within the run positions tell (the run's last tie
-- group needs one ZCOUNT), so ten entries cost one call instead of ten.
local function below_run(R, scores, first, total)
  local below = {}
  local n = #scores
  if n == 0 then return below end
  local tail = total - rcall('ZCOUNT', R, '-inf', scores[n])
  below[n] = tail
  for i = n - 1, 1, -1 do
    if scores[i] == scores[i + 1] then
      below[i] = below[i + 1]
    else
      below[i] = total - (first + i)
    end
  end
  return below
end

-- The new (stored, first_ms) after a submission of stored score s at t (policy: 1 best,
-- 2 latest, 3 sum). Best keeps the earliest time among equal scores, so its result does not
-- depend on delivery order.
local function combine(policy, old, s, t)
  if not old then return s, t end
  if policy == 1 then
    if s < old[1] or (s == old[1] and t < old[2]) then return s, t end
    return old[1], old[2]
  elseif policy == 2 then
    -- An event older than the standing score (a late redelivery, or concurrent
    -- ingest batches finishing out of order) must not replace it.
    if s == old[1] or t < old[2] then return old[1], old[2] end
    return s, t
  end
  local n = clamp(old[1] + s)
  if n == old[1] then return old[1], old[2] end
  return n, t
end

-- Periods and dedup buckets touched by this script: registered and given their expiry once.
-- exp: a number or, as the events carry it, a string (converted once here, not per event).
local touched = {}
local function touch(ns, P, exp)
  local k = ns .. P
  if touched[k] == nil then touched[k] = {ns, P, tonumber(exp)} end
end

-- Every script that writes entries ends with this: the touched periods' registration and
-- expiry, and the change sequences counted by next_seq.
local function finish_writes()
  for ns, n in pairs(seqs) do rcall('INCRBY', ns .. 'q', n - seq_read[ns]) end
  seqs, seq_read = {}, {}
  for _, v in pairs(touched) do
    local ns, P, exp = v[1], v[2], v[3]
    if exp > 0 then
      rcall('ZADD', ns .. 'per', exp, P)
      rcall('PEXPIREAT', ns .. 'r:' .. P, exp)
      rcall('PEXPIREAT', ns .. 's:' .. P, exp)
      rcall('PEXPIREAT', ns .. 'x:' .. P, exp)
    else
      rcall('ZADD', ns .. 'per', '+inf', P)
    end
  end
  touched = {}
end

-- Dedup of event ids: one set per hour of achieved time, kept until the dedup window after
-- that hour ends. bucket '' = the event is older than the window: it cannot be checked.
-- exp: the bucket's expiry as the event carries it (a string).
local buckets = {}
local function first_time(prefix, registry, bucket, exp, eid)
  if bucket == '' then return true end
  local key = prefix .. bucket
  if rcall('SADD', key, eid) == 0 then return false end
  if not buckets[key] then
    buckets[key] = true
    exp = tonumber(exp)
    rcall('PEXPIREAT', key, exp)
    rcall('ZADD', registry, exp, bucket)
  end
  return true
end

local function prune_registries(ns, now)
  rcall('ZREMRANGEBYSCORE', ns .. 'per', '-inf', '(' .. now)
  rcall('ZREMRANGEBYSCORE', ns .. 'eb', '-inf', '(' .. now)
end
