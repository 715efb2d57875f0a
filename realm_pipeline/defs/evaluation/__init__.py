"""Evaluation: eval sets, eval scores, the leaderboard and its regression sensor."""
