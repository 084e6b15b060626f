"""SQL access to refresh-token families and tokens (`auth.refresh_families`, `auth.refresh_tokens`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import RefreshFamilyRow, RefreshTokenRow


@dataclass(frozen=True)
class TokenState:
    family_id: uuid.UUID
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    family_revoked: bool


async def create_family(session: AsyncSession, *, user_id: str, token_sha256: bytes, expires_at: datetime) -> None:
    family_id = uuid.uuid4()
    session.add(RefreshFamilyRow(id=family_id, user_id=uuid.UUID(user_id)))
    await session.flush()
    await insert_token(session, family_id=family_id, token_sha256=token_sha256, expires_at=expires_at)


async def insert_token(
    session: AsyncSession, *, family_id: uuid.UUID, token_sha256: bytes, expires_at: datetime
) -> None:
    session.add(RefreshTokenRow(token_sha256=token_sha256, family_id=family_id, expires_at=expires_at))
    await session.flush()


async def lock_token(session: AsyncSession, token_sha256: bytes) -> TokenState | None:
    """The token and its family, row-locked until the transaction ends (so two
    uses of one token are serialised: the second sees the first's rotation)."""
    result = await session.execute(
        select(RefreshTokenRow, RefreshFamilyRow)
        .join(RefreshFamilyRow, RefreshFamilyRow.id == RefreshTokenRow.family_id)
        .where(RefreshTokenRow.token_sha256 == token_sha256)
        .with_for_update()
    )
    found = result.first()
    if found is None:
        return None
    token, family = found
    return TokenState(
        family_id=family.id,
        user_id=str(family.user_id),
        expires_at=token.expires_at,
        used_at=token.used_at,
        family_revoked=family.revoked_at is not None,
    )


async def family_of(session: AsyncSession, token_sha256: bytes) -> uuid.UUID | None:
    family_id: uuid.UUID | None = await session.scalar(
        select(RefreshTokenRow.family_id).where(RefreshTokenRow.token_sha256 == token_sha256)
    )
    return family_id


async def mark_used(session: AsyncSession, token_sha256: bytes, now: datetime) -> None:
    await session.execute(
        update(RefreshTokenRow).where(RefreshTokenRow.token_sha256 == token_sha256).values(used_at=now)
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, *, reason: str, now: datetime) -> None:
    await session.execute(
        update(RefreshFamilyRow)
        .where(RefreshFamilyRow.id == family_id, RefreshFamilyRow.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )


async def prune(session: AsyncSession, now: datetime) -> int:
    """Delete expired tokens (used or not: past expiry a token is refused anyway),
    then the families left without tokens."""
    result = await session.execute(delete(RefreshTokenRow).where(RefreshTokenRow.expires_at < now))
    await session.execute(
        delete(RefreshFamilyRow).where(~exists().where(RefreshTokenRow.family_id == RefreshFamilyRow.id))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
