"""Reading shards: lists, brace patterns, directories and fsspec URLs, as webdataset's sample dicts.

Tars are read as a stream, one member at a time (`shards.tarstream`), and a member larger than `MAX_MEMBER_BYTES`
is never read: its header may claim anything (a 10 KB sparse member expands to a gigabyte).
"""

import tarfile
from collections.abc import Iterator, Sequence

import fsspec
from braceexpand import braceexpand

from vlforge.shards.members import split_member
from vlforge.shards.tarstream import iter_members

MAX_MEMBER_BYTES = 256 * 1024 * 1024  # one image or JSON member; vlforge's own writers stay far below


class ShardReadError(ValueError):
    """A shard that cannot be read: cut off, not a tar, or a member over the size limit (refused unread)."""


def member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, max_bytes: int = MAX_MEMBER_BYTES) -> bytes | None:
    """A regular member's bytes; None for anything else and for a file over `max_bytes` (left unread)."""
    return tar.extractfile(info).read() if info.isfile() and info.size <= max_bytes else None


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


def iter_tar(url: str, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """Samples of one tar as webdataset groups them: consecutive members with the same key (`split_member`) form
    one dict of {extension (lower case): bytes, "__key__", "__url__"}; members without a key or an extension are
    skipped. ShardReadError names the tar (and member) that cannot be read."""
    sample: dict | None = None
    try:
        with fsspec.open(url, "rb") as stream:
            for member in iter_members(stream, max_member_bytes):
                if not member.isfile:
                    continue
                key, ext = split_member(member.name)
                if not ext or key.endswith("/") or not key:
                    continue
                if member.data is None:
                    raise ShardReadError(f"{url}: {member.why_unread(max_member_bytes)}")
                if sample is None or sample["__key__"] != key:
                    if sample is not None:
                        yield sample
                    sample = {"__key__": key, "__url__": url}
                ext = ext.lower()
                if ext in sample:
                    raise ShardReadError(f"{url}: member {member.name}: a second {ext!r} in sample {key}")
                sample[ext] = member.data
    except tarfile.TarError as exc:
        raise ShardReadError(f"{url}: unreadable or truncated tar ({exc})") from exc
    if sample is not None:
        yield sample


def iter_samples(spec: str | Sequence[str]) -> Iterator[dict]:
    for url in expand_shards(spec):
        yield from iter_tar(url)
