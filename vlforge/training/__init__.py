"""Training a Qwen-VL-style model on vlforge shards: vision tower and adapter (`vision`, `adapter`, `model`),
the shard loader with packing (`data`), tokenizer and chat masks (`tokenizer`, `tokens`), the loop with
checkpoints (`loop`, `checkpoint`), and `vlforge train` / `generate` / `tokenize`.

Reads shards through `vlforge.shards` and `vlforge.formats` only; see ARCHITECTURE.md in the project root.
"""
