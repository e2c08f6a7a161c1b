"""Training a Qwen-VL-style model on vlforge shards (ARCHITECTURE.md, stage 5).

Empty on purpose: the layout is fixed now so that the one-way imports stay checkable; the trainer
arrives with its own issue, and no `vlforge train` command exists until it works.
"""
