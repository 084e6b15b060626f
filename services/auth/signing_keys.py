"""Ed25519 signing keys: creation, encryption at rest, loading and rotation.

Private keys are stored sealed: AES-256-GCM under a key derived with scrypt
from the signing-key secret (LEADERBOARD_SIGNING_KEY_SECRET, or a random one
created once in the data dir), the key id bound in as associated data so a
ciphertext cannot be moved to another row. Rotation creates a new key and
retires the old one: its private half is deleted at once, its public half
stays in GetSigningKeys until every token it signed has expired.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leaderboard.runtime.secret_file import persistent_secret
from leaderboard.runtime.tokens import ALGORITHM, MAX_LEEWAY_SECONDS, PublicKeySet
from services.auth import key_store

SECRET_FILE = "signing_key_secret"
SEAL_VERSION = b"LBK1"
_SALT_BYTES = 16
_NONCE_BYTES = 12
# scrypt at 32 MiB: cheap once per process start, slow for guessing a weak secret.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
# How often a process re-reads which key signs, so a rotation by another
# process (the CLI) takes effect everywhere within this time.
RELOAD_SECONDS = 10.0


class SigningKeyError(RuntimeError):
    """The stored keys cannot be used (e.g. the secret changed)."""


def resolve_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, else the one in `data_dir/signing_key_secret`, created once (0600)."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    try:
        return persistent_secret(path)
    except ValueError as exc:
        raise SigningKeyError(str(exc)) from None


def _derive(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(secret.encode())


def seal(private_key: Ed25519PrivateKey, secret: str, kid: str) -> bytes:
    """version || salt || nonce || AES-256-GCM(raw private key, aad=kid)."""
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    salt, nonce = os.urandom(_SALT_BYTES), os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(_derive(secret, salt)).encrypt(nonce, raw, kid.encode())
    return SEAL_VERSION + salt + nonce + ciphertext


def unseal(blob: bytes, secret: str, kid: str) -> Ed25519PrivateKey:
    if not blob.startswith(SEAL_VERSION):
        raise SigningKeyError(f"signing key {kid}: unknown storage format")
    body = blob[len(SEAL_VERSION) :]
    salt, nonce, ciphertext = (
        body[:_SALT_BYTES],
        body[_SALT_BYTES : _SALT_BYTES + _NONCE_BYTES],
        body[_SALT_BYTES + _NONCE_BYTES :],
    )
    try:
        raw = AESGCM(_derive(secret, salt)).decrypt(nonce, ciphertext, kid.encode())
    except InvalidTag:
        raise SigningKeyError(
            f"cannot decrypt signing key {kid}: LEADERBOARD_SIGNING_KEY_SECRET (or the data dir's "
            "signing_key_secret file) is not the one it was stored with"
        ) from None
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_pem(private_key: Ed25519PrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(private_key: Ed25519PrivateKey) -> str:
    """RFC 7638 JWK thumbprint of the public key: stable, and names the key it belongs to."""
    x = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": base64.urlsafe_b64encode(x).rstrip(b"=").decode()}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def retired_key_lifetime(access_token_ttl_seconds: int) -> timedelta:
    """How long a retired key stays published: its last token's lifetime, plus the
    time other processes may still sign with it, plus the verifiers' leeway."""
    return timedelta(seconds=access_token_ttl_seconds + RELOAD_SECONDS + MAX_LEEWAY_SECONDS)


async def _new_sealed_key(secret: str) -> tuple[str, str, bytes]:
    private_key = Ed25519PrivateKey.generate()
    kid = key_id(private_key)
    sealed = await asyncio.to_thread(seal, private_key, secret, kid)
    return kid, public_pem(private_key), sealed


async def _insert_new_key(session: AsyncSession, secret: str) -> str:
    kid, pem, sealed = await _new_sealed_key(secret)
    await key_store.insert_key(session, kid=kid, algorithm=ALGORITHM, public_key_pem=pem, private_key_sealed=sealed)
    return kid


async def ensure_signing_key(sessions: async_sessionmaker[AsyncSession], secret: str) -> str:
    """The current key id, creating the first key if there is none (first start)."""
    async with sessions.begin() as session:
        await key_store.lock_keys(session)
        current = await key_store.current_key(session)
        if current is not None:
            return current.kid
        return await _insert_new_key(session, secret)


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    retired_kids: list[str]
    retired_expire_at: datetime


async def rotate_signing_key(
    sessions: async_sessionmaker[AsyncSession], secret: str, *, access_token_ttl_seconds: int
) -> Rotation:
    """Start signing with a new key; older keys verify until their tokens expire."""
    async with sessions.begin() as session:
        await key_store.lock_keys(session)
        previous = await key_store.current_key(session)
        kid = await _insert_new_key(session, secret)
        now = datetime.now(UTC)
        expire_at = now + retired_key_lifetime(access_token_ttl_seconds)
        await key_store.retire_others(session, kid, now=now, expire_at=expire_at)
    return Rotation(kid, [] if previous is None else [previous.kid], expire_at)


@dataclass(frozen=True)
class PublicKeyInfo:
    kid: str
    algorithm: str
    public_key_pem: str
    created_at: datetime
    expire_at: datetime | None


class KeyRing:
    """The key this process signs with, and the public keys that verify tokens."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: str,
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._signer: tuple[str, Ed25519PrivateKey] | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await ensure_signing_key(self._sessions, self._secret)
        await self.reload()

    async def reload(self) -> None:
        """Re-read the current key (after a rotation; also every RELOAD_SECONDS)."""
        async with self._sessions() as session:
            current = await key_store.current_key(session)
        if current is None or current.private_key_sealed is None:
            raise SigningKeyError("no signing key; start AuthService once or run rotate-signing-key")
        if self._signer is None or self._signer[0] != current.kid:
            private_key = await asyncio.to_thread(unseal, current.private_key_sealed, self._secret, current.kid)
            self._signer = (current.kid, private_key)
        self._loaded_at = self._clock()

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        if self._signer is None or self._clock() - self._loaded_at >= RELOAD_SECONDS:
            async with self._lock:
                if self._signer is None or self._clock() - self._loaded_at >= RELOAD_SECONDS:
                    await self.reload()
        assert self._signer is not None
        return self._signer

    async def public_keys(self) -> list[PublicKeyInfo]:
        async with self._sessions() as session:
            keys = await key_store.valid_keys(session, datetime.now(UTC))
        return [PublicKeyInfo(k.kid, k.algorithm, k.public_key_pem, k.created_at, k.expire_at) for k in keys]

    async def public_key_set(self) -> PublicKeySet:
        """The runtime verifier's key source inside AuthService itself."""
        keys = await self.public_keys()
        return PublicKeySet(keys={k.kid: k.public_key_pem for k in keys}, issuer=self._issuer, audience=self._audience)
