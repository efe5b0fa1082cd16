"""Data: text sources, tokenizers, memory-mapped token shards and the batch loader."""
