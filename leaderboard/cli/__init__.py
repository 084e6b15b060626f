"""The `leaderboard` command line."""
