"""Issue 8, items 5, 6 and 13: malformed and oversized input becomes a manifest row with a reason (or a clear
error naming the file), memory stays bounded whatever the input claims, and recipes order their image steps."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.spec import AbstractBufferedFile
from PIL import Image
from test_clean_support import (
    ROOT,
    ImageServer,
    jpeg,
    manifest_rows,
    only_loopback_connections,
    photo,
    write_recipe,
)
from test_filters_clip_score import TINY, photo_batch, tiny_checkpoint  # noqa: F401 (a fixture)
from test_reliability_dedup import TEXT_ONLY, write_img2dataset_shard

from vlforge.cli import main
from vlforge.filters.base import set_column
from vlforge.filters.clip_score import ComputedClipScoreFilter
from vlforge.filters.image import ImageFilter
from vlforge.pipelines.clean.recipe import RecipeError, load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.shards.imageio import ImageRejected, open_image
from vlforge.shards.manifest import write_manifest
from vlforge.shards.reader import MAX_MEMBER_BYTES, ShardReadError, iter_samples
from vlforge.shards.verify import verify_dir
from vlforge.shards.writer import ShardWriter
from vlforge.sources.download import DownloadOptions, download
from vlforge.sources.dumps.img2dataset import read_shard_images
from vlforge.sources.dumps.readers import list_inputs, plan_ranges, read_range
from vlforge.sources.dumps.schemas import InputError
from vlforge.sources.dumps.text import MAX_LINE_BYTES, bounded_lines
from vlforge.sources.spill import Spill

CLIP = {"model_name": "ViT-B-32", "checkpoint_path": None, "on_missing": "skip"}  # validated, never loaded


def test_computed_clip_before_the_image_step_is_refused_naming_both(tmp_path: Path) -> None:
    steps = [{"op": "clip_score_computed", "name": "clip_real", **CLIP}, {"op": "image", "name": "decode"}]
    with pytest.raises(RecipeError, match=r"step clip_real \(clip_score_computed\) needs `image` before it, but "
                                          r"source web has step decode \(image\) after it; put `image` first"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=steps))


def test_a_source_override_that_disables_the_first_image_step_is_checked_too(tmp_path: Path) -> None:
    steps = [{"op": "image", "name": "early"}, {"op": "clip_score_computed", "name": "clip_real", **CLIP},
             {"op": "image", "name": "late"}]
    sources = {"web": {"schema": "auto", "filters": {"early": {"enabled": False}}}}
    with pytest.raises(RecipeError, match=r"clip_real \(clip_score_computed\) needs `image` before it, but source web "
                                          r"has step late \(image\) after it"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=steps, sources=sources))


# ---------------------------------------------------------------- readers: every line a row, whatever it holds

DEEP = b'{"e": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"  # the 200k levels


def _read(path: Path, rows_per_unit: int = 2) -> pa.Table:
    """All rows of one input file, read range by range as the units read them."""
    [f] = list_inputs([("s", str(path))], {})
    ranges = plan_ranges(f, rows_per_unit)
    table = pa.concat_tables([t for rng in ranges for t in read_range(f, rng)], promote_options="permissive")
    assert table["row"].to_pylist() == list(range(sum(r.row_count for r in ranges)))
    return table


def test_jsonl_deep_nesting_and_huge_lines_are_rows_with_reasons(tmp_path: Path) -> None:
    good = [json.dumps({"url": f"http://x.invalid/{i}", "caption": f"caption {i}"}).encode() for i in range(3)]
    huge = b'{"url": "http://x.invalid/h", "caption": "' + b"a" * (MAX_LINE_BYTES + 10) + b'"}'
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([good[0], DEEP, huge, b'{"url": ', b"", b"[1, 2]", good[1], DEEP[:100], good[2]]))
    table = _read(path)
    assert table["read_error"].to_pylist() == [None, "json_too_deep", "line_too_long", "bad_row", "bad_row", None,
                                               "bad_row", None]
    assert table["url"].to_pylist()[-1] == "http://x.invalid/2"


def test_schema_probe_survives_deep_nesting_and_a_huge_first_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([b"x" * (MAX_LINE_BYTES + 1), DEEP, b'{"url": "http://x.invalid/", "caption": "c"}']))
    assert _read(path)["read_error"].to_pylist() == ["line_too_long", "json_too_deep", None]


def test_csv_huge_line_is_one_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"url,caption\nhttp://x.invalid/0,first\nhttp://x.invalid/1,\"opened quote\n"
                     + b"b" * (MAX_LINE_BYTES + 5) + b"\nhttp://x.invalid/3,after\n" + b"c" * (MAX_LINE_BYTES + 1)
                     + b"\nhttp://x.invalid/5,last\n")
    table = _read(path)
    assert table["read_error"].to_pylist() == [None, "line_too_long", None, "line_too_long", None]
    assert table["caption"].to_pylist()[2] == "after" and table["caption"].to_pylist()[4] == "last"


class BufferedBytes(AbstractBufferedFile):
    """fsspec's base class of remote files (s3, gcs, http), whose readline() takes no size, over bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        super().__init__(fs=fsspec.filesystem("memory"), path="x", mode="rb", size=len(data), block_size=7,
                         cache_type="none")

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.data[start:end]


