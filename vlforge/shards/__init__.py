"""WebDataset shards: atomic writing, manifests, reading, verification."""
