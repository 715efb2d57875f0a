"""Dagster resources: thin wrappers that hand the pure modules their state."""
