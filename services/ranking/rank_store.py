"""Redis access of the live rankings: key layout, compact encodings and the Lua scripts.

Every key of leaderboard `<id>` starts with `<prefix>{lb:<id>}`, so one board's keys
share a Redis Cluster hash slot and one script can update them atomically; the
scripts derive their keys from that base (KEYS[1]). docs/ranking.md has the layout.
Each call here is one round trip: a script, or a pipeline of scripts.
"""

from __future__ import annotations

import asyncio
import binascii
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from functools import cache
from hashlib import sha1
from pathlib import Path
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leaderboard.runtime.errors import Unavailable
from leaderboard.runtime.ids import hyphenated
from services.ranking.script_channel import ScriptChannel

SCRIPTS_DIR = Path(__file__).parent / "scripts"
GLOBAL_ID = "global"
# Fields of one board event before its (period, expiry) pairs; see scripts/board.lua.
EVENT_FIELDS = 7
GLOBAL_EVENT_FIELDS = 10
# apply.lua's answer per event (its RESULT): status, improved, has a standing, stored score,
# first_ms, rank, players strictly below, total.
_RESULT = struct.Struct(">BBBqqqqq")


class RebuildLost(Unavailable):
    """The rebuild flag expired under a running rebuild (it stalled longer than its TTL)."""

    def __init__(self) -> None:
        super().__init__("the rebuild stalled and was abandoned; run it again", reason="REBUILD_ABANDONED")


# --- compact encodings -------------------------------------------------------------


def user_key(user_id: str) -> bytes:
    """A player's 16-byte key (the UUID's bytes). Raises ValueError when it is no UUID."""
    if len(user_id) == 36 and user_id[8:24:5] == "----":  # the canonical form's hyphens
        try:
            key = binascii.a2b_hex(user_id.replace("-", ""))
        except binascii.Error:
            pass
        else:
            if len(key) == 16:  # more hyphens than the four: not this form
                return key
    return uuid.UUID(user_id).bytes


_ID_CACHE: dict[bytes, str] = {}
_ID_CACHE_SIZE = 100_000


def user_id_of(key: bytes) -> str:
    # The same players (a top 10) are formatted over and over: remember recent ones.
    found = _ID_CACHE.get(key)
    if found is None:
        found = hyphenated(key.hex())
        if len(_ID_CACHE) >= _ID_CACHE_SIZE:
            _ID_CACHE.clear()
        _ID_CACHE[key] = found
    return found


def event_key(event_id: str) -> bytes:
    """Dedup member of an event id: 16 bytes for a UUID, else '~' + its UTF-8."""
    try:
        return user_key(event_id)
    except ValueError:
        return b"~" + event_id.encode()


def first_ms(member: bytes) -> int:
    """The first-achieved milliseconds at the front of a ranked member."""
    return int.from_bytes(member[:6], "big")


# Packed layouts of board events (scripts/board.lua's EVENT and WINDOW), by string lengths.
_EVENT_LAYOUTS: dict[tuple[int, int, int], struct.Struct] = {}
_WINDOW_LAYOUTS: dict[int, struct.Struct] = {}


def encode_event(event: Sequence[Any]) -> bytes:
    """One board event, (event id key, user key, stored score, time, name, dedup bucket, its
    expiry, flat (period, expiry) pairs of the board's windows), packed as apply.lua reads
    it: half the bytes of sending each field as an argument, and far less work in Redis,
    which makes an object and a Lua string of every argument."""
    eid, key, stored, t, name, bucket, expiry, windows = event
    name_b, bucket_b = name.encode(), bucket.encode()
    shape = (len(eid), len(name_b), len(bucket_b))
    layout = _EVENT_LAYOUTS.get(shape)
    if layout is None:
        layout = _EVENT_LAYOUTS[shape] = struct.Struct(f">H{shape[0]}s16sqqH{shape[1]}sB{shape[2]}sq")
    packed = layout.pack(shape[0], eid, key, stored, t, shape[1], name_b, shape[2], bucket_b, expiry)
    if not windows:
        return packed
    parts = [packed]
    for j in range(0, len(windows), 2):
        period = windows[j].encode()
        window = _WINDOW_LAYOUTS.get(len(period))
        if window is None:
            window = _WINDOW_LAYOUTS[len(period)] = struct.Struct(f">B{len(period)}sq")
        parts.append(window.pack(len(period), period, windows[j + 1]))
    return b"".join(parts)


