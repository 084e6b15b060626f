"""PostgreSQL access of ScoreService: one statement per micro-batch, history
reads, the outbox and monthly partitions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.errors import UniqueViolation
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from leaderboard.runtime.db import POOL_RECYCLE_SECONDS, libpq_connect_timeout
from leaderboard.runtime.errors import Unavailable
from services.scores import stored_answers
from services.scores.submissions import Submission

log = logging.getLogger("leaderboard.scores.store")

# One statement = one round trip and one atomic commit (autocommit): the
# idempotency keys, the history rows and the batch's one outbox row, plus the
# deferred bookkeeping of earlier batches (delivered outbox rows, first answers
# for AIP-155 replays). Returns the batch id and the ids of submissions whose
# request was already stored (usually none, so usually nothing to send back).
# Two forms: _INSERT_BATCH skips stored requests (ON CONFLICT DO NOTHING);
# _INSERT_NEW_BATCH fails on one (unique_violation) and costs less, because a
# plain insert checks the key while it adds the index entry, where ON CONFLICT
# probes it first and confirms each row with a WAL record of its own.
_INSERT_BATCH = """
    WITH input AS (
        SELECT CAST(e.v->>0 AS uuid) AS id, CAST(e.v->>1 AS timestamptz) AS created_at, e.v->>2 AS leaderboard_id,
               CAST(e.v->>3 AS uuid) AS user_id, CAST(e.v->>4 AS bigint) AS score, CAST(e.v->>5 AS uuid) AS request_id,
               e.v->>6 AS caller_id, e.v->>7 AS display_name, e.v->8 AS metadata, e.v->>9 AS body_hash,
               e.v->>10 AS submitted_by, CAST(e.n AS integer) AS pos
        FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) WITH ORDINALITY AS e(v, n)
    ),
    batch AS (
        SELECT nextval('scores.batch_ids') AS id WHERE EXISTS (SELECT 1 FROM input)
    ),
    req AS (
        INSERT INTO scores.submission_requests
            (caller_id, request_id, submission_id, body_hash, created_at, batch_id, batch_position)
        SELECT i.caller_id, i.request_id, i.id, decode(i.body_hash, 'hex'), i.created_at, batch.id, i.pos
        FROM input i CROSS JOIN batch
        ON CONFLICT DO NOTHING
        RETURNING submission_id
    ),
    ev AS (
        INSERT INTO scores.score_events
            (id, created_at, leaderboard_id, user_id, score, request_id, submitted_by, display_name, metadata)
        SELECT i.id, i.created_at, i.leaderboard_id, i.user_id, i.score, i.request_id, i.submitted_by,
               i.display_name, i.metadata
        FROM input i JOIN req ON req.submission_id = i.id
    ),
    ob AS (
        INSERT INTO scores.outbox (id, created_at, event_ids)
        SELECT batch.id, min(i.created_at), array_agg(i.id ORDER BY i.pos)
        FROM input i JOIN req ON req.submission_id = i.id CROSS JOIN batch
        GROUP BY batch.id
    ),
    done AS (
        DELETE FROM scores.outbox WHERE id = ANY(CAST(%(done)s AS bigint[]))
    ),
    answered AS (
        INSERT INTO scores.batch_answers (batch_id, answers)
        SELECT CAST(a->>0 AS bigint), decode(a->>1, 'hex') FROM jsonb_array_elements(CAST(%(answers)s AS jsonb)) a
        ON CONFLICT DO NOTHING
    )
    SELECT batch.id, ARRAY(SELECT CAST(i.id AS text) FROM input i WHERE i.id NOT IN (SELECT submission_id FROM req))
    FROM batch
