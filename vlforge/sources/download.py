"""Download the images of one work unit with img2dataset, behind the SSRF guard, and map results to rows.

img2dataset's `Downloader` runs in this process (one shard = the unit's surviving rows, a thread pool
of `thread_count`), so the guarded urllib opener installed here covers every request it makes,
redirects included. Each row ends as a `Fetched`: the image appended to the unit's `Spill` file (a unit's
bytes live on disk, never all in memory), or a short, stable reason (`http_404`, `timeout`, `too_slow`,
`blocked_loopback`, `too_large`, `decode_error`, ...) plus the raw error message.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import partial
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from vlforge.shards.imageio import MAX_PIXELS, ImageRejected, open_image
from vlforge.sources.netguard import REFUSED_MARK, AddressPolicy, check_url, guarded_urlopen
from vlforge.sources.spill import Spill

# img2dataset imports albumentations, which otherwise asks pypi.org for its latest version on import.
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"

ROW_COLUMN = "vlforge_row"
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})")
_REFUSED = re.compile(re.escape(REFUSED_MARK) + r":(\w+)")


class DownloadOptions(BaseModel):
    """img2dataset's download and resize options (names as in img2dataset.download) and the address guard's:
    the recipe's `download:` section as it is, validated once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thread_count: int = Field(default=16, ge=1)
    timeout: float = Field(default=10.0, gt=0)
    retries: int = Field(default=0, ge=0)
    user_agent_token: str | None = "vlforge"
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    image_size: int = Field(default=512, ge=1)
    resize_mode: Literal["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"] = "no"
    resize_only_if_bigger: bool = True
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    encode_quality: int = Field(default=95, ge=0, le=100)
    skip_reencode: bool = True
    disable_all_reencoding: bool = True
    max_image_pixels: int = Field(default=MAX_PIXELS, ge=1)  # checked from the header before img2dataset decodes
    allow_loopback: bool = False
    max_redirects: int = Field(default=3, ge=0)
    max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    max_seconds: float | None = Field(default=60.0, gt=0)  # wall clock of one download, redirects and body included
    max_unit_seconds: float | None = Field(default=3600.0, gt=0)  # wall clock of all downloads of one work unit

    @property
    def policy(self) -> AddressPolicy:
        """The address guard's part."""
        return AddressPolicy(allow_loopback=self.allow_loopback, max_redirects=self.max_redirects,
                             max_bytes=self.max_bytes, max_seconds=self.max_seconds,
                             max_unit_seconds=self.max_unit_seconds)


@dataclass
class Fetched:
    """The outcome for one row: where its image bytes are spilled, and sizes; or why there is none."""

    spill: Spill | None = None
    offset: int = 0
    size: int | None = None  # of the spilled bytes; None: no image
    reason: str | None = None
    error: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None

    @property
    def stored(self) -> bool:
        return self.spill is not None and self.size is not None

    def keep(self, spill: Spill, data: bytes) -> None:
        """Spill this row's image bytes."""
        self.spill = spill
        self.offset, self.size = spill.put(data)

    def read(self) -> bytes | None:
        return self.spill.read(self.offset, self.size) if self.stored else None


class SpillWriter:
    """img2dataset's sample-writer interface: each image straight to the unit's spill, metadata to `records`.

    img2dataset's own writers buffer a hundred images per parquet row group; this one holds none.
    """

    def __init__(self, shard_id: int, output_folder: str, save_caption: bool, oom_shard_count: int,
                 schema: pa.Schema, encode_format: str, *, results: list[Fetched], spill: Spill,
                 records: list[dict]) -> None:
        self.results, self.spill, self.records = results, spill, records

    def write(self, img_str: bytes | None, key: str, caption: str | None, meta: dict) -> None:
        if img_str is not None:
            self.results[meta[ROW_COLUMN]].keep(self.spill, img_str)
        self.records.append(meta)

    def close(self) -> None:
        pass


def reason_from_error(message: str | None) -> str:
    """A short, stable manifest reason for an img2dataset/urllib error message."""
    text = message or ""
    if refused := _REFUSED.search(text):
        return refused.group(1)
    if "infinite loop" in text:
        return "too_many_redirects"
    if status := _HTTP_STATUS.search(text):
        return f"http_{status.group(1)}"
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timeout"
    if "x-robots-tag" in lowered:
        return "robots_disallowed"
    if "decod" in lowered or "cannot identify image" in lowered or "pixels" in lowered:
        return "decode_error"
    if "connection refused" in lowered:
        return "connection_refused"
    return "download_error"


