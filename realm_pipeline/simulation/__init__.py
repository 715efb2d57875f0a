"""A simulated hero with a known capacity, and its ground truth (pure: no torch, no Dagster)."""
