"""Staged training (Shen et al. 2022): function-preserving width/depth growth of GPT runs (operators, run) and the
compute-optimal growth schedule from a loss law (schedule: numpy only, no torch)."""
