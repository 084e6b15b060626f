"""Scenario names and one-line descriptions, importable without grpc or redis.

`leaderboard --help` (and every `leaderboard serve`) builds the argument
parser; it must not pay for importing the benchmark's machinery.
"""

from __future__ import annotations

# In the order `leaderboard bench all` runs them: the baselines first.
SCENARIOS: dict[str, str] = {
    "echo": "bare grpc.aio unary echo in its own process: the ceiling of Python gRPC on this machine",
    "redis": "raw ZADD + ZREVRANK via redis.asyncio on a zset of --players members, 1 and 100 pairs per round trip: "
    "the store's ceiling",
    "submit": "unary SubmitScore by a game-server token for random players of --players, unique request ids",
    "batch-submit": "BatchSubmitScores of 1,000 submissions per call (game server); submissions/s end to end",
    "rank": "GetUserRank of random players on a board seeded with --players (ApplyScores batches)",
    "top": "ListTopEntries(page_size=10) on the board seeded with --players",
    "stream": "--subscribers streams of SubscribeRankUpdates(top 10) + a SubmitScore load: "
    "submit-ack -> delivery latency",
    "report": "GenerateTopPlayersReport (top 100 of the last hour) over a history of min(--players, 200k) submissions",
    "login": "Login of pre-registered players (argon2id-dominated; the parameters are printed)",
}

DEFAULT_MAX_REQUESTS = 2_000_000  # per measurement: load loops are never unbounded
