"""img2dataset shards: the parquet of a shard read as a dump, its images taken from the tar beside it.

A shard's parquet without its tar is only a list of URLs (schema img2dataset, format parquet): the
images are downloaded again. With the tar, a row's image is its `KEY.<ext>` member, or the error
img2dataset recorded for it.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import fsspec
import pyarrow as pa

from vlforge.shards.members import is_image, split_member
from vlforge.shards.reader import MAX_MEMBER_BYTES
from vlforge.shards.tarstream import Member, iter_members
from vlforge.sources.download import Fetched, reason_from_error
from vlforge.sources.dumps.parquet import ParquetReader
from vlforge.sources.dumps.schemas import InputFile
from vlforge.sources.spill import Spill


class Img2datasetReader(ParquetReader):
    format = "img2dataset"
    caption_optional = True  # img2dataset runs without captions are common: an empty caption, not a bad row

    def claims(self, path: str, schema: str) -> bool:
        return schema == "img2dataset" and super().claims(path, schema) and self.companion(path) is not None

    def companion(self, path: str) -> str | None:
        """The tar beside the parquet; without one, its rows are URLs to download again."""
        tar = path[: -len(".parquet")] + ".tar"
        fs, local = fsspec.core.url_to_fs(tar)
        return tar if fs.exists(local) else None

    def fetch(self, f: InputFile, table: pa.Table, spill: Spill) -> list[Fetched]:
        """What img2dataset fetched for these rows: the image from its tar (spilled), or its recorded error."""
        keys = table["key"].to_pylist()
        statuses = table["status"].to_pylist()
        errors = table["error_message"].to_pylist() if "error_message" in table.column_names else [None] * len(keys)
        fetched = [Fetched() if s == "success" else Fetched(reason=reason_from_error(e), error=e)
                   for s, e in zip(statuses, errors, strict=True)]
        position = {k: i for i, (k, s) in enumerate(zip(keys, statuses, strict=True)) if s == "success"}
        try:
            for key, member in iter_shard_images(f.companion, list(position)):
                row = fetched[position[key]]
                if member.data is None:
                    row.reason = "too_large" if member.size > MAX_MEMBER_BYTES else "image_corrupt"
                    row.error = member.why_unread(MAX_MEMBER_BYTES)
                else:
                    row.keep(spill, member.data)
        except tarfile.ReadError as exc:  # a tar cut off (img2dataset killed) or damaged: the images before it count
            for i in position.values():
                if not fetched[i].stored and fetched[i].reason is None:
                    fetched[i].reason, fetched[i].error = "image_missing", f"{f.companion}: {exc}"
        return fetched


def iter_shard_images(tar_path: str, keys: list[str], max_bytes: int = MAX_MEMBER_BYTES
                      ) -> Iterator[tuple[str, Member]]:
    """(key, member) of the given keys from an img2dataset tar (members `KEY.jpg`, `KEY.png`, ...), streamed
    one member at a time, stopping once every key was found; a member over `max_bytes` (or a GNU sparse one)
    comes with `data` None, never read (`Member.why_unread`). tarfile.ReadError for a tar cut off or corrupt
    before then."""
    wanted = set(keys)
    if not wanted:
        return
    with fsspec.open(tar_path, "rb") as handle:
        for member in iter_members(handle, max_bytes, require_end=True):  # img2dataset ends every tar it finished
            key, ext = split_member(member.name)
            if key in wanted and member.isfile and is_image(ext):
                yield key, member
                wanted.discard(key)
                if not wanted:
                    return


def read_shard_images(tar_path: str, keys: list[str], max_bytes: int = MAX_MEMBER_BYTES) -> dict[str, bytes | None]:
    """iter_shard_images as a mapping, every image held: not for the pipeline (its `fetch` streams), kept for
    bench/clean.py's one-process loop baseline and for tests."""
    return {key: member.data for key, member in iter_shard_images(tar_path, keys, max_bytes)}
