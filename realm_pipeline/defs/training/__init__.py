"""Training: the checkpoints asset (one segment per partition) and checkpoint retention."""
