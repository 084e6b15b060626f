"""Opaque page tokens (AIP-158): URL-safe base64 of compact JSON.

A token only says where a listing continues; it never grants access (the
reader's permission is checked on every call) and it is bound to the request
it came from, so a token of another board, window or filter is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from leaderboard.runtime.errors import InvalidArgument

FIELD = "page_token"
# Period keys as windows.py names them (a token must not name arbitrary Redis keys).
PERIOD_KEY = re.compile(r"a|d\d{8}|w\d{4}-\d{2}|m\d{6}")


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument(FIELD, "malformed page token") from None
    if not isinstance(payload, dict):
        raise InvalidArgument(FIELD, "malformed page token")
    return payload


def mismatch() -> InvalidArgument:
    return InvalidArgument(FIELD, "the page token belongs to another request")


def expired() -> InvalidArgument:
    return InvalidArgument(FIELD, "the page token has expired; start from the first page", reason="PAGE_TOKEN_EXPIRED")


@dataclass(frozen=True, slots=True)
class TopToken:
    """Where ListTopEntries continues: the snapshot it reads and the last entry listed."""

    board_id: str
    window: int
    period: str
    generation: int
    snapshot: int
    cursor_stored: int
    cursor_member: bytes
    last_stored: int | None
    last_rank: int
    listed: int
    issued_ms: int

    # Binary: a version byte, the fixed fields, then "<board id>/<period>" (JSON costs ~5x more
    # and this one is built on every ListTopEntries page).
    _LAYOUT = struct.Struct(">BBqqq22sBqqqq")

    def encode(self) -> str:
        head = self._LAYOUT.pack(
            1,
            self.window,
            self.generation,
            self.snapshot,
            self.cursor_stored,
            self.cursor_member,
            self.last_stored is not None,
            self.last_stored or 0,
            self.last_rank,
            self.listed,
            self.issued_ms,
        )
        tail = f"{self.board_id}/{self.period}".encode()
        return base64.urlsafe_b64encode(head + tail).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> TopToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            fields = cls._LAYOUT.unpack_from(raw)
            board_id, period = raw[cls._LAYOUT.size :].decode().split("/")
        except (binascii.Error, ValueError, struct.error, UnicodeDecodeError):
            raise InvalidArgument(FIELD, "malformed page token") from None
        version, window, generation, snapshot, cursor_stored, member, has_last, last, rank, listed, issued = fields
        if version != 1 or not PERIOD_KEY.fullmatch(period):
            raise InvalidArgument(FIELD, "malformed page token")
        return cls(
            board_id,
            window,
            period,
            generation,
            snapshot,
            cursor_stored,
            member,
            last if has_last else None,
            rank,
            listed,
            issued,
        )


@dataclass(frozen=True, slots=True)
class CatalogToken:
    """Where ListLeaderboards continues: after this id, within this game filter."""

    after_id: str
    game_id: str

    def encode(self) -> str:
        return _encode({"a": self.after_id, "g": self.game_id})

    @classmethod
    def decode(cls, token: str) -> CatalogToken:
        p = _decode(token)
        after, game = p.get("a"), p.get("g")
        if not isinstance(after, str) or not isinstance(game, str):
            raise InvalidArgument(FIELD, "malformed page token")
        return cls(after, game)