"""
_SKIP_STORED = "ON CONFLICT DO NOTHING\n        RETURNING submission_id"
assert _INSERT_BATCH.count(_SKIP_STORED) == 1
_INSERT_NEW_BATCH = _INSERT_BATCH.replace(_SKIP_STORED, "RETURNING submission_id")

# After a batch met a stored request, batches skip stored requests for this long: a wave
# of retries costs one statement per batch, not a failed one and then another.
_RETRIES_SECONDS = 1.0

_EXISTING_REQUESTS = text(
    """
    SELECT r.caller_id, CAST(r.request_id AS text), CAST(r.submission_id AS text), r.body_hash, r.response,
           r.batch_id, r.batch_position,
           e.created_at, e.leaderboard_id, CAST(e.user_id AS text), e.score, e.metadata, e.submitted_by
    FROM unnest(CAST(:callers AS text[]), CAST(:request_ids AS uuid[])) AS k(caller_id, request_id)
    JOIN scores.submission_requests r ON r.caller_id = k.caller_id AND r.request_id = k.request_id
    LEFT JOIN scores.score_events e ON e.id = r.submission_id AND e.created_at = r.created_at
    """
)

# Expired idempotency keys and stored answers, a chunk at a time (BRIN on created_at
# finds them; the TID list keeps each DELETE to the chunk).
_PURGE_REQUESTS = text(
    "DELETE FROM scores.submission_requests WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM scores.submission_requests WHERE created_at < :cutoff LIMIT :n))"
)
_PURGE_ANSWERS = text(
    "DELETE FROM scores.batch_answers WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM scores.batch_answers WHERE created_at < :cutoff LIMIT :n))"
)

# Each batch's answers once, however many of its requests are replayed.
_BATCH_ANSWERS = text("SELECT batch_id, answers FROM scores.batch_answers WHERE batch_id = ANY(CAST(:ids AS bigint[]))")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What insert_batch stored: the batch id (None for an empty batch) and the
    submissions it did not store because their request was stored before."""

    batch_id: int | None
    already_stored: frozenset[str]


@dataclass(frozen=True, slots=True)
class ExistingRequest:
    caller_id: str
    request_id: str
    submission_id: str
    body_hash: bytes
    response: bytes | None
    stored: Submission | None
    # Where its first answer is kept (stored_answers); None for rows from before batches.
    batch_id: int | None = None
    batch_position: int | None = None
    # Whether its batch's first answers are stored yet (response None then means the
    # first answer had no rank); they follow the batch's own statement by a moment.
    answers_stored: bool = True


