"""Everything that reads the outside world into vlforge's canonical records (no Ray here).

`dumps/`: raw image-text dumps (parquet, CSV/TSV, JSONL, img2dataset shards), one `Reader` per file format
behind `dumps.readers.READERS`, read as canonical Arrow batches by row range.
`download`: a work unit's images fetched with img2dataset behind `netguard`, the SSRF guard at the socket;
`spill`: the unit's fetched bytes in one append-only file on disk.
`annotations/`: one adapter per public dataset family (COCO captions, VQAv2, GQA, RefCOCO, Visual Genome,
GRIT, ...) reading a release as laid out into `Item`s, the records `vlforge.formats.tasks.render` takes.
May import `vlforge.config`, `vlforge.formats` and `vlforge.shards` only (tests/test_architecture.py).
"""
