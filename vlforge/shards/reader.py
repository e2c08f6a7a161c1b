"""Reading shards: lists, brace patterns, directories and fsspec URLs, as webdataset dicts."""

from collections.abc import Iterator, Sequence

import fsspec
from braceexpand import braceexpand


def _expand_one(spec: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(spec)
    if fs.isdir(path):
        names = fs.ls(path, detail=False)
        found = sorted(p for p in names if p.endswith(".tar") and not p.rsplit("/", 1)[-1].startswith("."))
        return [fs.unstrip_protocol(p) if "://" in spec else p for p in found]
    if not fs.exists(path):
        raise FileNotFoundError(f"no shard at {spec}")
    return [spec]


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Turn a shard spec into an ordered list of tar URLs.

    A spec is a path, a directory (its `*.tar`), a brace pattern
    (`out/shard-{000000..000009}.tar`) or any fsspec URL, or a list of those.
    """
    specs = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for item in specs:
        for expanded in braceexpand(item):
            urls.extend(_expand_one(expanded))
    return urls


def iter_tar(url: str) -> Iterator[dict]:
    """Samples of one tar, grouped by key exactly as webdataset groups them."""
    from webdataset.tariterators import group_by_keys, tar_file_expander  # lazy: pulls in torch

    with fsspec.open(url, "rb") as f:
        yield from group_by_keys(tar_file_expander([{"url": url, "stream": f}]))


def iter_samples(spec: str | Sequence[str]) -> Iterator[dict]:
    for url in expand_shards(spec):
        yield from iter_tar(url)
