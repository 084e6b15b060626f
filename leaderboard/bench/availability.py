"""Which RPCs exist yet: a scenario whose RPC answers UNIMPLEMENTED says so.

Services land one issue at a time; until then the generated servicer base
answers UNIMPLEMENTED. A benchmark must print "not implemented yet" for such a
scenario, never zeros, and start measuring by itself once the RPC exists.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

T = TypeVar("T")

# Which issue brings each service's RPCs (a few RPCs have an issue of their own).
_ISSUES = {
    "AuthService": "issue 4",
    "RankingService.SubscribeRankUpdates": "the rank-streaming issue",
    "RankingService": "issue 5",
    "ScoreService": "issue 6",
    "ReportService": "the reports issue",
}


def issue_for(method: str) -> str:
    """The issue that implements `method` ("ScoreService.SubmitScore"), or ""."""
    service = method.split(".", 1)[0]
    return _ISSUES.get(method) or _ISSUES.get(service, "")


class NotImplementedYet(Exception):
    """A scenario's RPC (or setup step) is not implemented yet."""

    def __init__(self, method: str, detail: str = "") -> None:
        self.method = method
        issue = issue_for(method)
        text = detail or f"{method} answers UNIMPLEMENTED"
        super().__init__(f"{text} ({issue})" if issue else text)


async def require(method: str, call: Awaitable[T]) -> T:
    """Await an RPC; UNIMPLEMENTED becomes NotImplementedYet naming `method`."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise NotImplementedYet(method) from None
        raise
