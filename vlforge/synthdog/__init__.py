"""SynthDoG-style OCR data: text lines rendered on paper over photographs, with a quad per line.

config     every parameter (SynthDoG's defaults), validated      plan      all random choices of a sample
fonts      glyph coverage per face, sized-font cache              render    pixels from a plan
corpus     cleaned text read as unbreakable units                 effects   document and image effects
textfit    whole units into a line box                            geometry  homographies, SynthDoG perspective
layout     SynthDoG's grid stack                                  images    backgrounds, textures, noise bank
resources  checked by the driver, loaded once per worker          sample    one sample: JPEG + OCR JSON
donut      Donut's metadata.jsonl layout from shards
The Ray pipeline and the CLI entry points live in vlforge.pipelines.synthdog.
"""
