"""Staged training (seeds/004): function-preserving width/depth growth of GPT runs (operators, run) and the
compute-optimal growth schedule from a loss law (schedule: numpy only, no torch)."""
