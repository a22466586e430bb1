"""Training loop, optimisation, checkpointing and logging."""
