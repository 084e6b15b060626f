"""SQL access to `auth.users` and `auth.service_accounts`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.models import ServiceAccountRow, UserRow

ROLE_PLAYER = "player"
ROLE_SERVER = "server"
ROLE_ADMIN = "admin"


@dataclass(frozen=True)
class Account:
    """A user record as the domain sees it."""

    id: str
    username: str
    display_name: str
    role: str
    created_at: datetime | None  # None for the synthetic internal accounts
    password_hash: str | None
    locked: bool


@dataclass(frozen=True)
class ServiceAccount:
    client_id: str
    secret_sha256: bytes
    account: Account


def _account(row: UserRow) -> Account:
    return Account(
        id=str(row.id),
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        created_at=row.created_at,
        password_hash=row.password_hash,
        locked=row.locked_at is not None,
    )


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def insert_user(
    session: AsyncSession, *, username: str, display_name: str, role: str, password_hash: str | None
) -> Account | None:
    """The new account, or None when the username is taken (no exception: the
    transaction stays usable)."""
    row = await session.scalar(
        insert(UserRow)
        .values(
            id=uuid.uuid4(),
            username=username,
            display_name=display_name,
            role=role,
            password_hash=password_hash,
        )
        .on_conflict_do_nothing(index_elements=[UserRow.username])
        .returning(UserRow)
    )
    return None if row is None else _account(row)


async def get_by_username(session: AsyncSession, username: str) -> Account | None:
    row = await session.scalar(select(UserRow).where(UserRow.username == username))
    return None if row is None else _account(row)


async def get_by_id(session: AsyncSession, user_id: str) -> Account | None:
    key = _uuid(user_id)
    if key is None:
        return None
    row = await session.get(UserRow, key)
    return None if row is None else _account(row)


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    await session.execute(
        update(UserRow)
        .where(UserRow.id == uuid.UUID(user_id))
        .values(password_hash=password_hash, updated_at=func.now())
    )


async def set_locked(session: AsyncSession, username: str, locked: bool) -> Account | None:
    row = await session.scalar(
        update(UserRow)
        .where(UserRow.username == username)
        .values(locked_at=func.now() if locked else None, updated_at=func.now())
        .returning(UserRow)
    )
    return None if row is None else _account(row)


async def insert_service_account(session: AsyncSession, *, client_id: str, user_id: str, secret_sha256: bytes) -> None:
    session.add(ServiceAccountRow(client_id=client_id, user_id=uuid.UUID(user_id), secret_sha256=secret_sha256))
    await session.flush()


async def get_service_account(session: AsyncSession, client_id: str) -> ServiceAccount | None:
    result = await session.execute(
        select(ServiceAccountRow, UserRow)
        .join(UserRow, UserRow.id == ServiceAccountRow.user_id)
        .where(ServiceAccountRow.client_id == client_id)
    )
    found = result.first()
    if found is None:
        return None
    service_account, user = found
    return ServiceAccount(service_account.client_id, service_account.secret_sha256, _account(user))
