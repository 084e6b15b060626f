"""Generated gRPC stubs of protos/leaderboard/v1 (do not edit; see scripts/gen_protos.py)."""
