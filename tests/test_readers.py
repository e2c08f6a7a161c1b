"""Readers: schema detection, row ranges that tile each file exactly, bad rows yielded with a reason."""

import io
import json
import math
import re
import tarfile
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlforge.sources.dumps.img2dataset import read_shard_images
from vlforge.sources.dumps.readers import list_inputs, plan_ranges, read_range, reader_of
from vlforge.sources.dumps.schemas import SCHEMAS, ColumnOverrides, InputError, detect_schema
from vlforge.sources.spill import Spill

LAION = ["SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity"]
DATACOMP = ["uid", "url", "text", "original_width", "original_height", "clip_b32_similarity_score",
            "clip_l14_similarity_score", "face_bboxes", "sha256"]
COYO = ["id", "url", "text", "width", "height", "image_phash", "clip_similarity_vitb32", "clip_similarity_vitl14",
        "nsfw_score_opennsfw2", "watermark_score", "aesthetic_score_laion_v2"]
IMG2DATASET = ["key", "url", "caption", "status", "error_message", "width", "height", "original_width",
               "original_height", "exif", "sha256"]


@pytest.mark.parametrize("columns, schema", [
    (LAION, "laion"), ([*LAION, "punsafe", "pwatermark"], "laion"), (DATACOMP, "datacomp"), (COYO, "coyo"),
    (IMG2DATASET, "img2dataset"), (["url", "caption", "extra"], "generic"),
])
def test_detect_schema(columns: list[str], schema: str) -> None:
    assert detect_schema(columns) == schema


def _one(files):
    assert len(files) == 1
    return files[0]


def _read_all(f, rng=None) -> pa.Table:
    return pa.concat_tables(list(read_range(f, rng)))


def test_datacomp_and_coyo_map_onto_canonical_columns(tmp_path: Path) -> None:
    pq.write_table(pa.table({"uid": ["a1"], "url": ["http://x/1"], "text": ["a dog"], "original_width": [640],
                             "original_height": [480], "clip_b32_similarity_score": [0.31],
                             "clip_l14_similarity_score": [0.27], "sha256": ["ab" * 32]}), tmp_path / "dc.parquet")
    pq.write_table(pa.table({"id": [123456789012], "url": ["http://x/2"], "text": ["a cat"], "width": [300],
                             "height": [200], "clip_similarity_vitb32": [0.35], "watermark_score": [0.1]}),
                   tmp_path / "coyo.parquet")
    dc = _one(list_inputs([("datacomp", str(tmp_path / "dc.parquet"))], {}))
    coyo = _one(list_inputs([("coyo", str(tmp_path / "coyo.parquet"))], {}))
    assert (dc.schema, coyo.schema) == ("datacomp", "coyo")
    row = _read_all(dc).to_pylist()[0]
    assert row["uid"] == "a1" and row["caption"] == "a dog" and (row["width"], row["height"]) == (640, 480)
    assert row["clip_score"] == 0.31 and row["clip_l14_score"] == 0.27 and row["clip_model"] == "ViT-B-32"
    assert row["source"] == "datacomp" and row["read_error"] is None
    row = _read_all(coyo).to_pylist()[0]
    assert row["uid"] == "123456789012" and row["clip_score"] == 0.35 and row["watermark_score"] == 0.1


def test_missing_columns_fail_before_reading_with_the_column_name(tmp_path: Path) -> None:
    pq.write_table(pa.table({"URL": ["http://x"], "WIDTH": [1]}), tmp_path / "a.parquet")
    with pytest.raises(InputError, match=r"a\.parquet.*no known schema.*--url-col"):
        list_inputs([("s", str(tmp_path / "a.parquet"))], {})
    with pytest.raises(InputError, match=r"missing column 'TEXT' for field caption"):
        list_inputs([("s", str(tmp_path / "a.parquet"))], {"s": ColumnOverrides(schema="laion")})
    with pytest.raises(InputError, match=r"no column 'alt' \(given for field caption\)"):
        list_inputs([("s", str(tmp_path / "a.parquet"))], {"s": ColumnOverrides(columns={"caption": "alt"})})
    with pytest.raises(InputError, match="no such file"):
        list_inputs([("s", str(tmp_path / "nope.parquet"))], {})


