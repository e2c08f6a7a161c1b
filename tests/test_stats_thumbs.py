"""Dropped-image thumbnails: capped per reason, the same sample in any row order, small JPEGs, atomic files."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from PIL import Image

from vlforge.shards.thumbs import THUMB_DIR, THUMB_SIDE, DroppedThumbs, thumb_path


def jpeg(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def dropped_table(rows: list[tuple[str, str, bytes | None]]) -> pa.Table:
    return pa.table({"uid": [r[0] for r in rows], "reason": [r[1] for r in rows],
                     "stage": ["after" for _ in rows], "caption": [f"caption of {r[0]}" for r in rows],
                     "image": pa.array([r[2] for r in rows], pa.binary())})


def sampled(*tables: pa.Table, cap: int = 4) -> DroppedThumbs:
    thumbs = DroppedThumbs(cap)
    for table in tables:
        thumbs.offer(table)
    return thumbs


def test_cap_per_reason_lowest_hashes_any_order_or_chunking():
    rows = [(f"u{i}", "aspect_ratio>3" if i % 3 else "min_side<64", jpeg(20, 10, i)) for i in range(40)]
    rows.append(("no-image", "min_side<64", None))
    rows.append(("000-undecodable", "min_side<64", b"\xff\xd8 broken"))
    forward = sampled(dropped_table(rows)).rows()
    backward = sampled(dropped_table(rows[::-1][:10]), pa.table({"uid": ["x"]}), dropped_table(rows[::-1][10:])).rows()
    assert [(r["uid"], r["reason"]) for r in forward] == [(r["uid"], r["reason"]) for r in backward]
    for reason in ("aspect_ratio>3", "min_side<64"):
        uids = [r[0] for r in rows if r[1] == reason and r[2] is not None and r[0] != "000-undecodable"]
        expected = sorted(uids, key=lambda u: (xxhash.xxh64_intdigest(u.encode()), u))[:4]
        assert [r["uid"] for r in forward if r["reason"] == reason] == expected
        assert all(r["caption"] == f"caption of {r['uid']}" and r["stage"] == "after" for r in forward)


def test_a_chunk_decodes_about_cap_images_per_reason_not_every_row_that_beats_the_sample(monkeypatch):
    """Decoding costs a unit CPU: in random order, bottom-4 of 300 rows admits ~4 ln(300/4) + 4 ~ 21 rows."""
    import vlforge.shards.thumbs as thumbs_module

    decoded: list[bytes] = []
    real = thumbs_module.thumbnail
    monkeypatch.setattr(thumbs_module, "thumbnail", lambda data: decoded.append(data) or real(data))
    image = jpeg(20, 10, 0)
    thumbs = sampled(dropped_table([(f"u{i}", "aspect_ratio>3", image) for i in range(300)]))
    assert len(decoded) == 4 and len(thumbs.rows()) == 4


def test_thumbnails_are_small_jpegs_in_one_committed_file(tmp_path):
    rows = [("a", "image_size_real", jpeg(800, 200, 1)), ("b", "image_corrupt", b"\xff\xd8 not really a jpeg"),
            ("c", "image_size_real", jpeg(30, 40, 2))]
    path = sampled(dropped_table(rows)).write(tmp_path, "unit-0001")
    assert path == thumb_path(tmp_path, "unit-0001") and path.parent.name == THUMB_DIR
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    table = pq.read_table(path)
    assert sorted(table["uid"].to_pylist()) == ["a", "c"]  # "b" does not decode
    sizes = {}
    for uid, data in zip(table["uid"].to_pylist(), table["jpeg"].to_pylist(), strict=True):
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG"
            sizes[uid] = im.size
    assert sizes["a"] == (THUMB_SIDE, THUMB_SIDE // 4)  # long side scaled down, aspect kept
    assert sizes["c"] == (30, 40)  # never scaled up


def test_nothing_written_without_decodable_dropped_images(tmp_path):
    assert sampled(dropped_table([("a", "image_corrupt", b"garbage")])).write(tmp_path, "u") is None
    assert sampled().write(tmp_path, "u") is None
    assert not (tmp_path / THUMB_DIR).exists()
