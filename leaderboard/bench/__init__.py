"""`leaderboard bench`: closed-loop load, latency statistics and reports.

The one place performance is measured (docs/benchmarks.md). Scenarios live in
`scenarios/`, each measuring one RPC or store operation and, where there is
one, its baseline (a bare grpc.aio echo or raw Redis) in the same run.
"""
