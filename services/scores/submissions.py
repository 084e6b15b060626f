"""Score submissions: validation and the idempotency fingerprint (no gRPC, no I/O)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from leaderboard.runtime.context import Principal
from leaderboard.runtime.errors import InvalidArgument, NotFound, PermissionDenied

MAX_SAFE_SCORE = 2**53
MAX_METADATA_BYTES = 1024
MAX_BATCH = 1000


# Submission ids need to be unique, not secret: a PRNG seeded from the OS avoids a
# getrandom() syscall per id (uuid4), which showed up in batch-submit profiles.
_ids = random.Random(os.urandom(32))


def new_id() -> str:
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class BoardRules:
    """What ingest needs to know of a leaderboard (from RankingService's catalog)."""

    leaderboard_id: str
    min_score: int
    max_score: int
    authoritative: bool


@dataclass(slots=True)
class Submission:
    """A validated submission, ready to be stored."""

    caller_id: str
    request_id: str
    leaderboard_id: str
    user_id: str
    score: int
    metadata: dict[str, str]
    submitted_by: str
    display_name: str
    body_hash: bytes
    id: str = field(default_factory=new_id)
    created_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.caller_id, self.request_id)


def body_hash(leaderboard_id: str, user_id: str, score: int, metadata: dict[str, str]) -> bytes:
    """Fingerprint of what a request asks for: same request_id + other body = reuse."""
    canonical = json.dumps([leaderboard_id, user_id, score, sorted(metadata.items())], separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


def parse_request_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidArgument("request_id", "must be a UUID") from None


def validate_metadata(metadata: dict[str, str]) -> dict[str, str]:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument("metadata", f"at most {MAX_METADATA_BYTES} bytes in total (got {size})")
    return dict(metadata)


def resolve_player(principal: Principal, requested_user_id: str) -> str:
    """A player submits for itself; game servers (and admins) may name any player."""
    if not requested_user_id or requested_user_id == principal.user_id:
        return principal.user_id
    if principal.is_server or principal.is_admin:
        try:
            return str(uuid.UUID(requested_user_id))
        except ValueError:
            raise InvalidArgument("user_id", "must be a user id (UUID)") from None
    raise PermissionDenied("players may only submit their own scores", reason="SUBMIT_FOR_OTHER_USER")


def check_score(rules: BoardRules | None, leaderboard_id: str, score: int, principal: Principal) -> None:
    if not -MAX_SAFE_SCORE <= score <= MAX_SAFE_SCORE:
        raise InvalidArgument("score", "must be within ±2^53", reason="SCORE_OUT_OF_RANGE")
    if rules is None:
        raise NotFound(f"leaderboard {leaderboard_id!r} does not exist", reason="LEADERBOARD_NOT_FOUND")
    if rules.authoritative and not (principal.is_server or principal.is_admin):
        raise PermissionDenied(
            "this leaderboard only accepts scores from game servers", reason="LEADERBOARD_AUTHORITATIVE"
        )
    if not rules.min_score <= score <= rules.max_score:
        raise InvalidArgument(
            "score",
            f"must be within [{rules.min_score}, {rules.max_score}] on this leaderboard",
            reason="SCORE_OUT_OF_BOUNDS",
        )