def test_line_cap_works_on_remote_fsspec_files() -> None:
    data = b"short\n" + b"x" * 40 + b"\nlast"
    assert list(bounded_lines(BufferedBytes(data), max_bytes=16)) == [(b"short\n", 6), (None, 41), (b"last", 4)]


def test_csv_header_over_the_line_cap_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(b"url," + b"h" * (MAX_LINE_BYTES + 1) + b"\nhttp://x.invalid/0,a\n")
    with pytest.raises(InputError, match=rf"{path}:1: header line longer than {MAX_LINE_BYTES} bytes"):
        list_inputs([("s", str(path))], {})


def test_parquet_with_a_nested_caption_column_is_refused_before_work(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": ["http://x.invalid/0"], "caption": [{"text": "nested"}]}), path)
    with pytest.raises(InputError, match=r"column 'caption' \(field caption\) is struct<text: string>"):
        list_inputs([("s", str(path))], {})


def test_corrupt_parquet_data_is_an_error_naming_the_file_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": [f"http://x.invalid/{i}" for i in range(10)], "caption": ["c"] * 10}), path,
                   row_group_size=5, compression="none")
    offset = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 16] = b"\xff" * 16  # the second row group's page header
    path.write_bytes(bytes(data))
    [f] = list_inputs([("s", str(path))], {})
    first, second = plan_ranges(f, 5)
    assert sum(t.num_rows for t in read_range(f, first)) == 5
    with pytest.raises(InputError, match=rf"{path}: rows 5\.\.9 unreadable parquet data"):
        list(read_range(f, second))


# ---------------------------------------------------------------- tars: members streamed, their size capped


