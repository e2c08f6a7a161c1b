"""Reading samples out of WebDataset tars at plan time: text members whole, images by member name only."""

import tarfile

from vlforge.formats.jsontext import JsonTextError, parse_json
from vlforge.shards.listing import shard_urls
from vlforge.shards.members import is_image, split_member
from vlforge.sources.annotations.base import ShardMember, SourceError

MAX_TEXT_MEMBER = 16 * 1024 * 1024


def tar_paths(paths: list[str], where: str) -> list[str]:
    """Every tar of the given directories, files, globs or brace patterns, in order (local files only); each
    must name one at least (`shards.listing.shard_urls`)."""
    try:
        return shard_urls([str(p) for p in paths])
    except FileNotFoundError as exc:
        raise SourceError(f"{where}: {exc}") from None


def _json(raw: str) -> object:
    """A sample's JSON; None when it does not parse (the sample then lacks what it should hold, and is
    dropped with that field named when it is rendered: one bad member never stops the plan)."""
    try:
        return parse_json(raw)
    except JsonTextError:
        return None


def read_samples(tar: str) -> list[tuple[str, dict, list[ShardMember]]]:
    """(key, {"txt": str, "json": obj}, [image members]) for every sample of one tar, in tar order."""
    samples: dict[str, tuple[dict, list[ShardMember]]] = {}
    try:
        with tarfile.open(tar, mode="r:") as f:
            for info in f:
                if not info.isfile():
                    continue
                sample_key, ext = split_member(info.name)
                texts, images = samples.setdefault(sample_key, ({}, []))
                last = ext.rsplit(".", 1)[-1].lower()
                if is_image(ext):
                    images.append(ShardMember(tar, info.name))
                elif last in ("txt", "json") and info.size <= MAX_TEXT_MEMBER:
                    raw = f.extractfile(info).read().decode("utf-8", errors="replace")
                    texts[last] = _json(raw) if last == "json" else raw
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"{tar}: unreadable shard ({exc})") from None
    return [(k, texts, images) for k, (texts, images) in samples.items()]
