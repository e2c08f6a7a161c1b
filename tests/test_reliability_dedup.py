"""Issue 8, item 4: image dedup hashes the bytes vlforge keeps, never the `sha256` a dump claims; a claim that does
not match the fetched bytes is kept in the manifest as `sha256_dump`. Also: the after-download steps and the tar
writer see the unit's images a bounded chunk at a time, and every row still lands in input row order."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from test_clean_support import jpeg, manifest_rows, photo, png, sha256, tar_samples, write_recipe

from vlforge.filters.base import Filter, FilterResult
from vlforge.filters.image import ImageFilter
from vlforge.pipelines.clean.keys import hash_values
from vlforge.pipelines.clean.plan import CleanJob
from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.pipelines.clean.unit import write_unit
from vlforge.sources.spill import Spill

CAPTION = "A clear photograph of {} taken outdoors on a sunny day"
TEXT_ONLY = [{"op": "caption"}, {"op": "language", "keep": ["en"]}]


def write_img2dataset_shard(folder: Path, rows: list[tuple[bytes, str, str | None]]) -> Path:
    """An img2dataset output shard (00000.parquet + 00000.tar); rows are (image bytes, extension, claimed sha256)."""
    folder.mkdir(parents=True)
    keys = [f"{i:09d}" for i in range(len(rows))]
    sizes = [Image.open(io.BytesIO(data)).size for data, _, _ in rows]
    pq.write_table(pa.table({
        "key": keys, "url": [f"http://images.invalid/{k}" for k in keys],
        "caption": [CAPTION.format(f"picture number {i}") for i in range(len(rows))],
        "status": ["success"] * len(rows), "error_message": pa.nulls(len(rows), pa.string()),
        "original_width": [w for w, _ in sizes], "original_height": [h for _, h in sizes],
        "sha256": [claim for _, _, claim in rows]}), folder / "00000.parquet")
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for key, (data, ext, _) in zip(keys, rows, strict=True):
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder


def test_dedup_uses_the_stored_bytes_not_the_dumps_claim(ray_local, tmp_path: Path) -> None:
    astronaut, coffee, rocket = (jpeg(photo(name, 96, 96)) for name in ("astronaut", "coffee", "rocket"))
    rgba = np.zeros((80, 80, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    translucent = png(Image.fromarray(rgba, "RGBA"))  # the image step re-encodes it as JPEG
    shard = write_img2dataset_shard(tmp_path / "shard", [
        (astronaut, "jpg", sha256(astronaut)),   # 0 honest
        (coffee, "jpg", sha256(astronaut)),      # 1 claims row 0's hash: a different image, must be kept
        (astronaut, "jpg", "ff" * 32),           # 2 row 0's bytes under a made-up hash: a duplicate
        (rocket, "jpg", None),                   # 3 no claim
        (translucent, "png", sha256(translucent)),  # 4 honest, stored re-encoded
    ])
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", rows_per_unit=2, before_download=TEXT_ONLY,
                                      after_download=[{"op": "image"}]))
    clean(recipe, tmp_path / "out", [("web", str(shard))])
    rows = {r["row"]: r for r in manifest_rows(tmp_path / "out")}
    assert sorted(rows) == [0, 1, 2, 3, 4]
    assert {row: r["status"] for row, r in rows.items()} == {0: "kept", 1: "kept", 2: "dropped", 3: "kept", 4: "kept"}
    assert (rows[2]["reason"], rows[2]["stage"]) == ("duplicate_sha256", "dedup_sha256")
    samples = tar_samples(tmp_path / "out")
    for row in (0, 1, 3, 4):
        stored = samples[rows[row]["key"]]["jpg"]
        assert rows[row]["sha256"] == sha256(stored)
    assert samples[rows[0]["key"]]["jpg"] == astronaut and samples[rows[1]["key"]]["jpg"] == coffee
    assert rows[4]["sha256"] != sha256(translucent)  # the hash of what the tar holds, not of what was fetched
    assert {row: r["sha256_dump"] for row, r in rows.items() if r["status"] == "kept"} == {
        0: None, 1: sha256(astronaut), 3: None, 4: None}


class ChunkProbe(Filter):
    """Keeps every row; records how many image bytes each call saw at once."""

    name = "probe"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def apply(self, batch: pa.Table) -> FilterResult:
        self.seen.append(sum(len(b) for b in batch["image"].to_pylist()))
        return FilterResult.from_reasons(batch, [None] * batch.num_rows)


def test_after_download_steps_see_bounded_chunks_and_rows_stay_in_order(tmp_path: Path) -> None:
    images = [jpeg(photo("astronaut", 64 + 8 * i, 64)) for i in range(12)]
    spill = Spill(tmp_path)
    where = [spill.put(data) for data in images]
    fetched_rows = [2 * i + 1 for i in range(12)]  # odd rows reached download; even rows were dropped earlier
    fetched = pa.table({"uid": [f"u{r}" for r in fetched_rows], "source": ["web"] * 12, "row": fetched_rows,
                        "file_index": [0] * 12, "caption": ["a caption"] * 12, "url": ["http://x.invalid/"] * 12,
                        "spill_offset": [o for o, _ in where], "spill_size": [n for _, n in where]})
    early = pa.table({"uid": [f"u{r}" for r in range(0, 26, 2)], "source": ["web"] * 13, "row": list(range(0, 26, 2)),
                      "reason": ["caption_short"] * 13, "stage": ["caption"] * 13})
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml"))
    job = CleanJob(recipe=recipe, out_dir=str(tmp_path / "out"))
    probe = ChunkProbe()
    limit = 3 * max(len(d) for d in images)
    with spill:
        stats = write_unit(job, "clean-0000-0000000000", fetched, spill, [early], [ImageFilter(), probe],
                           chunk_bytes=limit)
    assert stats.read == 25 and stats.kept == 12
    assert sum(probe.seen) == sum(len(d) for d in images) and len(probe.seen) >= 4
    assert max(probe.seen) <= limit
    rows = manifest_rows(tmp_path / "out")
    assert [r["row"] for r in rows] == list(range(25))
    assert [r["status"] for r in rows] == ["dropped" if r % 2 == 0 else "kept" for r in range(25)]


def test_values_hash_by_their_text_and_missing_values_have_no_hash():
    assert hash_values([7, "7", None, ""])[0] == hash_values(["7"])[0]
    assert hash_values([None, "", b""]) == [None, None, None]
    assert hash_values(["ü"]) == hash_values(["ü".encode()])  # str hashes as its UTF-8 bytes
    assert len(set(hash_values(["u1", "u2", "u3"]))) == 3
