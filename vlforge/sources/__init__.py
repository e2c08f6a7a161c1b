"""Everything that reads the outside world into vlforge's canonical records (no Ray here).

`annotations/` holds one adapter per public dataset family (COCO captions, VQAv2, GQA, simple VQA JSON,
RefCOCO, Visual Genome, GRIT, shards, text): each reads the release's own files and image folders as
they are laid out and yields `Item`s, the records `vlforge.formats.tasks.render` takes plus their images.
May import `vlforge.formats` and `vlforge.shards` only.
"""
