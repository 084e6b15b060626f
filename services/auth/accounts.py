"""What AuthService does, without gRPC: accounts, logins, refresh-token
families, service accounts and the platform's internal tokens."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leaderboard.runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unauthenticated
from leaderboard.runtime.service_token import INTERNAL_CLIENT_PREFIX
from services.auth import account_store, opaque_tokens, refresh_store
from services.auth.account_store import ROLE_ADMIN, ROLE_PLAYER, ROLE_SERVER, Account
from services.auth.names import (
    SERVICE_ACCOUNT_PREFIX,
    check_display_name,
    check_service_account_name,
    check_username,
    normalize_username,
)
from services.auth.passwords import MAX_LENGTH, PasswordHasher, check_new_password, normalize
from services.auth.throttle import LoginThrottle, RegistrationLimit, throttle_subject
from services.auth.token_issuer import AccessTokenIssuer, IssuedToken

# One message for every failed login, whatever the cause (unknown user, wrong
# password, locked account), so the answer reveals nothing.
BAD_CREDENTIALS = "invalid username or password"
BAD_CLIENT_CREDENTIALS = "invalid client id or secret"
BAD_REFRESH_TOKEN = "invalid refresh token"
INTERNAL_SERVICE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Far longer than any valid password before normalisation; a cheap bound on
# the work an absurd login request can cause.
MAX_RAW_PASSWORD = 8 * MAX_LENGTH


@dataclass(frozen=True)
class LoginResult:
    access: IssuedToken
    refresh_token: str
    account: Account


@dataclass(frozen=True)
class Refreshed:
    access: IssuedToken
    refresh_token: str


@dataclass(frozen=True)
class NewServiceAccount:
    client_id: str
    client_secret: str
    account: Account


async def create_account(
    sessions: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    *,
    username: str,
    password: str,
    display_name: str,
    role: str,
) -> Account:
    """Validate and create a password account (players via Register, admins via the CLI)."""
    name = check_username(username)
    shown = check_display_name(display_name, default=name)
    normalized = check_new_password(password, username=name)
    async with sessions() as session:
        # Cheap pre-check: a taken name should not cost an argon2 hash.
        if await account_store.get_by_username(session, name) is not None:
            raise AlreadyExists("username is taken", reason="USERNAME_TAKEN")
    password_hash = await hasher.hash(normalized)
    async with sessions.begin() as session:
        account = await account_store.insert_user(
            session, username=name, display_name=shown, role=role, password_hash=password_hash
        )
    if account is None:
        raise AlreadyExists("username is taken", reason="USERNAME_TAKEN")
    return account


def internal_account(subject: str, display_name: str) -> Account:
    """The synthetic account behind an internal (`internal:<service>`) token."""
    return Account(
        id=subject,
        username=subject,
        display_name=display_name,
        role=ROLE_SERVER,
        created_at=None,
        password_hash=None,
        locked=False,
    )


class Accounts:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        issuer: AccessTokenIssuer,
        throttle: LoginThrottle,
        *,
        registrations: RegistrationLimit | None = None,
        refresh_ttl_seconds: int,
        internal_secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._hasher = hasher
        self._issuer = issuer
        self._throttle = throttle
        self._registrations = registrations
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self._internal_secret = internal_secret
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _access_token(self, account: Account) -> IssuedToken:
        return await self._issuer.issue(
            subject=account.id, role=account.role, username=account.username, display_name=account.display_name
        )

    async def register(self, *, username: str, password: str, display_name: str, peer: str = "") -> Account:
        if self._registrations is not None:
            await self._registrations.admit(peer)
        return await create_account(
            self._sessions,
            self._hasher,
            username=username,
            password=password,
            display_name=display_name,
            role=ROLE_PLAYER,
        )

    async def login(self, *, username: str, password: str, peer: str) -> LoginResult:
        if not username:
            raise InvalidArgument("username", "is required")
        if not password:
            raise InvalidArgument("password", "is required")
        if len(password) > MAX_RAW_PASSWORD:
            raise InvalidArgument("password", f"must be at most {MAX_LENGTH} characters")
        name = normalize_username(username)
        subject = throttle_subject(name)
        await self._throttle.acquire(subject, peer)
        async with self._sessions() as session:
            account = await account_store.get_by_username(session, name)
        normalized = normalize(password)
        # Unknown users (and service accounts, which have no password) check a
        # dummy hash: every failure costs the same argon2 time.
        ok = await self._hasher.verify(account.password_hash if account else None, normalized)
        if not ok or account is None or account.locked:
            await self._throttle.failed(subject, peer)
            raise Unauthenticated(BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        await self._throttle.succeeded(subject, peer)
        assert account.password_hash is not None
        new_hash = await self._hasher.hash(normalized) if self._hasher.needs_rehash(account.password_hash) else None
        refresh_token = opaque_tokens.new_secret()
        async with self._sessions.begin() as session:
            if new_hash is not None:
                # Parameters changed since this hash was made: upgrade it now that we know the password.
                await account_store.set_password_hash(session, account.id, new_hash)
            await refresh_store.create_family(
                session,
                user_id=account.id,
                token_sha256=opaque_tokens.digest(refresh_token),
                expires_at=self._now() + self._refresh_ttl,
            )
        return LoginResult(await self._access_token(account), refresh_token, account)

    async def refresh(self, refresh_token: str) -> Refreshed:
        if not refresh_token:
            raise InvalidArgument("refresh_token", "is required")
        now = self._now()
        new_token = opaque_tokens.new_secret()
        failure: Unauthenticated | None = None
        account: Account | None = None
        async with self._sessions.begin() as session:
            state = await refresh_store.lock_token(session, opaque_tokens.digest(refresh_token))
            if state is None:
                raise Unauthenticated(BAD_REFRESH_TOKEN, reason="INVALID_REFRESH_TOKEN")
            if state.family_revoked:
                raise Unauthenticated("refresh token revoked", reason="REFRESH_TOKEN_REVOKED")
            if state.used_at is not None:
                # A rotated token came back: one of its holders is not the user.
                # End the whole session; the revocation must commit, so raise after.
                await refresh_store.revoke_family(session, state.family_id, reason="REUSED", now=now)
                failure = Unauthenticated("refresh token reused; session revoked", reason="REFRESH_TOKEN_REUSED")
            elif state.expires_at <= now:
                raise Unauthenticated("refresh token expired", reason="REFRESH_TOKEN_EXPIRED")
            else:
                account = await account_store.get_by_id(session, state.user_id)
                if account is None or account.locked:
                    await refresh_store.revoke_family(session, state.family_id, reason="LOCKED", now=now)
                    failure = Unauthenticated("refresh token revoked", reason="REFRESH_TOKEN_REVOKED")
                else:
                    digest = opaque_tokens.digest(refresh_token)
                    await refresh_store.mark_used(session, digest, now)
                    await refresh_store.insert_token(
                        session,
                        family_id=state.family_id,
                        token_sha256=opaque_tokens.digest(new_token),
                        expires_at=now + self._refresh_ttl,
                    )
        if failure is not None:
            raise failure
        assert account is not None
        return Refreshed(await self._access_token(account), new_token)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's family; unknown or already revoked tokens are fine (idempotent)."""
        if not refresh_token:
            raise InvalidArgument("refresh_token", "is required")
        async with self._sessions.begin() as session:
            family_id = await refresh_store.family_of(session, opaque_tokens.digest(refresh_token))
            if family_id is not None:
                await refresh_store.revoke_family(session, family_id, reason="LOGOUT", now=self._now())

    async def current_user(self, *, user_id: str, display_name: str) -> Account:
        """The caller's account; internal callers get their synthetic one."""
        if user_id.startswith(INTERNAL_CLIENT_PREFIX):
            return internal_account(user_id, display_name or user_id)
        async with self._sessions() as session:
            account = await account_store.get_by_id(session, user_id)
        if account is None:
            raise NotFound("the caller's account no longer exists", reason="USER_NOT_FOUND")
        return account

    async def create_service_account(self, name: str) -> NewServiceAccount:
        return await create_service_account(self._sessions, name)

    async def issue_service_token(self, *, client_id: str, client_secret: str) -> IssuedToken:
        if not client_id:
            raise InvalidArgument("client_id", "is required")
        if not client_secret:
            raise InvalidArgument("client_secret", "is required")
        if client_id.startswith(INTERNAL_CLIENT_PREFIX):
            return await self._internal_token(client_id, client_secret)
        async with self._sessions() as session:
            found = await account_store.get_service_account(session, client_id)
        # Compare against something even for unknown ids: no timing difference.
        expected = found.secret_sha256 if found else opaque_tokens.digest(client_id + ":unknown")
        matches = hmac.compare_digest(expected, opaque_tokens.digest(client_secret))
        if found is None or not matches or found.account.locked:
            raise Unauthenticated(BAD_CLIENT_CREDENTIALS, reason="INVALID_CLIENT_CREDENTIALS")
        return await self._access_token(found.account)

    async def _internal_token(self, client_id: str, client_secret: str) -> IssuedToken:
        service = client_id[len(INTERNAL_CLIENT_PREFIX) :]
        # Refused outright when no internal secret is configured: "" must never match "".
        valid = bool(self._internal_secret) and hmac.compare_digest(
            client_secret.encode(), self._internal_secret.encode()
        )
        if not valid or not INTERNAL_SERVICE_RE.fullmatch(service):
            raise Unauthenticated(BAD_CLIENT_CREDENTIALS, reason="INVALID_CLIENT_CREDENTIALS")
        return await self._access_token(internal_account(client_id, f"{service} service"))


