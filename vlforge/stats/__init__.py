"""`vlforge stats`, `sql` and `report`: DuckDB over the parquet manifests of any vlforge output, read in place.

Uses `shards` (manifest and thumbnail layout) only; nothing of ours imports it but the CLI and the demo.
"""
