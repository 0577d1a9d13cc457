"""The training loop: trainable parameters only, mixed precision, evaluation, atomic checkpoints, resume."""