class PixelLimitResizer:
    """img2dataset's Resizer behind a header check: images over `max_pixels` are refused before cv2 decodes.

    cv2 would otherwise allocate the whole bitmap of a decompression bomb (a 50000x50000 PNG is 7.5 GB).
    """

    def __init__(self, resizer: object, max_pixels: int) -> None:
        self.resizer, self.max_pixels = resizer, max_pixels

    def __call__(self, img_stream: io.BytesIO, blurring_bbox_list: object = None) -> tuple:
        try:
            with open_image(img_stream, max_pixels=self.max_pixels):
                pass
        except ImageRejected as exc:
            return None, None, None, None, None, f"decode refused: {exc}"
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad bytes
            return None, None, None, None, None, f"cannot decode image header ({type(exc).__name__})"
        img_stream.seek(0)
        return self.resizer(img_stream, blurring_bbox_list)


def _downloader(options: DownloadOptions, spill: Spill, results: list[Fetched], count: int,
                records: list[dict]) -> object:
    from img2dataset.downloader import Downloader
    from img2dataset.resizer import Resizer

    resizer = Resizer(
        image_size=options.image_size, resize_mode=options.resize_mode,
        resize_only_if_bigger=options.resize_only_if_bigger, encode_quality=options.encode_quality,
        encode_format=options.encode_format, skip_reencode=options.skip_reencode,
        disable_all_reencoding=options.disable_all_reencoding)
    if not options.disable_all_reencoding:  # img2dataset will decode: guard it against bombs
        resizer = PixelLimitResizer(resizer, options.max_image_pixels)
    return Downloader(
        sample_writer_class=partial(SpillWriter, results=results, spill=spill, records=records),
        resizer=resizer,
        thread_count=options.thread_count, save_caption=False, extract_exif=False,
        output_folder=str(spill.folder), column_list=[ROW_COLUMN, "url"], timeout=options.timeout,
        number_sample_per_shard=max(count, 1), oom_shard_count=5, compute_hash="sha256",
        verify_hash_type=None, encode_format=options.encode_format, retries=options.retries,
        user_agent_token=options.user_agent_token,
        disallowed_header_directives=list(options.disallowed_header_directives) or None,
    )


def _int(value: object) -> int | None:
    return None if value is None else int(value)


def download(urls: list[str], options: DownloadOptions, spill: Spill) -> list[Fetched]:
    """One `Fetched` per URL, same order, images appended to `spill` (whose folder is one the caller owns:
    img2dataset's input list is written there too).

    Refused URLs never reach img2dataset or the network.
    """
    results = [Fetched() for _ in urls]
    todo = []
    for i, url in enumerate(urls):
        refused = check_url(url, options.policy)
        if refused is None:
            todo.append(i)
        else:
            results[i].reason, results[i].error = refused, f"{REFUSED_MARK}: {url!r} refused before connecting"
    if not todo:
        return results
    shard = spill.folder / "input.feather"
    table = pa.table({ROW_COLUMN: pa.array(todo, pa.int64()), "url": pa.array([urls[i] for i in todo])})
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    records: list[dict] = []
    with guarded_urlopen(options.policy):
        ok, _ = _downloader(options, spill, results, len(todo), records)((0, str(shard)))
    if not ok:
        raise RuntimeError("img2dataset failed on this unit's downloads (see the worker log)")
    for rec in records:
        fetched = results[rec[ROW_COLUMN]]
        if rec["status"] == "success":
            fetched.sha256 = rec["sha256"]
            fetched.width, fetched.height = _int(rec["width"]), _int(rec["height"])
            fetched.original_width = _int(rec["original_width"])
            fetched.original_height = _int(rec["original_height"])
        else:
            fetched.reason, fetched.error = reason_from_error(rec["error_message"]), rec["error_message"]
    for i in todo:
        if not results[i].stored and results[i].reason is None:
            results[i].reason, results[i].error = "download_error", "img2dataset returned no record for this row"
    return results