def sparse_tar(folder: Path, claimed: int = 1 << 30) -> Path:
    """A ~10 KB GNU tar whose sparse member `000000000.jpg` expands to `claimed` bytes (made by tar itself)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "000000000.jpg", "wb") as f:
        f.truncate(claimed)
    (folder / "000000000.json").write_text("{}")
    subprocess.run(["tar", "--sparse", "--format=gnu", "-cf", "00000.tar", "000000000.jpg", "000000000.json"],
                   cwd=folder, check=True)
    (folder / "000000000.jpg").unlink()
    (folder / "000000000.json").unlink()
    assert (folder / "00000.tar").stat().st_size < 64 * 1024
    return folder / "00000.tar"


def committed_sparse_shard(folder: Path) -> Path:
    """sparse_tar plus a manifest that lists its sample, as `shards verify` expects of a committed unit."""
    tar = sparse_tar(folder)
    write_manifest(folder, "00000", [{"uid": "0", "source": "s", "status": "kept", "tar": tar.name,
                                      "key": "000000000"}])
    return tar


def test_shard_images_refuse_a_member_over_the_cap_unread(tmp_path: Path) -> None:
    tar = sparse_tar(tmp_path)
    assert read_shard_images(str(tar), ["000000000"]) == {"000000000": None}
    with tarfile.open(tar) as t:
        assert t.getmember("000000000.jpg").size > MAX_MEMBER_BYTES


def test_clean_drops_an_oversized_shard_member_as_too_large(ray_local, tmp_path: Path) -> None:
    small = jpeg(photo("astronaut", 96, 96))
    shard = write_img2dataset_shard(tmp_path / "shard", [(small, "jpg", None), (small, "jpg", None)])
    (tmp_path / "shard" / "00000.tar").unlink()
    with open(tmp_path / "shard" / "000000000.jpg", "wb") as f:
        f.write(small)
    with open(tmp_path / "shard" / "000000001.jpg", "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB claimed, a few KB on disk
    subprocess.run(["tar", "--sparse", "--format=gnu", "--remove-files", "-cf", "00000.tar", "000000000.jpg",
                    "000000001.jpg"], cwd=shard, check=True)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", before_download=TEXT_ONLY, after_download=[{"op": "image"}]))
    clean(recipe, tmp_path / "out", [("web", str(shard))])
    rows = {r["row"]: r for r in manifest_rows(tmp_path / "out")}
    assert rows[0]["status"] == "kept"
    assert (rows[1]["status"], rows[1]["reason"], rows[1]["stage"]) == ("dropped", "too_large", "download")


def test_iter_samples_and_export_name_the_oversized_member(tmp_path: Path, capsys) -> None:
    tar = sparse_tar(tmp_path / "shards")
    with pytest.raises(ShardReadError, match=r"00000.tar: member 000000000.jpg is 1073741824 bytes, over the"):
        list(iter_samples(str(tar)))
    assert main(["export", "--format", "qwenvl-json", "--input", str(tar), "--out", str(tmp_path / "x")]) == 2
    assert "member 000000000.jpg is 1073741824 bytes" in capsys.readouterr().err


def test_a_cut_off_tar_is_a_clear_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("0.json")
        payload = b'{"a": 1}' * 200
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "cut.tar").write_bytes(buf.getvalue()[:900])
    with pytest.raises(ShardReadError, match=r"cut\.tar: unreadable or truncated tar"):
        list(iter_samples(str(tmp_path / "cut.tar")))


PEAK_RSS = """
import resource, sys
{code}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_rss_mib(code: str) -> int:
    """Peak resident memory (MiB) of a fresh interpreter running `code`."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS.format(code=code)], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=120)
    return int(done.stdout.split()[-1])


MEMORY_BOUND_MIB = 150  # over an interpreter that imported the same modules; the inputs claim > 1 GiB


def test_memory_stays_bounded_on_a_sparse_tar_a_huge_line_and_deep_json(tmp_path: Path) -> None:
    tar = committed_sparse_shard(tmp_path / "tar")
    jsonl = tmp_path / "in.jsonl"
    with open(jsonl, "wb") as f:  # a 64 MiB line without a newline, then the deep record
        for _ in range(64):
            f.write(b"z" * (1 << 20))
        f.write(b"\n" + DEEP + b'\n{"url": "http://x.invalid/", "caption": "c"}\n')
    imports = ("from pathlib import Path; from vlforge.shards.verify import verify_dir; "
               "from vlforge.sources.dumps.readers import list_inputs, read_range; "
               "from vlforge.sources.dumps.img2dataset import read_shard_images")
    baseline = peak_rss_mib(imports)
    work = (f"{imports}\nreport = verify_dir(Path({str(tar.parent)!r}))\n"
            f"assert any('over the' in p for p in report.problems), report.problems\n"
            f"assert read_shard_images({str(tar)!r}, ['000000000']) == {{'000000000': None}}\n"
            f"[f] = list_inputs([('s', {str(jsonl)!r})], {{}})\n"
            f"errors = [e for t in read_range(f) for e in t['read_error'].to_pylist()]\n"
            f"assert errors == ['line_too_long', 'json_too_deep', None], errors")
    assert peak_rss_mib(work) - baseline < MEMORY_BOUND_MIB


def test_verify_reports_the_oversized_member_without_reading_it(tmp_path: Path) -> None:
    tar = committed_sparse_shard(tmp_path)
    report = verify_dir(tmp_path)
    assert any("000000000.jpg: 1073741824 bytes, over the" in p and "not read" in p for p in report.problems)
    assert tar.exists()


# ---------------------------------------------------------------- downloads: spilled to disk, not held


def test_downloads_are_spilled_to_disk_not_held(tmp_path: Path) -> None:
    images = [jpeg(photo("astronaut", 64 + i, 64)) for i in range(5)]
    with ImageServer() as server, only_loopback_connections():
        urls = [server.add(f"/{i}.jpg", data) for i, data in enumerate(images)]
        spill = Spill(tmp_path)
        results = download(urls, DownloadOptions(thread_count=2, timeout=2, allow_loopback=True), spill)
    assert all(r.spill is spill for r in results)
    assert sorted(r.size for r in results) == sorted(len(d) for d in images)
    assert spill.on_disk == sum(len(d) for d in images)  # on disk, once each
    assert [r.read() for r in results] == images
    assert all(not isinstance(value, bytes) for r in results for value in vars(r).values())


# ---------------------------------------------------------------- image formats: an allow-list everywhere

OTHER_FORMATS = ("PCX", "TGA", "PPM", "SGI", "ICO", "QOI", "EPS")  # PIL opens them all; EPS would run Ghostscript


def other_format(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", OTHER_FORMATS)
def test_images_outside_the_allow_list_are_refused_by_the_opener_and_the_image_step(fmt: str) -> None:
    data = other_format(fmt)
    with Image.open(io.BytesIO(data)) as im:  # PIL itself would open it
        assert im.format == fmt
    with pytest.raises(ImageRejected) as info:
        open_image(data)
    assert info.value.reason == "image_unidentified"
    assert ImageFilter().check(data)[4] == "image_unidentified"


def test_verify_reports_a_member_in_a_format_outside_the_allow_list(tmp_path: Path) -> None:
    with ShardWriter(tmp_path, "unit") as writer:
        writer.write("ok", {"jpg": jpeg(photo("astronaut", 32, 32)), "json": {}})
        writer.write("tga", {"jpg": other_format("TGA"), "json": {}})
    problems = verify_dir(tmp_path).problems
    assert len(problems) == 1 and "tga.jpg: does not decode" in problems[0]


def test_computed_clip_refuses_a_format_outside_the_allow_list(tiny_checkpoint) -> None:  # noqa: F811
    batch = photo_batch()
    images = batch["image"].to_pylist()
    images[2] = other_format("PCX")
    batch = set_column(batch, "image", pa.array(images, pa.binary()))
    result = ComputedClipScoreFilter(TINY, tiny_checkpoint, -1.0).apply(batch)
    assert list(result.reasons) == [None, None, "image_unreadable", None]
