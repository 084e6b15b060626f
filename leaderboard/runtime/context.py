"""Per-RPC context carried in contextvars: request id and the authenticated caller."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from leaderboard.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller of an RPC (from its access token)."""

    user_id: str
    role: int  # common_pb2.Role value
    username: str
    display_name: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == common_pb2.ROLE_ADMIN

    @property
    def is_server(self) -> bool:
        return self.role == common_pb2.ROLE_SERVER


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the current RPC; the RPC guard guarantees one on non-public methods."""
    principal = principal_var.get()
    if principal is None:
        from leaderboard.runtime.errors import Unauthenticated

        raise Unauthenticated("missing credentials", reason="MISSING_CREDENTIALS")
    return principal
