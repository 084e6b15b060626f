"""Live rankings: applying score events, reading ranks, hiding players, rebuilding.

No gRPC types here: the servicer maps protos to these calls. The clock and the
source of score history are injected (tests pass their own).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from leaderboard.runtime import paging
from leaderboard.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.ranking.catalog import (
    GLOBAL_ID,
    MAX_DISPLAY_NAME,
    Board,
    CatalogCache,
    Policy,
    validate_id,
    validate_score,
)
from services.ranking.catalog_store import CatalogStore
from services.ranking.page_tokens import TopToken, expired, mismatch
from services.ranking.rank_store import (
    EVENT_FIELDS,
    Applied,
    RankStore,
    RawRow,
    Row,
    encode_event,
    event_key,
    user_id_of,
    user_key,
)
from services.ranking.windows import ALL_TIME_KEY, WINDOW_NAMES, Window, expires_at_ms, period_of

log = logging.getLogger("leaderboard.ranking")

Clock = Callable[[], float]  # seconds since the epoch
# Ranking._event_parts: an event as board.lua takes it.
EventParts = tuple[bytes, bytes, int, int, str, str, int, list[Any]]

MAX_BATCH = 1000
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
MAX_AROUND = 100
MAX_USERS = 100
MAX_EVENT_ID = 128
HOUR_MS = 3_600_000
MAX_TIME_MS = 2**48  # 6-byte first-achieved times (year 10889)
DRAIN_CHUNK = 5000


# ScoreEvent, ApplyResult (and rank_store.Applied) are built once per applied event:
# not frozen, because a frozen dataclass costs about 8x as much to construct.
@dataclass(slots=True)
class ScoreEvent:
    """A committed submission to apply."""

    event_id: str
    leaderboard_id: str
    user_id: str
    score: int
    achieved_ms: int
    display_name: str = ""


@dataclass(slots=True)
class Entry:
    user_id: str
    display_name: str
    score: int
    rank: int  # 0 = not ranked (a hidden player's own standing)
    percentile: float
    achieved_ms: int


@dataclass(slots=True)
class ApplyResult:
    event_id: str
    entry: Entry | None
    improved: bool
    duplicate: bool
    deferred: bool


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[Entry]
    total: int
    next_token: str


EventSource = Callable[[str], AsyncIterator[Sequence[ScoreEvent]]]


def parse_user_id(user_id: str, field: str) -> bytes:
    try:
        return user_key(user_id)
    except ValueError:
        raise InvalidArgument(field, "must be a user id (UUID)") from None


def _percentile(below: int, total: int) -> float:
    return 100.0 * below / total if total else 0.0


class Ranking:
    def __init__(
        self,
        catalog: CatalogCache,
        catalog_store: CatalogStore,
        store: RankStore,
        *,
        default_retention: int,
        dedup_window_seconds: int,
        history: EventSource | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._catalog = catalog
        self._catalog_store = catalog_store
        self._store = store
        self._default_retention = default_retention
        self._dedup_ms = dedup_window_seconds * 1000
        self._history = history
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def close(self) -> None:
        """Cancel background work (a rebuild cancelled this way gives up cleanly)."""
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- applying --------------------------------------------------------------------------

    def _event_parts(self, board: Board, ev: ScoreEvent, key: bytes, now: int) -> EventParts:
        """board.lua's fields of an event: (event id key, user key, stored score, time, name,
        dedup bucket, its expiry, flat (period, expiry) pairs of the board's windows)."""
        t = ev.achieved_ms
        hour = t // HOUR_MS
        bucket_expiry = (hour + 1) * HOUR_MS + self._dedup_ms
        # No id is kept for best-policy boards: the best score and the earliest time it was
        # reached come out the same however often, and in whatever order, events arrive.
        # Older than the dedup window: its bucket is gone, so the event cannot be checked.
        # Without a bucket the script never reads the id: it is not parsed or sent.
        bucket = str(hour) if bucket_expiry > now and board.policy is not Policy.BEST else ""
        eid = event_key(ev.event_id) if bucket else b""
        stored = -ev.score if board.descending else ev.score
        windows: list[Any] = []
        if board.windows:
            retention = board.retention_periods or self._default_retention
            for window in board.windows:
                period = period_of(window, t)
                expiry = expires_at_ms(period, retention) or 0
                windows += [period.key, expiry] if expiry > now else ["", 0]
        return eid, key, stored, t, ev.display_name, bucket, bucket_expiry, windows

    def _event_fields(self, board: Board, ev: ScoreEvent, key: bytes, now: int) -> list[Any]:
        """_event_parts flat, as rebuilds and the global board's events take them."""
        *head, windows = self._event_parts(board, ev, key, now)
        return [*head, *windows]

    @staticmethod
    def _global_fields(board: Board, board_fields: Sequence[Any]) -> list[Any]:
        eid, key, stored, t, name, bucket, expiry = board_fields[:EVENT_FIELDS]
        sign = -1 if board.descending else 1
        return [board.id, int(board.policy), sign, eid, key, stored, t, name, bucket, expiry]

    def _validate_event(self, ev: ScoreEvent, index: int, known_board: bool) -> bytes:
        try:
            if not ev.event_id or len(ev.event_id) > MAX_EVENT_ID:
                raise InvalidArgument("event_id", "is required (at most 128 characters)")
            if not known_board:  # a call's events mostly share a board: check its id once
                validate_id(ev.leaderboard_id, "leaderboard_id")
            key = parse_user_id(ev.user_id, "user_id")
            validate_score(ev.score, "score")
            if not 0 < ev.achieved_ms < MAX_TIME_MS:
                raise InvalidArgument("achieved_at", "is required (after 1970)")
            if len(ev.display_name) > MAX_DISPLAY_NAME:
                raise InvalidArgument("display_name", "must be at most 128 characters")
        except InvalidArgument as exc:
            # Named by its place only when it fails (not formatted for every event).
            raise exc.within(f"events[{index}]") from None
        return key

    async def apply(self, events: Sequence[ScoreEvent]) -> list[ApplyResult]:
        """Apply a batch in one Redis round trip; atomic and idempotent per event."""
        if len(events) > MAX_BATCH:
            raise InvalidArgument("events", "at most 1000 events per call")
        now = self.now_ms()
        # Per board: its events' indexes and packed events (rank_store.encode_event).
        groups: dict[str, tuple[Board, list[int], list[bytes]]] = {}
        global_fields: list[Any] = []
        for i, ev in enumerate(events):
            group = groups.get(ev.leaderboard_id)
            key = self._validate_event(ev, i, group is not None)
            if group is None:
                board = await self._catalog.find(ev.leaderboard_id)
                if board is None:
                    # Not on the negative cache's word: ScoreService parks events for good on
                    # NOT_FOUND, and the board may have been created a moment ago elsewhere.
                    self._catalog.forget(ev.leaderboard_id)
                    board = await self._catalog.find(ev.leaderboard_id)
                if board is None:
                    raise NotFound(
                        f"leaderboard {ev.leaderboard_id!r} not found",
                        reason="LEADERBOARD_NOT_FOUND",
                        metadata={"field": f"events[{i}].leaderboard_id"},
                    )
                if board.is_global:
                    raise InvalidArgument(
                        f"events[{i}].leaderboard_id", "the global leaderboard is derived and takes no events"
                    )
                group = groups[ev.leaderboard_id] = (board, [], [])
            board, indexes, packed = group
            indexes.append(i)
            parts = self._event_parts(board, ev, key, now)
            packed.append(encode_event(parts))
            if board.global_weight > 0:
                global_fields += self._global_fields(board, parts)
        batches = [
            (board.id, int(board.policy), len(board.windows), b"".join(packed)) for board, _, packed in groups.values()
        ]
        outcomes = await self._store.apply(batches, global_fields, now) if batches else []
        results: list[ApplyResult | None] = [None] * len(events)
        for (_, _, nwin, packed_events), (board, indexes, _), outcome in zip(
            batches, groups.values(), outcomes, strict=True
        ):
            applied_events = outcome
            if applied_events is None:
                applied_events = await self._apply_to_missing(board, nwin, packed_events, now)
            descending = board.descending
            for i, applied in zip(indexes, applied_events, strict=True):
                results[i] = self._result(descending, events[i], applied)
        return [r for r in results if r is not None]

    async def _apply_to_missing(self, board: Board, windows: int, packed: bytes, now: int) -> list[Applied]:
        """The board has no keys in Redis: deleted (on another replica) or Redis lost them."""
        stored = await self._catalog_store.get(board.id)
        if stored is None:
            self._catalog.forget(board.id)
            raise NotFound(f"leaderboard {board.id!r} not found", reason="LEADERBOARD_NOT_FOUND")
        await self.board_created(stored)
        log.warning("leaderboard %s was missing in Redis; recreated (rebuild it to restore history)", board.id)
        outcome = await self._store.apply_packed(board.id, int(board.policy), windows, packed, now)
        if outcome is None:
            raise Unavailable("leaderboard state is unavailable; retry", reason="RANKING_UNAVAILABLE")
        return outcome

    @staticmethod
    def _result(descending: bool, ev: ScoreEvent, applied: Applied) -> ApplyResult:
        status, improved, has, stored, first_ms, rank, below, total = applied
        entry = None
        if has:
            entry = Entry(
                ev.user_id,
                ev.display_name,
                -stored if descending else stored,
                rank,
                _percentile(below, total) if rank else 0.0,
                first_ms,
            )
        return ApplyResult(ev.event_id, entry, improved == 1, status == 1, status == 2)

    # --- reads -----------------------------------------------------------------------------------

    def _period(self, board: Board, window: Window, period_time_ms: int | None) -> str:
        """The period a read names: the current one, or the one containing period_time.

        A future period_time is INVALID_ARGUMENT; a period past its retention NOT_FOUND
        (reason PERIOD_EXPIRED): the request is well formed, the data is gone.
        """
        if not board.keeps(window):
            raise InvalidArgument("window", f"leaderboard {board.id!r} keeps no {WINDOW_NAMES[window]} window")
        if window is Window.ALL_TIME:
            return ALL_TIME_KEY
        now = self.now_ms()
        period = period_of(window, now if period_time_ms is None else period_time_ms)
        if period.start_ms > now:
            raise InvalidArgument("period_time", "is in the future")
        expiry = expires_at_ms(period, board.retention_periods or self._default_retention) or 0
        if expiry <= now:
            raise NotFound(
                f"the {WINDOW_NAMES[window]} period {period.key} is past its retention", reason="PERIOD_EXPIRED"
            )
        return period.key

    @staticmethod
    def _entry(board: Board, row: Row, rank: int, total: int) -> Entry:
        return Entry(
            user_id_of(row.user_key),
            row.name,
            -row.stored if board.descending else row.stored,
            rank,
            _percentile(row.below, total),
            row.first_ms,
        )

    @staticmethod
    def _listed(board: Board, row: RawRow, rank: int, total: int) -> Entry:
        stored, member, below, name = row
        return Entry(
            user_id_of(member[6:]),
            name.decode(),
            -stored if board.descending else stored,
            rank,
            100.0 * below / total if total else 0.0,
            int.from_bytes(member[:6], "big"),
        )

    async def user_rank(
        self, board_id: str, window: Window, user_id: str, period_time_ms: int | None = None
    ) -> tuple[Entry, int]:
        board = await self._catalog.get(board_id)
        period = self._period(board, window, period_time_ms)
        key = parse_user_id(user_id, "user_id")
        found = await self._store.user_rank(board.id, period, key)
        if found is None:
            raise NotFound("the user has no entry on this leaderboard", reason="USER_NOT_RANKED")
        row, rank, total = found
        return self._entry(board, row, rank, total), total

    async def around(
        self,
        board_id: str,
        window: Window,
        user_id: str,
        *,
        before: int,
        after: int,
        period_time_ms: int | None = None,
    ) -> tuple[list[Entry], int]:
        for name, value in (("before", before), ("after", after)):
            if value < 0:
                raise InvalidArgument(name, "must not be negative")
        board = await self._catalog.get(board_id)
        period = self._period(board, window, period_time_ms)
        key = parse_user_id(user_id, "user_id")
        found = await self._store.around(board.id, period, key, min(before, MAX_AROUND), min(after, MAX_AROUND))
        if found is None:
            raise NotFound("the user has no entry on this leaderboard", reason="USER_NOT_RANKED")
        total, first_index, rank, rows = found
        entries = []
        previous: int | None = None
        for offset, row in enumerate(rows):
            if previous is not None and row[0] != previous:
                rank = first_index + offset + 1  # everyone listed before is strictly better
            previous = row[0]
            entries.append(self._listed(board, row, rank, total))
        return entries, total

    async def for_users(
        self, board_id: str, window: Window, user_ids: Sequence[str], period_time_ms: int | None = None
    ) -> tuple[list[Entry], int]:
        if len(user_ids) > MAX_USERS:
            raise InvalidArgument("user_ids", "at most 100 user ids")
        keys = list(dict.fromkeys(parse_user_id(u, f"user_ids[{i}]") for i, u in enumerate(user_ids)))
        board = await self._catalog.get(board_id)
        period = self._period(board, window, period_time_ms)
        if not keys:
            return [], await self._store.count(board.id, period)
        total, found = await self._store.users(board.id, period, keys)
        found.sort(key=lambda f: (f[0].stored, f[0].first_ms, f[0].user_key))
        return [self._entry(board, row, rank, total) for row, rank in found], total

    async def top(
        self,
        board_id: str,
        window: Window,
        page_size: int,
        page_token: str = "",
        period_time_ms: int | None = None,
    ) -> Page:
        size = paging.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        board = await self._catalog.get(board_id)
        now = self.now_ms()
        last_stored: int | None = None
        last_rank = listed = 0
        if not page_token:
            period = self._period(board, window, period_time_ms)
            issued = now
            rows = await self._store.top(board.id, period, size, now)
        else:
            token = TopToken.decode(page_token)
            if token.board_id != board.id or token.window != window:
                raise mismatch()
            if period_time_ms is not None and self._period(board, window, period_time_ms) != token.period:
                raise mismatch()
            if not board.keeps(window):
                raise InvalidArgument("window", f"leaderboard {board.id!r} no longer keeps this window")
            if now - token.issued_ms > self._store.page_ttl_ms:
                raise expired()
            period, issued = token.period, token.issued_ms
            last_stored, last_rank, listed = token.last_stored, token.last_rank, token.listed
            rows = await self._store.top(
                board.id,
                period,
                size,
                now,
                (token.generation, token.snapshot, token.cursor_stored, token.cursor_member),
            )
        if rows is None:
            raise expired()
        entries = []
        listed_entry = self._listed
        for row in rows.rows:
            listed += 1
            if row[0] != last_stored:
                last_rank, last_stored = listed, row[0]
            entries.append(listed_entry(board, row, last_rank, rows.total))
        next_token = ""
        if rows.more:
            if rows.cursor is not None:
                cursor_stored, cursor_member = rows.cursor
            else:
                cursor_stored, cursor_member = rows.rows[-1][0], rows.rows[-1][1]
            next_token = TopToken(
                board.id,
                int(window),
                period,
                rows.generation,
                rows.snapshot,
                cursor_stored,
                cursor_member,
                last_stored,
                last_rank,
                listed,
                issued,
            ).encode()
        return Page(entries, rows.total, next_token)

    # --- hidden players ----------------------------------------------------------------------------

    async def set_hidden(self, user_id: str, hidden: bool) -> None:
        """Hide a player from every ranking (or restore them); standings and history are kept."""
        key = parse_user_id(user_id, "user_id")
        await self._catalog_store.set_hidden(uuid.UUID(bytes=key), hidden)
        # Boards created meanwhile copied the list from PostgreSQL after we wrote it.
        boards = [b.id for b in await self._catalog_store.all()]
        await self._store.hide(boards, key, hidden, self.now_ms())

    async def _hidden_keys(self) -> list[bytes]:
        return [u.bytes for u in await self._catalog_store.hidden_users()]

    # --- catalog lifecycle ---------------------------------------------------------------------------

    async def board_created(self, board: Board) -> None:
        await self._store.init_board(board.id, await self._hidden_keys())
        if board.global_weight > 0:
            await self._store.set_weight(board.id, board.global_weight)

    async def board_updated(self, old: Board, new: Board) -> None:
        if old.global_weight == new.global_weight or new.is_global:
            return
        if new.global_weight == 0:
            await self._leave_global(new.id)
        elif old.global_weight == 0:
            # Its players' standings were never mirrored into global: replay its history.
            self._spawn(self._join_global(new))
        else:
            await self._store.set_weight(new.id, new.global_weight)
            boards = await self._contributing_ids()
            async for keys in self._store.scan_mirror(new.id, shadow=False):
                await self._store.global_reconcile(keys, boards, self.now_ms(), reweigh=new.id)

    async def board_deleted(self, board: Board) -> None:
        if board.id in await self._store.weights():
            await self._leave_global(board.id)
        await self._store.delete_board(board.id)

    async def _contributing(self) -> list[Board]:
        return [b for b in await self._catalog_store.all() if b.global_weight > 0 and not b.is_global]

    async def _contributing_ids(self) -> list[str]:
        return [b.id for b in await self._contributing()]

    async def _leave_global(self, board_id: str) -> None:
        await self._store.set_weight(board_id, 0.0)  # live events stop counting at once
        boards = [b for b in await self._contributing_ids() if b != board_id]
        async for keys in self._store.scan_mirror(board_id, shadow=False):
            await self._store.global_reconcile(keys, boards, self.now_ms())
        await self._store.global_drop(board_id)

    async def _join_global(self, board: Board) -> None:
        try:
            await self._replay_into_global(board)
        except Exception:
            log.exception("replaying %s into the global leaderboard failed", board.id)

    # --- rebuilds ---------------------------------------------------------------------------------------

    async def rebuild(self, board_id: str) -> tuple[int, int]:
        """Rebuild a board's live state (and its part of global) from score history.

        Runs as its own task: a caller that goes away does not leave it half done.
        Returns (events replayed, players ranked all-time).
        """
        board = await self._catalog.fresh(board_id)
        if self._history is None:
            raise Unavailable("score history is not available to this service", reason="HISTORY_UNAVAILABLE")
        task = self._spawn(self._rebuild_global() if board.is_global else self._rebuild(board))
        result: tuple[int, int] = await asyncio.shield(task)
        return result

    def _history_of(self, board_id: str) -> AsyncIterator[Sequence[ScoreEvent]]:
        assert self._history is not None
        return self._history(board_id)

    def _replay_fields(self, board: Board, chunk: Sequence[ScoreEvent], now: int) -> tuple[list[Any], list[Any]]:
        fields: list[Any] = []
        global_fields: list[Any] = []
        for ev in chunk:
            try:
                key = user_key(ev.user_id)
            except ValueError:
                log.warning("skipping event %s with a malformed user id", ev.event_id)
                continue
            event_fields = self._event_fields(board, ev, key, now)
            fields += event_fields
            global_fields += self._global_fields(board, event_fields)
        return fields, global_fields

    async def _rebuild(self, board: Board) -> tuple[int, int]:
        if not await self._store.rebuild_begin(board.id, await self._hidden_keys()):
            raise FailedPrecondition("this leaderboard is being rebuilt already", reason="REBUILD_IN_PROGRESS")
        policy = int(board.policy)
        width = EVENT_FIELDS + 2 * len(board.windows)
        into_global = board.global_weight > 0
        swapped = False
        try:
            if into_global and not await self._store.global_begin(board.id, board.global_weight):
                into_global = False
                raise FailedPrecondition(
                    "this leaderboard is being replayed into global already", reason="REBUILD_IN_PROGRESS"
                )
            replayed = 0
            async for chunk in self._history_of(board.id):
                now = self.now_ms()
                fields, global_fields = self._replay_fields(board, chunk, now)
                await self._store.replay(
                    board.id,
                    policy=policy,
                    width=width,
                    fields=fields,
                    global_events=global_fields if into_global else [],
                    now_ms=now,
                )
                replayed += len(chunk)
            while not await self._store.rebuild_finish(board.id, policy, self.now_ms(), DRAIN_CHUNK):
                pass
            swapped = True
            if into_global:
                await self._finish_global_replay(board)
        except BaseException:
            if not swapped:
                await self._store.rebuild_abort(board.id, policy, self.now_ms())
            if into_global:
                await self._store.global_drain(board.id, live=True, now_ms=self.now_ms(), limit=0)
            raise
        log.info("rebuilt leaderboard %s from %d events", board.id, replayed)
        return replayed, await self._store.count(board.id)

    async def _replay_into_global(self, board: Board) -> int:
        """Replay one board's history into its mirror in global (when its weight goes up from 0,
        or when global itself is rebuilt)."""
        if not await self._store.global_begin(board.id, board.global_weight):
            raise FailedPrecondition(
                "this leaderboard is being replayed into global already", reason="REBUILD_IN_PROGRESS"
            )
        try:
            replayed = 0
            async for chunk in self._history_of(board.id):
                now = self.now_ms()
                _, global_fields = self._replay_fields(board, chunk, now)
                await self._store.replay(
                    board.id, policy=int(board.policy), width=0, fields=[], global_events=global_fields, now_ms=now
                )
                replayed += len(chunk)
            await self._finish_global_replay(board)
        except BaseException:
            await self._store.global_drain(board.id, live=True, now_ms=self.now_ms(), limit=0)
            raise
        return replayed

    async def _finish_global_replay(self, board: Board) -> None:
        while not await self._store.global_drain(board.id, live=False, now_ms=self.now_ms(), limit=DRAIN_CHUNK):
            pass
        boards = await self._contributing_ids()
        if board.id not in boards:
            boards.append(board.id)
        # Live mirror := replayed mirror, player by player, recomputing their global score.
        for shadow in (True, False):
            async for keys in self._store.scan_mirror(board.id, shadow=shadow):
                await self._store.global_reconcile(keys, boards, self.now_ms(), swap=board.id)
        await self._store.global_swap(board.id)
        while not await self._store.global_drain(board.id, live=True, now_ms=self.now_ms(), limit=DRAIN_CHUNK):
            pass

    async def _rebuild_global(self) -> tuple[int, int]:
        await self._store.init_board(GLOBAL_ID, await self._hidden_keys())
        boards = await self._contributing()
        replayed = 0
        for board in boards:
            replayed += await self._replay_into_global(board)
        ids = [b.id for b in boards]
        for stale in set(await self._store.weights()) - set(ids):
            await self._leave_global(stale)
        # Players whose global entry no mirror explains any more.
        async for keys in self._store.scan_players(GLOBAL_ID):
            await self._store.global_reconcile(keys, ids, self.now_ms())
        return replayed, await self._store.count(GLOBAL_ID)
