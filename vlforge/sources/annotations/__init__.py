"""Public annotation formats -> Items: one module per dataset family, registered here by adapter name."""

from types import ModuleType

from vlforge.sources.annotations import (
    ai2d,
    coco_captions,
    gqa,
    grit,
    jsonl,
    refcoco,
    shards,
    simple_vqa,
    text,
    visual_genome,
    vqav2,
)
from vlforge.sources.annotations.base import ImageRef, Item, ShardMember, SourceError

ADAPTERS: dict[str, ModuleType] = {
    "coco_captions": coco_captions, "vqav2": vqav2, "gqa": gqa, "simple_vqa": simple_vqa, "ai2d": ai2d,
    "jsonl": jsonl, "refcoco": refcoco, "visual_genome": visual_genome, "grit": grit, "shards": shards, "text": text,
}
AdapterOptionsUnion = (
    coco_captions.Options | vqav2.Options | gqa.Options | simple_vqa.Options | ai2d.Options | jsonl.Options
    | refcoco.Options | visual_genome.Options | grit.Options | shards.Options | text.Options
)

__all__ = ["ADAPTERS", "AdapterOptionsUnion", "ImageRef", "Item", "ShardMember", "SourceError"]
