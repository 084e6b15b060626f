"""PostgreSQL access of ScoreService: one statement per micro-batch, history
reads, the outbox and monthly partitions."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from services.scores.submissions import Submission

log = logging.getLogger("leaderboard.scores.store")

# One statement = one round trip and one atomic commit (autocommit): the
# idempotency keys, the history rows and the outbox rows of a whole batch,
# plus the deferred bookkeeping of the previous batch (applied outbox rows,
# final responses for AIP-155 replays).
_INSERT_BATCH = """
    WITH input AS (
        SELECT CAST(e->>0 AS uuid) AS id, CAST(e->>1 AS timestamptz) AS created_at, e->>2 AS leaderboard_id,
               e->>3 AS user_id, CAST(e->>4 AS bigint) AS score, CAST(e->>5 AS uuid) AS request_id,
               e->>6 AS caller_id, e->>7 AS display_name, e->8 AS metadata, e->>9 AS body_hash,
               e->>10 AS submitted_by
        FROM jsonb_array_elements(CAST(%(rows)s AS jsonb)) AS e
    ),
    req AS (
        INSERT INTO scores.submission_requests (caller_id, request_id, submission_id, body_hash, created_at)
        SELECT caller_id, request_id, id, decode(body_hash, 'hex'), created_at FROM input
        ON CONFLICT DO NOTHING
        RETURNING submission_id
    ),
    ev AS (
        INSERT INTO scores.score_events
            (id, created_at, leaderboard_id, user_id, score, request_id, submitted_by, display_name, metadata)
        SELECT i.id, i.created_at, i.leaderboard_id, i.user_id, i.score, i.request_id, i.submitted_by,
               i.display_name, i.metadata
        FROM input i JOIN req ON req.submission_id = i.id
        RETURNING id, created_at
    ),
    ob AS (
        INSERT INTO scores.outbox (event_id, created_at)
        SELECT id, created_at FROM ev ORDER BY created_at, id
        RETURNING id, event_id
    ),
    done AS (
        DELETE FROM scores.outbox WHERE id = ANY(CAST(%(done)s AS bigint[]))
    ),
    answered AS (
        UPDATE scores.submission_requests r SET response = decode(u.response, 'hex')
        FROM jsonb_to_recordset(CAST(%(responses)s AS jsonb)) AS u(caller_id text, request_id uuid, response text)
        WHERE r.caller_id = u.caller_id AND r.request_id = u.request_id
    )
    SELECT CAST(event_id AS text), id FROM ob