def encode_events(width: int, fields: Sequence[Any]) -> bytes:
    """Board events given as `width` flat fields each (see board.lua), packed one after another."""
    return b"".join(
        encode_event((*fields[i : i + EVENT_FIELDS], fields[i + EVENT_FIELDS : i + width]))
        for i in range(0, len(fields), width)
    )


# --- scripts -------------------------------------------------------------------------


@cache
def _source(name: str) -> str:
    return (SCRIPTS_DIR / f"{name}.lua").read_text()


class Script:
    """One Lua script: common.lua + its library + its body, run with EVALSHA."""

    def __init__(self, body: str, *libraries: str) -> None:
        self.name = body
        self.source = "\n".join(_source(n) for n in ("common", *libraries, body))
        self.sha = sha1(self.source.encode()).hexdigest()


APPLY = Script("apply", "board")
REBUILD_BEGIN = Script("rebuild_begin", "board")
REBUILD_FINISH = Script("rebuild_finish", "board")
REBUILD_ABORT = Script("rebuild_abort", "board")
BOARD_INIT = Script("board_init", "board")
BOARD_DELETE = Script("board_delete", "board")
HIDE = Script("hide")
READ_USER = Script("read_user")
READ_USERS = Script("read_users")
READ_AROUND = Script("read_around")
READ_TOP = Script("read_top")
GLOBAL_APPLY = Script("global_apply", "global")
GLOBAL_BEGIN = Script("global_begin", "global")
GLOBAL_DRAIN = Script("global_drain", "global")
GLOBAL_RECONCILE = Script("global_reconcile", "global")
GLOBAL_SWAP = Script("global_swap", "global")
GLOBAL_WEIGHT = Script("global_weight", "global")
GLOBAL_DROP = Script("global_drop", "global")
ALL_SCRIPTS = (
    APPLY,
    REBUILD_BEGIN,
    REBUILD_FINISH,
    REBUILD_ABORT,
    BOARD_INIT,
    BOARD_DELETE,
    HIDE,
    READ_USER,
    READ_USERS,
    READ_AROUND,
    READ_TOP,
    GLOBAL_APPLY,
    GLOBAL_BEGIN,
    GLOBAL_DRAIN,
    GLOBAL_RECONCILE,
    GLOBAL_SWAP,
    GLOBAL_WEIGHT,
    GLOBAL_DROP,
)

Call = tuple[Script, str, Sequence[Any]]


# --- results ---------------------------------------------------------------------------


class Applied(NamedTuple):
    """One event's outcome as the board script reports it (apply.lua's RESULT, unpacked as
    it is: a tuple per event, no object built field by field)."""

    status: int  # 0 applied, 1 duplicate, 2 deferred (a rebuild queued it)
    improved: int  # 1 when the all-time standing improved
    has: int  # 1 when there is an all-time standing (stored and first_ms are 0 otherwise)
    stored: int  # the all-time standing, stored form
    first_ms: int
    rank: int  # 0 = not ranked (hidden)
    below: int
    total: int


@dataclass(slots=True)
class Row:
    """A ranked entry read from Redis (stored score form)."""

    user_key: bytes
    stored: int
    first_ms: int
    below: int
    name: str


# A listed entry as Redis returns it: (stored score, member, players strictly below, name).
RawRow = tuple[int, bytes, int, bytes]


@dataclass(frozen=True, slots=True)
class TopRows:
    generation: int
    snapshot: int
    total: int
    more: bool
    rows: list[RawRow]
    cursor: tuple[int, bytes] | None  # later pages: the last element scanned


