"""SQL access to `auth.signing_keys`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import SigningKeyRow

# Serialises key creation and rotation across processes (auth workers, the CLI).
_KEYS_LOCK = 0x5EED_4B45


@dataclass(frozen=True)
class StoredKey:
    kid: str
    algorithm: str
    public_key_pem: str
    private_key_sealed: bytes | None
    created_at: datetime
    retired_at: datetime | None
    expire_at: datetime | None


def _stored(row: SigningKeyRow) -> StoredKey:
    return StoredKey(
        kid=row.kid,
        algorithm=row.algorithm,
        public_key_pem=row.public_key_pem,
        private_key_sealed=row.private_key_sealed,
        created_at=row.created_at,
        retired_at=row.retired_at,
        expire_at=row.expire_at,
    )


async def lock_keys(session: AsyncSession) -> None:
    """Transaction-scoped advisory lock: one creator or rotator at a time."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _KEYS_LOCK})


async def current_key(session: AsyncSession) -> StoredKey | None:
    """The key that signs: the newest one not retired."""
    row = await session.scalar(
        select(SigningKeyRow)
        .where(SigningKeyRow.retired_at.is_(None))
        .order_by(SigningKeyRow.created_at.desc(), SigningKeyRow.kid)
        .limit(1)
    )
    return None if row is None else _stored(row)


async def valid_keys(session: AsyncSession, now: datetime) -> list[StoredKey]:
    """Every key whose tokens may still be valid, newest first."""
    rows = await session.scalars(
        select(SigningKeyRow)
        .where(or_(SigningKeyRow.expire_at.is_(None), SigningKeyRow.expire_at > now))
        .order_by(SigningKeyRow.created_at.desc(), SigningKeyRow.kid)
    )
    return [_stored(row) for row in rows]


async def insert_key(
    session: AsyncSession, *, kid: str, algorithm: str, public_key_pem: str, private_key_sealed: bytes
) -> None:
    session.add(
        SigningKeyRow(
            kid=kid, algorithm=algorithm, public_key_pem=public_key_pem, private_key_sealed=private_key_sealed
        )
    )
    await session.flush()


async def retire_others(session: AsyncSession, keep_kid: str, *, now: datetime, expire_at: datetime) -> int:
    """Retire every signing key but `keep_kid`; their private halves are dropped."""
    result = await session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.retired_at.is_(None), SigningKeyRow.kid != keep_kid)
        .values(retired_at=now, expire_at=expire_at, private_key_sealed=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
