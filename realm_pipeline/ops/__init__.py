"""Ops that are not assets: checkpoint retention."""