class AutoPipeline:
    """Sends the script calls made during one event-loop turn as one pipeline.

    With many requests in flight this turns one socket write, one pool checkout and
    one connection probe per request into one per turn; each script stays atomic.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queue: list[tuple[str, str, Sequence[Any], asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, sha: str, key: str, args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((sha, key, args, future))
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, str, Sequence[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                sha, key, args, _ = batch[0]
                results: list[Any] = [await self._redis.evalsha(sha, 1, key, *args)]  # type: ignore[misc]
            else:
                pipe = self._redis.pipeline(transaction=False)
                for sha, key, args, _ in batch:
                    pipe.evalsha(sha, 1, key, *args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the caller went away
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class RankStore:
    def __init__(self, redis: Redis, prefix: str, *, page_ttl_ms: int, flag_ttl_ms: int = 60_000) -> None:
        self._redis = redis
        self._channel = ScriptChannel(redis)
        self._auto = AutoPipeline(redis)  # for TLS connections, which the channel does not speak
        self._prefix = prefix
        self.page_ttl_ms = page_ttl_ms
        self.flag_ttl_ms = flag_ttl_ms

    def base(self, board_id: str) -> str:
        return f"{self._prefix}{{lb:{board_id}}}"

    # --- plumbing -------------------------------------------------------------------------

    async def load_scripts(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for script in ALL_SCRIPTS:
            pipe.script_load(script.source)
        await pipe.execute()

    def close(self) -> None:
        self._channel.close()

    def _eval(self, script: Script, board_id: str, args: Sequence[Any]) -> Awaitable[Any]:
        if self._channel.supported:
            return self._channel.call("EVALSHA", script.sha, 1, self.base(board_id), *args)
        return self._auto.call(script.sha, self.base(board_id), args)

    async def _call(self, script: Script, board_id: str, args: Sequence[Any]) -> Any:
        try:
            try:
                return await self._eval(script, board_id, args)
            except NoScriptError:
                await self._redis.script_load(script.source)
                return await self._eval(script, board_id, args)
        except ResponseError as exc:
            raise _mapped(exc) from None
        except _DOWN as exc:
            raise _unavailable(exc) from None

    async def _many(self, calls: Sequence[Call]) -> list[Any]:
        commands = [("EVALSHA", script.sha, 1, self.base(board_id), *args) for script, board_id, args in calls]
        if self._channel.supported:
            return await self._channel.call_many(commands)
        pipe = self._redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def _pipeline(self, calls: Sequence[Call]) -> list[Any]:
        """Run scripts in one round trip (reloading them once if Redis lost its cache)."""
        try:
            results = await self._many(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                for script in {calls[i][0] for i in missing}:
                    await self._redis.script_load(script.source)
                for i, result in zip(missing, await self._many([calls[i] for i in missing]), strict=True):
                    results[i] = result
        except _DOWN as exc:
            raise _unavailable(exc) from None
        for result in results:
            if isinstance(result, ResponseError):
                raise _mapped(result)
            if isinstance(result, _DOWN):
                raise _unavailable(result)
            if isinstance(result, BaseException):
                raise result
        return results

    # --- applying ----------------------------------------------------------------------------

    async def apply(
        self,
        boards: Sequence[tuple[str, int, int, bytes]],
        global_events: Sequence[Any],
        now_ms: int,
    ) -> list[list[Applied] | None]:
        """Apply events: per board (id, policy, windows per event, its events packed by
        encode_event), then their global part, all in one pipelined round trip. None for a
        board Redis lacks."""
        ttl = self.page_ttl_ms
        calls: list[Call] = [
            (APPLY, board_id, ("live", now_ms, ttl, policy, windows, packed))
            for board_id, policy, windows, packed in boards
        ]
        if global_events:
            calls.append((GLOBAL_APPLY, GLOBAL_ID, ("live", now_ms, ttl, "", self.flag_ttl_ms, *global_events)))
        results = await self._pipeline(calls)
        return [_applied(r) for r in results[: len(boards)]]

    async def apply_one_board(
        self, board_id: str, policy: int, width: int, fields: Sequence[Any], now_ms: int
    ) -> list[Applied] | None:
        return await self.apply_packed(board_id, policy, _windows(width), encode_events(width, fields), now_ms)

    async def apply_packed(
        self, board_id: str, policy: int, windows: int, packed: bytes, now_ms: int
    ) -> list[Applied] | None:
        """One board's events, packed by encode_event, in a call of their own."""
        raw = await self._call(APPLY, board_id, ("live", now_ms, self.page_ttl_ms, policy, windows, packed))
        return _applied(raw)

    # --- reads ---------------------------------------------------------------------------------

    async def user_rank(self, board_id: str, period: str, key: bytes) -> tuple[Row, int, int] | None:
        """(row, rank, total) of one player, None when not ranked."""
        raw = await self._call(READ_USER, board_id, (period, key))
        if not raw:
            return None
        stored, first, rank, below, total, name = raw
        return Row(key, int(stored), first, below, name.decode()), rank, total

    async def users(self, board_id: str, period: str, keys: Sequence[bytes]) -> tuple[int, list[tuple[Row, int]]]:
        raw = await self._call(READ_USERS, board_id, (period, *keys))
        found = []
        for i, key in enumerate(keys):
            stored, first, rank, below, name = raw[1 + 5 * i : 6 + 5 * i]
            if stored != b"":
                found.append((Row(key, int(stored), first, below, name.decode()), rank))
        return raw[0], found

    async def around(
        self, board_id: str, period: str, key: bytes, before: int, after: int
    ) -> tuple[int, int, int, list[RawRow]] | None:
        """(total, index of the first row, its rank, rows) around a player; None when unranked."""
        raw = await self._call(READ_AROUND, board_id, (period, key, before, after))
        if not raw:
            return None
        total, first_index, first_rank, count = raw[0], raw[1], raw[2], raw[3]
        return total, first_index, first_rank, _rows(raw, 4, count)

    async def top(
        self,
        board_id: str,
        period: str,
        size: int,
        now_ms: int,
        token: tuple[int, int, int, bytes] | None = None,
    ) -> TopRows | None:
        """A page of the best entries; `token` = (generation, snapshot, cursor stored, cursor
        member) for pages after the first. None when the token's generation is gone."""
        args: list[Any] = [period, size, now_ms, self.page_ttl_ms]
        if token is not None:
            generation, snapshot, stored, member = token
            args += [generation, snapshot, stored, member]
        raw = await self._call(READ_TOP, board_id, args)
        if raw == [b"stale"]:
            return None
        count = raw[4]
        rows = _rows(raw, 5, count)
        cursor = None
        if token is not None:
            cursor = (int(raw[5 + 4 * count]), raw[6 + 4 * count])
        return TopRows(int(raw[0]), int(raw[1]), raw[2], bool(raw[3]), rows, cursor)

    async def count(self, board_id: str, period: str = "a") -> int:
        total: int = await self._redis.zcard(f"{self.base(board_id)}:r:{period}")
        return total

    # --- catalog lifecycle ---------------------------------------------------------------------

    async def init_board(self, board_id: str, hidden: Sequence[bytes] | None = None) -> None:
        args: list[Any] = ["0"] if hidden is None else ["1", *hidden]
        await self._call(BOARD_INIT, board_id, args)

    async def delete_board(self, board_id: str) -> None:
        await self._call(BOARD_DELETE, board_id, ())

    async def hide(self, board_ids: Sequence[str], key: bytes, hidden: bool, now_ms: int) -> None:
        for start in range(0, len(board_ids), 200):
            chunk = board_ids[start : start + 200]
            await self._pipeline([(HIDE, b, (key, "1" if hidden else "0", now_ms, self.page_ttl_ms)) for b in chunk])

    # --- rebuilds ---------------------------------------------------------------------------------

    async def rebuild_begin(self, board_id: str, hidden: Sequence[bytes]) -> bool:
        return bool(await self._call(REBUILD_BEGIN, board_id, (self.flag_ttl_ms, *hidden)))

    async def replay(
        self,
        board_id: str,
        *,
        policy: int,
        width: int,
        fields: Sequence[Any],
        global_events: Sequence[Any],
        now_ms: int,
    ) -> None:
        """Apply history to the board's shadow and, when given, to its shadow mirror in global."""
        calls: list[Call] = []
        if fields:
            args = ("shadow", now_ms, self.flag_ttl_ms, policy, _windows(width), encode_events(width, fields))
            calls.append((APPLY, board_id, args))
        if global_events:
            args = ("shadow", now_ms, self.page_ttl_ms, board_id, self.flag_ttl_ms, *global_events)
            calls.append((GLOBAL_APPLY, GLOBAL_ID, args))
        if calls:
            await self._pipeline(calls)

    async def rebuild_finish(self, board_id: str, policy: int, now_ms: int, limit: int) -> bool:
        done, _ = await self._call(
            REBUILD_FINISH, board_id, (now_ms, self.page_ttl_ms, policy, limit, self.flag_ttl_ms)
        )
        return bool(done)

    async def rebuild_abort(self, board_id: str, policy: int, now_ms: int) -> None:
        await self._call(REBUILD_ABORT, board_id, (now_ms, self.page_ttl_ms, policy))

    # --- global ---------------------------------------------------------------------------------------

    async def set_weight(self, board_id: str, weight: float) -> None:
        await self._call(GLOBAL_WEIGHT, GLOBAL_ID, (board_id, repr(weight)))

    async def global_begin(self, board_id: str, weight: float) -> bool:
        return bool(await self._call(GLOBAL_BEGIN, GLOBAL_ID, (board_id, repr(weight), self.flag_ttl_ms)))

    async def global_drain(self, board_id: str, *, live: bool, now_ms: int, limit: int) -> bool:
        done, _ = await self._call(
            GLOBAL_DRAIN,
            GLOBAL_ID,
            (board_id, "live" if live else "shadow", now_ms, self.page_ttl_ms, limit, self.flag_ttl_ms),
        )
        return bool(done)

    async def global_reconcile(
        self,
        keys: Sequence[bytes],
        boards: Sequence[str],
        now_ms: int,
        *,
        swap: str = "",
        reweigh: str = "",
    ) -> None:
        if keys:
            await self._call(
                GLOBAL_RECONCILE,
                GLOBAL_ID,
                (now_ms, self.page_ttl_ms, swap, reweigh, len(boards), *boards, *keys),
            )

    async def global_swap(self, board_id: str) -> None:
        await self._call(GLOBAL_SWAP, GLOBAL_ID, (board_id,))

    async def global_drop(self, board_id: str) -> None:
        await self._call(GLOBAL_DROP, GLOBAL_ID, (board_id,))

    async def weights(self) -> dict[str, float]:
        raw = await self._redis.hgetall(f"{self.base(GLOBAL_ID)}:w")  # type: ignore[misc]
        return {k.decode(): float(v) for k, v in raw.items()}

    async def scan_mirror(self, board_id: str, *, shadow: bool, count: int = 500) -> AsyncIterator[list[bytes]]:
        """Player keys of a board's mirror in global, in chunks (HSCAN: may repeat some)."""
        key = f"{self.base(GLOBAL_ID)}:{'~' if shadow else ''}m:{board_id}"
        async for chunk in self._scan_hash(key, count):
            yield chunk

    async def scan_players(self, board_id: str, period: str = "a", count: int = 500) -> AsyncIterator[list[bytes]]:
        """Player keys with a standing in a period, in chunks."""
        async for chunk in self._scan_hash(f"{self.base(board_id)}:s:{period}", count):
            yield chunk

    async def _scan_hash(self, key: str, count: int) -> AsyncIterator[list[bytes]]:
        cursor = 0
        while True:
            cursor, found = await self._redis.hscan(key, cursor, count=count)
            if found:
                yield list(found)
            if cursor == 0:
                return


def _applied(raw: Any) -> list[Applied] | None:
    if raw == b"gone":
        return None
    return list(map(Applied._make, _RESULT.iter_unpack(raw)))


def _windows(width: int) -> int:
    """Windows per event (besides all-time) of events `width` flat fields wide."""
    return (width - EVENT_FIELDS) // 2


def _rows(raw: Sequence[Any], start: int, count: int) -> list[RawRow]:
    end = start + 4 * count
    columns = (raw[start + 1 : end : 4], raw[start + 2 : end : 4], raw[start + 3 : end : 4])
    return list(zip(map(int, raw[start:end:4]), *columns, strict=True))


# Redis is unreachable, or hung (a call outlived the socket timeout).
_DOWN = (RedisConnectionError, RedisTimeoutError)


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"the ranking store is unavailable: {exc}", reason="REDIS_UNAVAILABLE")


def _mapped(exc: ResponseError) -> Exception:
    if "REBUILD_LOST" in str(exc):
        return RebuildLost()
    return exc
