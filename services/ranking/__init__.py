"""RankingService."""