def test_img2dataset_needs_no_caption_column_but_laion_does(tmp_path: Path) -> None:
    pq.write_table(pa.table({"key": ["000000000"], "url": ["http://x/0"], "status": ["success"],
                             "error_message": [None]}), tmp_path / "00000.parquet")
    f = _one(list_inputs([("s", str(tmp_path / "00000.parquet"))], {}))
    assert (f.schema, f.format, f.companion) == ("img2dataset", "parquet", None)  # no tar: URLs to download
    with pytest.raises(InputError, match=r"missing column 'TEXT' for field caption"):
        list_inputs([("s", str(tmp_path / "00000.parquet"))], {"s": ColumnOverrides(schema="laion",
                                                                                   columns={"url": "url"})})


def test_unknown_formats_are_refused_with_every_known_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("url,caption\n")
    expected = re.escape(".csv, .jsonl, .ndjson, .parquet, .tsv")
    with pytest.raises(InputError, match=rf"notes\.txt: unsupported input format \(expected {expected}\)"):
        list_inputs([("s", str(tmp_path / "notes.txt"))], {})
    with pytest.raises(InputError, match=rf"holds no input file \({expected}\)"):
        list_inputs([("s", str(tmp_path))], {})


def test_column_overrides_read_any_table(tmp_path: Path) -> None:
    pq.write_table(pa.table({"link": ["http://x/1"], "alt": ["a red bus"], "w": [10], "h": [20]}),
                   tmp_path / "t.parquet")
    columns = {"url": "link", "caption": "alt", "width": "w", "height": "h"}
    f = _one(list_inputs([("s", str(tmp_path / "t.parquet"))], {"s": ColumnOverrides(columns=columns)}))
    row = _read_all(f).to_pylist()[0]
    assert (row["url"], row["caption"], row["width"], row["height"]) == ("http://x/1", "a red bus", 10, 20)
    assert row["uid"] == "t.parquet:0"


def _check_ranges(f, rows_per_unit: int, expected_uids: list[str]) -> None:
    ranges = plan_ranges(f, rows_per_unit)
    assert [r.row_count for r in ranges[:-1]] == [rows_per_unit] * (len(ranges) - 1)
    assert [r.row_start for r in ranges] == list(range(0, len(expected_uids), rows_per_unit))
    seen = []
    for rng in ranges:
        table = _read_all(f, rng)
        assert table["row"].to_pylist() == list(range(rng.row_start, rng.row_start + rng.row_count))
        seen.extend(table["uid"].to_pylist())
    assert seen == expected_uids
    assert _read_all(f)["uid"].to_pylist() == expected_uids


def test_parquet_ranges_cross_row_groups(tmp_path: Path) -> None:
    n = 23
    pq.write_table(pa.table({"uid": [f"u{i}" for i in range(n)], "url": [f"http://x/{i}" for i in range(n)],
                             "caption": [f"caption {i}" for i in range(n)]}), tmp_path / "p.parquet",
                   row_group_size=5)
    f = _one(list_inputs([("s", str(tmp_path / "p.parquet"))], {}))
    for rows_per_unit in (1, 4, 5, 7, 23, 100):
        _check_ranges(f, rows_per_unit, [f"u{i}" for i in range(n)])


def test_csv_ranges_with_quoted_newlines(tmp_path: Path) -> None:
    lines = ["uid,url,caption"] + [f'u{i},http://x/{i},"line one\nline two, {i}"' for i in range(9)]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    f = _one(list_inputs([("s", str(tmp_path / "c.csv"))], {}))
    _check_ranges(f, 4, [f"u{i}" for i in range(9)])
    assert _read_all(f)["caption"][3].as_py() == "line one\nline two, 3"


