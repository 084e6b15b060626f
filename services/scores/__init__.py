"""ScoreService."""