async def create_service_account(sessions: async_sessionmaker[AsyncSession], name: str) -> NewServiceAccount:
    """A game server's identity (ROLE_SERVER user) and its client credentials.

    The client id doubles as the username (players cannot register the `svc_`
    prefix); the secret is returned once and stored as its SHA-256 only.
    """
    display_name = check_service_account_name(name)
    secret = opaque_tokens.new_secret()
    async with sessions.begin() as session:
        for _ in range(3):
            client_id = SERVICE_ACCOUNT_PREFIX + secrets.token_hex(12)  # 96 bits, a valid username
            account = await account_store.insert_user(
                session, username=client_id, display_name=display_name, role=ROLE_SERVER, password_hash=None
            )
            if account is not None:
                break
        else:  # pragma: no cover - 96 random bits colliding thrice
            raise AlreadyExists("could not allocate a client id", reason="CLIENT_ID_COLLISION")
        await account_store.insert_service_account(
            session, client_id=client_id, user_id=account.id, secret_sha256=opaque_tokens.digest(secret)
        )
    return NewServiceAccount(client_id, secret, account)


async def ensure_admin_account(
    sessions: async_sessionmaker[AsyncSession],
    hasher: PasswordHasher,
    *,
    username: str,
    password: str,
    display_name: str | None,
) -> tuple[Account, bool]:
    """The admin `username` and whether it was created now (idempotent: an
    existing admin keeps its password; a non-admin of that name is an error)."""
    name = check_username(username)
    async with sessions() as session:
        existing = await account_store.get_by_username(session, name)
    if existing is None:
        try:
            created = await create_account(
                sessions,
                hasher,
                username=name,
                password=password,
                display_name=display_name or "",
                role=ROLE_ADMIN,
            )
            return created, True
        except AlreadyExists:
            async with sessions() as session:
                existing = await account_store.get_by_username(session, name)  # created concurrently
            if existing is None:  # pragma: no cover - cannot be taken and missing at once
                raise
    if existing.role != ROLE_ADMIN:
        raise AlreadyExists(f"username {name!r} belongs to a {existing.role} account", reason="USERNAME_TAKEN")
    return existing, False


async def set_locked(sessions: async_sessionmaker[AsyncSession], username: str, locked: bool) -> Account:
    """Lock (or unlock) an account: logins, refreshes and service tokens are refused."""
    async with sessions.begin() as session:
        account = await account_store.set_locked(session, normalize_username(username), locked)
    if account is None:
        raise NotFound(f"no account named {username!r}", reason="USER_NOT_FOUND")
    return account