def test_headerless_tsv_with_names(tmp_path: Path) -> None:
    (tmp_path / "cc3m.tsv").write_text("".join(f"a caption {i}\thttp://x/{i}\n" for i in range(5)))
    over = {"s": ColumnOverrides(names=("caption", "url"), header=False)}
    f = _one(list_inputs([("s", str(tmp_path / "cc3m.tsv"))], over))
    _check_ranges(f, 2, [f"cc3m.tsv:{i}" for i in range(5)])
    assert _read_all(f)["url"].to_pylist()[4] == "http://x/4"
    with pytest.raises(InputError, match="needs `names:`"):
        list_inputs([("s", str(tmp_path / "cc3m.tsv"))], {"s": ColumnOverrides(header=False)})


def test_jsonl_bad_lines_are_rows_with_a_reason(tmp_path: Path) -> None:
    good = {"uid": 7, "url": "http://x/7", "caption": "a boat", "width": "abc", "height": -5}
    raw = b"\n".join([
        json.dumps(good).encode(),
        b"",  # blank lines are not rows
        b'{"uid": "u1", "url": "http://x/1", "caption": "caf\xff"}',  # invalid UTF-8
        b'{"uid": "u2", "url": "http://x/2", "caption": ',  # truncated JSON
        b'["not", "an", "object"]',
        json.dumps({"uid": "u3", "caption": "no url here"}).encode(),
        json.dumps({"uid": "u4", "url": "http://x/4", "caption": "   "}).encode(),
        json.dumps({"uid": "u5", "url": "http://x/5", "caption": "x" * 1_000_000}).encode(),
    ]) + b"\n"
    (tmp_path / "j.jsonl").write_bytes(raw)
    f = _one(list_inputs([("s", str(tmp_path / "j.jsonl"))], {}))
    table = _read_all(f)
    assert table["row"].to_pylist() == list(range(7))
    assert table["read_error"].to_pylist() == [None, "invalid_utf8", "bad_row", "bad_row", "missing_url",
                                               "missing_caption", None]
    first = table.to_pylist()[0]
    assert first["uid"] == "7" and math.isnan(first["width"]) and first["height"] == -5
    assert len(table["caption"][6].as_py()) == 1_000_000
    _check_ranges(f, 3, ["7", "u1", "j.jsonl:2", "j.jsonl:3", "u3", "u4", "u5"])


def test_csv_bad_rows(tmp_path: Path) -> None:
    raw = b"url,caption\nhttp://x/0,fine caption\nhttp://x/1,caf\xe9 latin-1\nhttp://x/2,too,many,fields\n"
    (tmp_path / "b.csv").write_bytes(raw)
    f = _one(list_inputs([("s", str(tmp_path / "b.csv"))], {}))
    assert _read_all(f)["read_error"].to_pylist() == [None, "invalid_utf8", "bad_row"]


def test_parquet_with_invalid_utf8(tmp_path: Path) -> None:
    raw = pa.array([b"fine text", b"bad \xff text"], pa.binary())
    captions = pa.Array.from_buffers(pa.string(), 2, raw.buffers())  # parquet does not validate UTF-8
    pq.write_table(pa.table({"url": ["http://x/0", "http://x/1"], "caption": captions}), tmp_path / "u.parquet")
    f = _one(list_inputs([("s", str(tmp_path / "u.parquet"))], {}))
    table = _read_all(f)
    assert table["read_error"].to_pylist() == [None, "invalid_utf8"]
    assert table["caption"].to_pylist() == ["fine text", None]


