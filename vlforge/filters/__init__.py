"""Cleaning operators for raw image-text rows: one operator per module, each a `Filter` (base.py) that
registers its recipe `op` itself; `registry.operators()` finds them all.

Importing a filter module loads pyarrow, numpy and its own libraries; langdetect's profiles load on first use,
torch and open_clip only when a CLIP score is computed.
"""
