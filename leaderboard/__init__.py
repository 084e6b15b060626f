"""Leaderboard: real-time leaderboard backend for games (shared runtime, client, CLI)."""

__version__ = "0.1.0"
