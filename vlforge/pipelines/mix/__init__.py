"""`vlforge mix`: a stage-2 multi-task mixture from annotated sources on disk.

recipe (the YAML), plan (counts and the order), spill (records spilled per source), images (reading and
preparing images), dedup (image hashes across sources), unit (one work unit), run (the driver and the CLI),
report (the realised mix).
"""