@dataclass(frozen=True, slots=True)
class PendingEvent:
    event_id: str
    created_at: datetime
    leaderboard_id: str
    user_id: str
    score: int
    display_name: str


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """An outbox row: a batch's events still to deliver, in order."""

    batch_id: int
    attempts: int
    events: list[PendingEvent]


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A claimed batch some of whose events stay for a later attempt."""

    batch_id: int
    event_ids: list[str]  # still to deliver, in order
    error: str


@dataclass(frozen=True, slots=True)
class Parked:
    event: PendingEvent
    attempts: int
    error: str


@dataclass(frozen=True, slots=True)
class Claim:
    """An open transaction that holds the relay lock."""

    conn: AsyncConnection
    trans: AsyncTransaction


def _shut_down(fd: int) -> None:
    """Shut a socket down by its descriptor, without closing the descriptor (the event
    loop still watches it): readers see end-of-file, writers an error."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class _DriverConnections:
    """Autocommit psycopg connections kept for the batch statement, outside SQLAlchemy's
    pool: its checkout, connection characteristics and return (through greenlets) were
    4.3% of ScoreService's samples at 64 unary callers (py-spy; 1.6% left with these),
    around a statement that runs on the driver anyway."""

    def __init__(self, conninfo: str, *, connect_timeout: int, keep: int) -> None:
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._keep = keep
        # (connection, when it connected), the most recently used last
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []

    async def take(self) -> tuple[psycopg.AsyncConnection[Any], float]:
        """A connection and when it connected (to hand back with it)."""
        while self._idle:
            conn, born = self._idle.pop()
            if time.monotonic() - born > POOL_RECYCLE_SECONDS:  # as the engine's pool does
                await _close(conn)
            elif not conn.closed:
                return conn, born
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )
        return conn, time.monotonic()

    async def give_back(self, conn: psycopg.AsyncConnection[Any], born: float, reusable: bool) -> None:
        """Keep `conn` for the next batch, or close it (after a failure its state is unknown)."""
        if (
            reusable
            and len(self._idle) < self._keep
            and not conn.closed
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            self._idle.append((conn, born))
            return
        lost = conn.closed  # the server went away, or the deadline cut it
        await _close(conn)
        if lost:
            # The kept ones most likely went with it (a restart, a failover): drop them all
            # now, as SQLAlchemy's pool does, rather than fail one batch on each of them.
            await self.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await _close(conn)


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


class ScoreStore:
    def __init__(self, engine: AsyncEngine, *, timeout_seconds: float = 5.0, batch_connections: int = 16) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._timeout = timeout_seconds
        self._skip_stored_until = 0.0
        self._batch_connections = _DriverConnections(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            connect_timeout=libpq_connect_timeout(timeout_seconds),
            # As many as the batcher has batches in flight (16): fewer would reconnect
            # (a server process forked) for every batch over the count under load.
            keep=batch_connections,
        )

    async def close(self) -> None:
        """Close the connections kept for batches (the engine's pool is the engine owner's)."""
        await self._batch_connections.close()

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for work that must end within the timeout."""
        async with self._autocommit.connect() as conn, self._deadline(conn):  # connecting: connect_timeout
            yield conn

    @contextlib.asynccontextmanager
    async def _deadline(self, conn: AsyncConnection) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Work on `conn` (its driver's connection is yielded) that must end within the
        timeout. Past it the connection's socket
        is shut down, so what waits on it fails at once, the connection is dropped and the
        caller gets Unavailable; whether a write committed is then unknown, which
        idempotent retries resolve. (Cancelling instead would leave psycopg waiting up to
        10 s more for the hung server to acknowledge a cancel request.)"""
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        async with self._severing(driver, conn.invalidate):
            yield driver

    @contextlib.asynccontextmanager
    async def _severing(
        self, driver: psycopg.AsyncConnection[Any], drop: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """The deadline of _deadline on a driver connection; `drop` discards it once severed."""
        severed = False

        def sever() -> None:
            nonlocal severed
            severed = True
            _shut_down(driver.pgconn.socket)

        timer = asyncio.get_running_loop().call_later(self._timeout, sever)
        try:
            yield
            if severed:  # just after the work ended: the connection is no use now
                await drop()
        except Exception as exc:
            if not severed:
                raise
            await drop()
            raise Unavailable(
                f"the score database did not answer within {self._timeout:g} s", reason="DATABASE_UNAVAILABLE"
            ) from exc
        finally:
            timer.cancel()

    @contextlib.asynccontextmanager
    async def _batch_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A kept driver connection for the batch statement, under the deadline; after a
        failure it is closed, not kept."""
        driver, born = await self._batch_connections.take()  # connecting: connect_timeout
        reusable = False
        try:
            async with self._severing(driver, driver.close):
                yield driver
            reusable = True
        finally:
            await self._batch_connections.give_back(driver, born, reusable)

    async def insert_batch(
        self,
        items: Sequence[Submission],
        *,
        delivered_batches: Sequence[int] = (),
        answers: Sequence[tuple[int, bytes]] = (),
    ) -> StoredBatch:
        """Store new submissions as one batch (their positions in it follow `items`),
        plus bookkeeping: outbox rows of `delivered_batches` go, and each (batch id,
        stored_answers.pack(...)) of `answers` is kept for replays."""
        # One JSON document per batch, where psycopg would dump eleven arrays element by
        # element in Python. orjson: json.dumps took ~3 µs a row here (about a seventh of
        # ScoreService's CPU under BatchSubmitScores), orjson ~0.2. A batch shares one timestamp.
        created = _iso(items[0].created_at) if items else None
        rows = orjson.dumps(
            [
                # Positional, in the order the statement reads them (e->>0 ... e->>10).
                [
                    s.id,
                    created if s.created_at is items[0].created_at else _iso(s.created_at),
                    s.leaderboard_id,
                    s.user_id,
                    s.score,
                    s.request_id,
                    s.caller_id,
                    s.display_name,
                    s.metadata,
                    s.body_hash.hex(),
                    s.submitted_by,
                ]
                for s in items
            ]
        ).decode()
        packed = orjson.dumps([[batch_id, blob.hex()] for batch_id, blob in answers]).decode()
        params = {"rows": rows, "done": list(delivered_batches), "answers": packed}
        # A driver connection kept for it: this statement is the hot path, and
        # SQLAlchemy's per-execute and per-checkout work costs more than the statement's own.
        async with self._batch_connection() as driver:
            if time.monotonic() < self._skip_stored_until:
                cursor = await driver.execute(_INSERT_BATCH, params, prepare=True)
            else:
                try:
                    cursor = await driver.execute(_INSERT_NEW_BATCH, params, prepare=True)
                except UniqueViolation:  # a retry of a stored request: nothing was written
                    self._skip_stored_until = time.monotonic() + _RETRIES_SECONDS
                    cursor = await driver.execute(_INSERT_BATCH, params, prepare=True)
            row = await cursor.fetchone()
        if row is None:
            return StoredBatch(None, frozenset())
        return StoredBatch(int(row[0]), frozenset(row[1]))

    async def flush_bookkeeping(self, delivered_batches: Sequence[int], answers: Sequence[tuple[int, bytes]]) -> None:
        """Deferred writes when no batch follows to carry them."""
        await self.insert_batch([], delivered_batches=delivered_batches, answers=answers)

    async def existing_requests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ExistingRequest]:
        async with self._connect() as conn:
            rows = (
                await conn.execute(
                    _EXISTING_REQUESTS,
                    {"callers": [k[0] for k in keys], "request_ids": [k[1] for k in keys]},
                )
            ).all()
            wanted = {int(r[5]) for r in rows if r[4] is None and r[5] is not None}
            batches: dict[int, bytes] = {}
            if wanted:
                found_answers = await conn.execute(_BATCH_ANSWERS, {"ids": sorted(wanted)})
                batches = {int(b[0]): bytes(b[1]) for b in found_answers}
        found: dict[tuple[str, str], ExistingRequest] = {}
        for row in rows:
            stored = None
            if row[7] is not None:
                stored = Submission(
                    caller_id=row[0],
                    request_id=row[1],
                    leaderboard_id=row[8],
                    user_id=row[9],
                    score=int(row[10]),
                    metadata=dict(row[11]),
                    submitted_by=row[12],
                    display_name="",
                    body_hash=bytes(row[3]),
                    id=row[2],
                    created_at=row[7],
                )
            response = bytes(row[4]) if row[4] is not None else None
            batch_id = int(row[5]) if row[5] is not None else None
            position = int(row[6]) if row[6] is not None else None
            answers_stored = response is not None or batch_id is None or batch_id in batches
            if response is None and batch_id in batches and position is not None:
                response = stored_answers.answer_at(batches[batch_id], position)
            found[(row[0], row[1])] = ExistingRequest(
                row[0], row[1], row[2], bytes(row[3]), response, stored, batch_id, position, answers_stored
            )
        return found

    async def history(
        self,
        *,
        user_id: str,
        leaderboard_id: str,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Submission]:
        clauses = ["user_id = CAST(:user_id AS uuid)"]
        params: dict[str, object] = {"user_id": user_id, "limit": limit}
        if leaderboard_id:
            clauses.append("leaderboard_id = :board")
            params["board"] = leaderboard_id
        if start is not None:
            clauses.append("created_at >= :start")
            params["start"] = start
        if end is not None:
            clauses.append("created_at < :end")
            params["end"] = end
        if after is not None:
            clauses.append("(created_at, id) < (:after_ts, CAST(:after_id AS uuid))")
            params["after_ts"], params["after_id"] = after
        sql = text(
            "SELECT CAST(id AS text), created_at, leaderboard_id, CAST(user_id AS text), score, "
            "CAST(request_id AS text), "
            "submitted_by, display_name, metadata FROM scores.score_events WHERE "
            + " AND ".join(clauses)
            + " ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
        async with self._connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        return [
            Submission(
                caller_id=r[6],
                request_id=r[5],
                leaderboard_id=r[2],
                user_id=r[3],
                score=int(r[4]),
                metadata=dict(r[8]),
                submitted_by=r[6],
                display_name=r[7],
                body_hash=b"",
                id=r[0],
                created_at=r[1],
            )
            for r in rows
        ]

    async def board_events(
        self, leaderboard_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Submission]:
        """A leaderboard's history in commit order (for rebuilds)."""
        params: dict[str, object] = {"board": leaderboard_id, "limit": limit}
        cursor = ""
        if after is not None:
            cursor = "AND (created_at, id) > (:after_ts, CAST(:after_id AS uuid))"
            params["after_ts"], params["after_id"] = after
        sql = text(
            "SELECT CAST(id AS text), created_at, CAST(user_id AS text), score, display_name FROM scores.score_events "
            f"WHERE leaderboard_id = :board {cursor} ORDER BY created_at, id LIMIT :limit"
        )
        async with self._connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        return [
            Submission(
                caller_id="",
                request_id="",
                leaderboard_id=leaderboard_id,
                user_id=r[2],
                score=int(r[3]),
                metadata={},
                submitted_by="",
                display_name=r[4],
                body_hash=b"",
                id=r[0],
                created_at=r[1],
            )
            for r in rows
        ]

    async def claim_pending(self, min_age_seconds: float, limit: int) -> tuple[Claim | None, list[PendingBatch]]:
        """Open a transaction holding the relay lock and return the oldest outbox rows,
        whole, while they hold fewer than `limit` events (at least one row).

        Only one relay (across all replicas) works at a time, so events reach
        ranking in commit order; the caller must finish with `finish_claim`.
        """
        conn = await self._engine.connect()
        trans = await conn.begin()
        try:
            async with self._deadline(conn):
                batches = await self._claim(conn, min_age_seconds, limit)
                if batches is None:  # another relay holds the lock
                    await trans.rollback()
        except BaseException:
            with contextlib.suppress(Exception):
                await trans.rollback()
            await conn.close()
            raise
        if batches is None:
            await conn.close()
            return None, []
        return Claim(conn, trans), batches

    @staticmethod
    async def _claim(conn: AsyncConnection, min_age_seconds: float, limit: int) -> list[PendingBatch] | None:
        locked = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(727274001)"))).scalar()
        if not locked:
            return None
        heads = (
            await conn.execute(
                text(
                    "SELECT id, attempts, cardinality(event_ids) FROM scores.outbox "
                    "WHERE created_at < now() - make_interval(secs => :min_age) ORDER BY id LIMIT :limit"
                ),
                {"min_age": min_age_seconds, "limit": max(1, limit)},
            )
        ).all()
        chosen: dict[int, int] = {}
        total = 0
        for batch_id, attempts, size in heads:
            if chosen and total + int(size) > limit:
                break
            chosen[int(batch_id)] = int(attempts)
            total += int(size)
        events: dict[int, list[PendingEvent]] = {batch_id: [] for batch_id in chosen}
        if chosen:
            rows = await conn.execute(
                text(
                    """
                    SELECT o.id, CAST(e.id AS text), e.created_at, e.leaderboard_id, CAST(e.user_id AS text), e.score,
                           e.display_name
                    FROM scores.outbox o
                    CROSS JOIN LATERAL unnest(o.event_ids) WITH ORDINALITY AS k(event_id, n)
                    JOIN scores.score_events e ON e.id = k.event_id
                    WHERE o.id = ANY(CAST(:ids AS bigint[]))
                    ORDER BY o.id, k.n
                    """
                ),
                {"ids": list(chosen)},
            )
            for r in rows:
                events[int(r[0])].append(PendingEvent(r[1], r[2], r[3], r[4], int(r[5]), r[6]))
        return [PendingBatch(b, chosen[b], events[b]) for b in chosen]

    async def finish_claim(
        self,
        claim: Claim,
        *,
        delivered: Sequence[int],
        undelivered: Sequence[Undelivered],
        parked: Sequence[Parked],
    ) -> None:
        """Commit what a relay pass did: outbox rows delivered whole go, the others keep
        only their undelivered events (attempts + 1), parked events are set aside."""
        conn, trans = claim.conn, claim.trans
        try:
            async with self._deadline(conn):
                await self._finish(conn, trans, delivered, undelivered, parked)
        finally:
            await conn.close()

    @staticmethod
    async def _finish(
        conn: AsyncConnection,
        trans: AsyncTransaction,
        delivered: Sequence[int],
        undelivered: Sequence[Undelivered],
        parked: Sequence[Parked],
    ) -> None:
        if delivered:
            await conn.execute(
                text("DELETE FROM scores.outbox WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": list(delivered)}
            )
        for batch in undelivered:
            await conn.execute(
                text(
                    "UPDATE scores.outbox SET event_ids = CAST(:events AS uuid[]), attempts = attempts + 1, "
                    "last_error = :e WHERE id = :id"
                ),
                {"events": batch.event_ids, "e": batch.error[:500], "id": batch.batch_id},
            )
        for item in parked:
            await conn.execute(
                text(
                    "INSERT INTO scores.parked_events (event_id, created_at, attempts, last_error) "
                    "VALUES (CAST(:id AS uuid), :created, :attempts, :e) ON CONFLICT DO NOTHING"
                ),
                {
                    "id": item.event.event_id,
                    "created": item.event.created_at,
                    "attempts": item.attempts,
                    "e": item.error[:500],
                },
            )
        await trans.commit()

    async def abandon_claim(self, claim: Claim) -> None:
        try:
            async with self._deadline(claim.conn):
                await claim.trans.rollback()
        finally:
            await claim.conn.close()

    async def purge_requests(self, older_than: datetime, *, chunk: int = 5000) -> int:
        """Forget idempotency keys and stored first answers created before `older_than`;
        returns how many keys went. Chunks keep each statement (and its locks) short."""
        purged = 0
        for statement in (_PURGE_REQUESTS, _PURGE_ANSWERS):
            while True:
                async with self._connect() as conn:
                    deleted = (await conn.execute(statement, {"cutoff": older_than, "n": chunk})).rowcount
                if statement is _PURGE_REQUESTS:
                    purged += deleted
                if deleted < chunk:
                    break
                await asyncio.sleep(0.05)  # let ingest's statements in between chunks
        return purged

    async def ensure_partitions(self, now: datetime, months_ahead: int = 2) -> None:
        """Monthly partitions of score_events for the previous, current and next months."""
        year, month = now.year, now.month
        for offset in range(-1, months_ahead + 1):
            y, m = divmod((year * 12 + month - 1) + offset, 12)
            m += 1
            ny, nm = divmod(y * 12 + m, 12)
            start = datetime(y, m, 1, tzinfo=UTC)
            end = datetime(ny, nm + 1, 1, tzinfo=UTC)
            name = f"score_events_y{y:04d}m{m:02d}"
            try:
                async with self._engine.begin() as conn, self._deadline(conn):
                    # The DDL locks score_events: if it has to queue behind a long query,
                    # give up (and retry in a few hours) rather than make ingest queue behind it.
                    await conn.execute(text(f"SET LOCAL lock_timeout = '{max(1, int(self._timeout / 2))}s'"))
                    await conn.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS scores.{name} PARTITION OF scores.score_events "
                            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                        )
                    )
            except DBAPIError as exc:
                # Another replica raced us, rows for that month sit in the default partition,
                # or the lock did not come in time.
                log.warning("could not create partition %s: %s", name, exc.orig)
            except Unavailable as exc:
                log.warning("could not create partition %s: %s", name, exc.message)
