"""Raw image-text dumps (parquet, CSV/TSV, JSONL, img2dataset shards) read as canonical Arrow batches.

`readers` lists inputs and dispatches to one `Reader` per file format (`parquet`, `img2dataset`, `text` for
CSV/TSV and the shared line reading, `jsonl`);
`schemas` holds the canonical columns and the known dump schemas; `canonical` turns raw rows into them.
"""