"""

_EXISTING_REQUESTS = text(
    """
    SELECT r.caller_id, CAST(r.request_id AS text), CAST(r.submission_id AS text), r.body_hash, r.response,
           e.created_at, e.leaderboard_id, e.user_id, e.score, e.metadata, e.submitted_by
    FROM unnest(CAST(:callers AS text[]), CAST(:request_ids AS uuid[])) AS k(caller_id, request_id)
    JOIN scores.submission_requests r ON r.caller_id = k.caller_id AND r.request_id = k.request_id
    LEFT JOIN scores.score_events e ON e.id = r.submission_id AND e.created_at = r.created_at
    """
)


@dataclass(frozen=True, slots=True)
class ExistingRequest:
    caller_id: str
    request_id: str
    submission_id: str
    body_hash: bytes
    response: bytes | None
    stored: Submission | None


@dataclass(frozen=True, slots=True)
class PendingEvent:
    outbox_id: int
    event_id: str
    created_at: datetime
    leaderboard_id: str
    user_id: str
    score: int
    display_name: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Claim:
    """An open transaction that holds the relay lock."""

    conn: AsyncConnection
    trans: AsyncTransaction


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class ScoreStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def insert_batch(
        self,
        items: Sequence[Submission],
        *,
        applied_outbox_ids: Sequence[int] = (),
        responses: Sequence[tuple[str, str, bytes]] = (),
    ) -> dict[str, int]:
        """Store new submissions; returns {submission id: outbox id} of those that were new."""
        # One JSON document per batch: json.dumps runs in C, where psycopg would dump
        # eleven arrays element by element in Python. A batch shares one timestamp.
        created = _iso(items[0].created_at) if items else None
        rows = json.dumps(
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
        )
        answered = json.dumps([{"caller_id": c, "request_id": r, "response": b.hex()} for c, r, b in responses])
        params = {"rows": rows, "done": list(applied_outbox_ids), "responses": answered}
        async with self._autocommit.connect() as conn:
            # The driver's connection directly: this statement is the hot path, and
            # SQLAlchemy's per-execute work costs more than the statement's own.
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            cursor = await driver.execute(_INSERT_BATCH, params, prepare=True)
            rows_out = await cursor.fetchall()
        return {str(event_id): int(outbox_id) for event_id, outbox_id in rows_out}

    async def flush_bookkeeping(
        self, applied_outbox_ids: Sequence[int], responses: Sequence[tuple[str, str, bytes]]
    ) -> None:
        """Deferred writes when no batch follows to carry them."""
        await self.insert_batch([], applied_outbox_ids=applied_outbox_ids, responses=responses)

    async def existing_requests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], ExistingRequest]:
        async with self._autocommit.connect() as conn:
            rows = (
                await conn.execute(
                    _EXISTING_REQUESTS,
                    {"callers": [k[0] for k in keys], "request_ids": [k[1] for k in keys]},
                )
            ).all()
        found: dict[tuple[str, str], ExistingRequest] = {}
        for row in rows:
            stored = None
            if row[5] is not None:
                stored = Submission(
                    caller_id=row[0],
                    request_id=row[1],
                    leaderboard_id=row[6],
                    user_id=row[7],
                    score=int(row[8]),
                    metadata=dict(row[9]),
                    submitted_by=row[10],
                    display_name="",
                    body_hash=bytes(row[3]),
                    id=row[2],
                    created_at=row[5],
                )
            found[(row[0], row[1])] = ExistingRequest(
                row[0], row[1], row[2], bytes(row[3]), bytes(row[4]) if row[4] is not None else None, stored
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
        clauses = ["user_id = :user_id"]
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
            "SELECT CAST(id AS text), created_at, leaderboard_id, user_id, score, CAST(request_id AS text), "
            "submitted_by, display_name, metadata FROM scores.score_events WHERE "
            + " AND ".join(clauses)
            + " ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
        async with self._autocommit.connect() as conn:
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
            "SELECT CAST(id AS text), created_at, user_id, score, display_name FROM scores.score_events "
            f"WHERE leaderboard_id = :board {cursor} ORDER BY created_at, id LIMIT :limit"
        )
        async with self._autocommit.connect() as conn:
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

    async def claim_pending(self, min_age_seconds: float, limit: int) -> tuple[Claim | None, list[PendingEvent]]:
        """Open a transaction holding the relay lock and return the oldest unapplied events.

        Only one relay (across all replicas) works at a time, so events reach
        ranking in commit order; the caller must finish with `finish_claim`.
        """
        conn = await self._engine.connect()
        trans = await conn.begin()
        locked = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(727274001)"))).scalar()
        if not locked:
            await trans.rollback()
            await conn.close()
            return None, []
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT o.id, CAST(e.id AS text), e.created_at, e.leaderboard_id, e.user_id, e.score,
                           e.display_name, o.attempts
                    FROM scores.outbox o
                    JOIN scores.score_events e ON e.id = o.event_id AND e.created_at = o.created_at
                    WHERE o.parked_at IS NULL
                      AND o.created_at < now() - make_interval(secs => :min_age)
                    ORDER BY o.id
                    LIMIT :limit
                    """
                ),
                {"min_age": min_age_seconds, "limit": limit},
            )
        ).all()
        events = [PendingEvent(int(r[0]), r[1], r[2], r[3], r[4], int(r[5]), r[6], int(r[7])) for r in rows]
        return Claim(conn, trans), events

    async def finish_claim(
        self,
        claim: Claim,
        *,
        applied: Sequence[int],
        failed: Sequence[tuple[int, str]],
        parked: Sequence[tuple[int, str]],
    ) -> None:
        conn, trans = claim.conn, claim.trans
        try:
            if applied:
                await conn.execute(
                    text("DELETE FROM scores.outbox WHERE id = ANY(CAST(:ids AS bigint[]))"),
                    {"ids": list(applied)},
                )
            for outbox_id, error in failed:
                await conn.execute(
                    text("UPDATE scores.outbox SET attempts = attempts + 1, last_error = :e WHERE id = :id"),
                    {"e": error[:500], "id": outbox_id},
                )
            for outbox_id, error in parked:
                await conn.execute(
                    text(
                        "UPDATE scores.outbox SET attempts = attempts + 1, last_error = :e, parked_at = now() "
                        "WHERE id = :id"
                    ),
                    {"e": error[:500], "id": outbox_id},
                )
            await trans.commit()
        finally:
            await conn.close()

    async def abandon_claim(self, claim: Claim) -> None:
        try:
            await claim.trans.rollback()
        finally:
            await claim.conn.close()

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
                async with self._autocommit.connect() as conn:
                    await conn.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS scores.{name} PARTITION OF scores.score_events "
                            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                        )
                    )
            except DBAPIError as exc:
                # Another replica raced us, or rows for that month sit in the default partition.
                log.warning("could not create partition %s: %s", name, exc.orig)
