"""Shared by the mix tests: the public-layout fixture writers of scripts/mix_layouts.py, and small helpers."""

import json
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import mix_layouts  # noqa: E402 - after the path it lives on

__all__ = ["mix_layouts", "read_tar_samples", "write_recipe"]


def write_recipe(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def read_tar_samples(out: Path) -> dict[str, dict]:
    """{key: {ext: bytes}} of every tar in out, in name order."""
    samples: dict[str, dict] = {}
    for tar_path in sorted(out.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def sample_json(files: dict) -> dict:
    return json.loads(files["json"])
