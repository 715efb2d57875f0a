"""Evaluation: eval sets, batched generation, fingerprints, progression rules (pure)."""
