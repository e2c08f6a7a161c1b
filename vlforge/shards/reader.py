"""Reading shards: lists, brace patterns, directories and fsspec URLs, as webdataset dicts.

Tars are read as a stream, one member at a time, and a member larger than `MAX_MEMBER_BYTES` is never read:
its header may claim anything (a 10 KB sparse member expands to a gigabyte).
"""

import tarfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import fsspec
from braceexpand import braceexpand

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # one image or JSON member; vlforge's own writers stay far below


class ShardReadError(ValueError):
    """A shard that cannot be read: cut off, not a tar, or a member over the size limit (refused unread)."""


def member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, max_bytes: int = MAX_MEMBER_BYTES) -> bytes | None:
    """A regular member's bytes; None for anything else and for a file over `max_bytes` (left unread)."""
    tar.members = []  # a tar read as a stream has no use for the headers already read
    return tar.extractfile(info).read() if info.isfile() and info.size <= max_bytes else None


def iter_members(stream: BinaryIO, max_bytes: int = MAX_MEMBER_BYTES) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """(header, member_bytes) of each member of a plain tar, read as a stream in order; tarfile errors (a cut-off
    tar) propagate."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            yield info, member_bytes(tar, info, max_bytes)


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


def _tar_files(url: str, stream: BinaryIO, max_bytes: int) -> Iterator[dict]:
    """webdataset's per-file dicts of one tar; ShardReadError names the tar (and member) that cannot be read."""
    try:
        for info, data in iter_members(stream, max_bytes):
            if not info.isfile():
                continue
            if data is None:
                raise ShardReadError(f"{url}: member {info.name} is {info.size} bytes, over the {max_bytes}-byte "
                                     f"limit for one member; not read")
            yield {"fname": info.name, "data": data, "__url__": url}
    except tarfile.TarError as exc:
        raise ShardReadError(f"{url}: unreadable or truncated tar ({exc})") from exc


def iter_tar(url: str, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """Samples of one tar, grouped by key exactly as webdataset groups them."""
    from webdataset.tariterators import group_by_keys  # lazy: pulls in torch

    with fsspec.open(url, "rb") as f:
        yield from group_by_keys(_tar_files(url, f, max_member_bytes))


def iter_samples(spec: str | Sequence[str]) -> Iterator[dict]:
    for url in expand_shards(spec):
        yield from iter_tar(url)
