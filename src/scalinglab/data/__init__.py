"""Data: text sources, tokenizers, memory-mapped token shards and the batch loader.

`scalinglab prep` (data.prep) writes DATA folders; data.loader reads them (numpy only).
"""
