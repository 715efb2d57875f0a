"""Quests: people's own training data, registered from the inbox."""