def test_directories_globs_and_fsspec_urls(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.parquet", "_stats.parquet", "notes.txt"):
        pq.write_table(pa.table({"url": [f"http://x/{name}"], "caption": [name]}), tmp_path / name)
    files = list_inputs([("s", str(tmp_path))], {})
    assert [Path(f.path).name for f in files] == ["a.parquet", "b.parquet"]
    assert [f.file_index for f in files] == [0, 1]
    assert len(list_inputs([("s", str(tmp_path / "*.parquet"))], {})) == 3
    with fsspec.open("memory://bucket/m.parquet", "wb") as out:
        pq.write_table(pa.table({"url": ["http://x/m"], "caption": ["in memory"]}), out)
    f = _one(list_inputs([("s", "memory://bucket/m.parquet")], {}))
    assert f.path == "memory://bucket/m.parquet"
    schema = SCHEMAS[f.schema]
    assert not schema.positional_ids and not schema.private_columns and f.companion is None
    assert _read_all(f)["caption"].to_pylist() == ["in memory"]


def test_img2dataset_shard_is_read_with_its_tar(tmp_path: Path) -> None:
    pq.write_table(pa.table({"key": ["000000000", "000000001"], "url": ["http://x/0", "http://x/1"],
                             "caption": ["a", "b"], "status": ["success", "failed_to_download"],
                             "error_message": [None, "HTTP Error 404: Not Found"], "original_width": [10, None],
                             "original_height": [20, None], "sha256": ["00" * 32, None]}), tmp_path / "00000.parquet")
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for name, payload in (("000000000.jpg", b"jpeg bytes"), ("000000000.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    f = _one(list_inputs([("s", str(tmp_path))], {}))
    assert f.format == "img2dataset" and f.companion.endswith("00000.tar")
    schema = SCHEMAS[f.schema]  # the schema's, so a shard's parquet read without its tar keeps them too
    assert schema.positional_ids and schema.private_columns == {"key", "status", "error_message"}
    table = _read_all(f)
    assert table["uid"].to_pylist() == ["000000000", "000000001"]
    assert table["status"].to_pylist() == ["success", "failed_to_download"]
    assert table["width"].to_pylist()[0] == 10
    assert read_shard_images(f.companion, ["000000000", "000000001"]) == {"000000000": b"jpeg bytes"}


def test_img2dataset_tar_cut_off_keeps_the_images_before_the_cut_and_names_the_rest(tmp_path: Path) -> None:
    """A tar cut off (img2dataset killed mid-write): the rows past the cut are dropped saying why, not the unit."""
    keys = ["000000000", "000000001", "000000002"]
    pq.write_table(pa.table({"key": keys, "url": [f"http://x/{k}" for k in keys], "caption": ["a", "b", "c"],
                             "status": ["success"] * 3, "error_message": [None] * 3}), tmp_path / "00000.parquet")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key in keys:
            info = tarfile.TarInfo(f"{key}.jpg")
            info.size = 2000
            tar.addfile(info, io.BytesIO(key.encode() * 222 + b"xx"))
    for cut, why in ((512 + 2048 + 512 + 1000, "member '000000001.jpg' cut off: 1000 of 2000 bytes"),
                     (512 + 2048, "tar cut off between two members: no end-of-archive block at byte 2560")):
        (tmp_path / "00000.tar").write_bytes(buffer.getvalue()[:cut])  # inside the second image, or right before it
        f = _one(list_inputs([("s", str(tmp_path))], {}))
        with Spill(tmp_path) as spill:
            fetched = reader_of(f).fetch(f, _read_all(f), spill)
            assert fetched[0].read() == keys[0].encode() * 222 + b"xx"
        assert [(r.stored, r.reason) for r in fetched] == [(True, None), (False, "image_missing"),
                                                           (False, "image_missing")]
        assert fetched[1].error == fetched[2].error == f"{f.companion}: {why}"


def test_overlong_url_is_a_read_error(tmp_path: Path) -> None:
    pq.write_table(pa.table({"url": ["http://x/" + "a" * 5000, "http://x/ok"], "caption": ["long", "short"]}),
                   tmp_path / "l.parquet")
    f = _one(list_inputs([("s", str(tmp_path / "l.parquet"))], {}))
    assert _read_all(f)["read_error"].to_pylist() == ["url_too_long", None]
