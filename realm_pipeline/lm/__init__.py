"""What the trainer, the schools and the eval backends share, below all of them: chat rendering with one
set of template options, weight hashing, token budgets and batched greedy generation (no Dagster; torch
is imported inside functions)."""
