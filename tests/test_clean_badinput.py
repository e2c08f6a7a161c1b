"""Hostile input through the whole pipeline: each case ends as a manifest reason, or kept and normalised."""

import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_clean_support import (
    ImageServer,
    bomb_png,
    exif_rotated_jpeg,
    jpeg,
    manifest_rows,
    photo,
    png,
    tar_samples,
    write_recipe,
)

from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.shards.verify import verify_dir
from vlforge.sources.dumps.schemas import InputError

CAPTION = "A clear photograph of {} taken outdoors on a sunny day"


def _images() -> dict[str, bytes]:
    good = jpeg(photo("astronaut"))
    middle = len(good) // 2
    rgba = Image.fromarray(photo("coffee")).convert("RGBA")
    alpha = np.asarray(rgba).copy()
    alpha[:50, :50, 3] = 0  # a transparent corner
    palette = Image.fromarray(photo("chelsea")).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    deep = (np.asarray(Image.fromarray(photo("camera")).convert("L"), dtype=np.uint16) * 257)
    cmyk = io.BytesIO()
    Image.fromarray(photo("rocket")).convert("CMYK").save(cmyk, "JPEG", quality=90)
    return {
        "good": good,
        "corrupt": good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 500]) + good[middle + 500:],
        "truncated": good[: len(good) * 6 // 10],
        "empty": b"",
        "html": b"<!DOCTYPE html><html><body>Sorry, this page has moved</body></html>",
        "bomb": bomb_png(),
        "cmyk": cmyk.getvalue(),
        "deep": png(Image.fromarray(deep)),  # uint16 -> mode I;16
        "palette": png(palette),
        "alpha": png(Image.fromarray(alpha, "RGBA")),
        "exif": exif_rotated_jpeg(400, 250),
        "nan": jpeg(photo("hubble_deep_field")),
    }


@pytest.fixture(scope="module")
def hostile(ray_local, tmp_path_factory):
    """One served dump (parquet + JSONL) with a row for each bad input, cleaned once; the tests read its output."""
    tmp = tmp_path_factory.mktemp("hostile")
    images = _images()
    with ImageServer() as server:
        url = {name: server.add(f"/{name}", data) for name, data in images.items()}
        server.add("/slow", images["good"], delay=3.0)
        server.add("/moved-here", jpeg(photo("immunohistochemistry")))
        url["redirected"] = server.redirect("/moved", server.url("/moved-here"))
        url["redirect_private"] = server.redirect("/to-private", "http://10.1.2.3/x.jpg")
        url["redirect_loop"] = server.redirect("/loop", server.url("/loop"))
        url["server_error"] = server.add("/boom", b"", 500)
        rows = [(name, url[name], CAPTION.format(f"case {name}"), 300.0, 300.0) for name in url if name != "nan"]
        rows += [
            ("nan", url["nan"], CAPTION.format("case with no size"), math.nan, None),
            ("negative", url["good"] + "?neg", CAPTION.format("case with a negative size"), -640.0, 480.0),
            ("huge_caption", url["good"] + "?big", "word " * 200_000, 300.0, 300.0),
            ("missing", server.url("/missing"), CAPTION.format("case the server lost"), 300.0, 300.0),
            ("slow", server.url("/slow"), CAPTION.format("case that takes too long"), 300.0, 300.0),
            ("good", url["good"] + "?again", CAPTION.format("second row with a repeated id"), 300.0, 300.0),
            ("bad_utf8", url["good"] + "?utf8", None, 300.0, 300.0),
            # no size in the dump: the real size is judged after download
            ("wide_nosize", server.add("/wide", jpeg(photo("rocket")[:100].copy())), CAPTION.format("a strip"),
             math.nan, math.nan),
            ("tiny_nosize", server.add("/tiny", jpeg(photo("astronaut")[::16, ::16].copy())),
             CAPTION.format("a thumbnail"), math.nan, math.nan),
        ]
        captions = pa.array([r[2].encode() if r[2] else b"caf\xe9 latin-1 bytes in a UTF-8 column" for r in rows])
        table = pa.table({
            "SAMPLE_ID": [r[0] for r in rows], "URL": [r[1] for r in rows],
            "TEXT": pa.Array.from_buffers(pa.string(), len(rows), captions.buffers()),
            "WIDTH": pa.array([r[3] for r in rows], pa.float64(), from_pandas=True),
            "HEIGHT": pa.array([r[4] for r in rows], pa.float64(), from_pandas=True),
            "similarity": [0.4] * len(rows),
        })
        pq.write_table(table, tmp / "hostile.parquet")
        json_url = server.add("/json", jpeg(photo("coffee")))
        lines = [json.dumps({"uid": "json_ok", "url": json_url, "caption": CAPTION.format("a json row")}).encode(),
                 b'{"uid": "json_bad", "url": "http://127.0.0.1/x", "caption": "caf\xe9"}',
                 b'{"uid": "json_truncated", "url": ']
        (tmp / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        steps = [{"op": "aspect_ratio", "max_ratio": 3.0, "missing": "keep"},
                 {"op": "caption", "min_words": 2, "min_chars": 5}, {"op": "language", "keep": ["en"]}]
        recipe = load_recipe(write_recipe(tmp / "recipe.yaml", before_download=steps,
                                          download={"allow_loopback": True, "timeout": 1, "thread_count": 4},
                                          rows_per_unit=5))
        report = clean(recipe, tmp / "out", [("web", str(tmp / "hostile.parquet")), ("web", str(tmp / "rows.jsonl"))])
        requests = list(server.requests)
    rows = {(f"{r['uid']}#dup" if r["reason"] == "duplicate_uid" else r["uid"]): r for r in manifest_rows(tmp / "out")}
    return {"out": tmp / "out", "report": report, "rows": rows, "requests": requests,
            "samples": tar_samples(tmp / "out")}


def _reason(hostile, uid: str) -> tuple[str, str | None, str | None]:
    row = hostile["rows"][uid]
    return row["status"], row["reason"], row["stage"]


@pytest.mark.parametrize("uid, reason, stage", [
    ("corrupt", "image_corrupt", "image"),
    ("truncated", "image_truncated", "image"),
    ("empty", "image_empty", "image"),
    ("html", "image_html", "image"),
    ("bomb", "image_pixels>50000000", "image"),
    ("negative", "size_invalid", "aspect_ratio"),
    ("huge_caption", "caption_raw_chars>8192", "caption"),
    ("missing", "http_404", "download"),
    ("server_error", "http_500", "download"),
    ("slow", "timeout", "download"),
    ("redirect_private", "blocked_private", "download"),
    ("redirect_loop", "too_many_redirects", "download"),
    ("bad_utf8", "invalid_utf8", "read"),
    ("wide_nosize", "aspect_ratio>3", "aspect_ratio_real"),
    ("tiny_nosize", "min_side<64", "image_size_real"),
    ("json_bad", "invalid_utf8", "read"),
    ("rows.jsonl:2", "bad_row", "read"),
])
def test_bad_input_becomes_a_reason(hostile, uid: str, reason: str, stage: str) -> None:
    assert _reason(hostile, uid) == ("dropped", reason, stage)


def test_duplicate_uid_keeps_the_first_row_only(hostile) -> None:
    assert [k for k, r in hostile["rows"].items() if r["reason"] == "duplicate_uid"] == ["good#dup"]
    assert hostile["rows"]["good#dup"]["url"].endswith("?again")
    assert hostile["rows"]["good"]["status"] == "kept" and hostile["rows"]["good"]["row"] == 0


def _kept_image(hostile, uid: str) -> tuple[Image.Image, dict]:
    row = hostile["rows"][uid]
    assert row["status"] == "kept", row["reason"]
    sample = hostile["samples"][row["key"]]
    assert set(sample) == {"jpg", "txt", "json"}
    image = Image.open(io.BytesIO(sample["jpg"]))
    image.load()
    return image, json.loads(sample["json"])


@pytest.mark.parametrize("uid", ["cmyk", "deep", "palette", "alpha"])
def test_unusual_modes_are_kept_as_rgb_jpeg(hostile, uid: str) -> None:
    image, meta = _kept_image(hostile, uid)
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert (meta["width"], meta["height"]) == image.size


def test_alpha_is_composited_on_white(hostile) -> None:
    image, _ = _kept_image(hostile, "alpha")
    assert min(image.getpixel((10, 10))) >= 245


def test_exif_rotated_photo_is_stored_upright(hostile) -> None:
    image, meta = _kept_image(hostile, "exif")
    assert image.size == (250, 400) and (meta["width"], meta["height"]) == (250, 400)
    assert hostile["rows"]["exif"]["width"] == 250 and hostile["rows"]["exif"]["meta_width"] == 300


def test_redirect_is_followed_to_the_image(hostile) -> None:
    image, _ = _kept_image(hostile, "redirected")
    assert image.size == Image.open(io.BytesIO(jpeg(photo("immunohistochemistry")))).size
    assert hostile["requests"].count("/moved") == hostile["requests"].count("/moved-here") == 1
    assert "/to-private" in hostile["requests"]  # served the redirect; the hop to 10.1.2.3 was refused unconnected


def test_unknown_size_is_measured_after_download(hostile) -> None:
    row = hostile["rows"]["nan"]
    assert row["status"] == "kept" and (row["width"], row["height"]) == (1000, 872)


def test_the_run_accounts_for_every_row_and_stays_consistent(hostile) -> None:
    assert len(hostile["rows"]) == 27
    summary = hostile["report"].summary["web"]
    assert summary["read"] == 27 and summary["kept"] == 9
    assert verify_dir(hostile["out"]).ok
    assert "/slow" in hostile["requests"]


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name, content, message", [
    ("no_text.parquet", _parquet(pa.table({"URL": ["http://127.0.0.1/a.jpg"], "WIDTH": [10]})),
     r"no_text\.parquet: missing column 'TEXT' for field caption"),
    ("no_text.csv", b"URL,WIDTH\nhttp://127.0.0.1/a.jpg,10\n", r"no_text\.csv: missing column 'TEXT'"),
    ("empty.parquet", b"", r"empty\.parquet: not a readable parquet file"),
    ("page.parquet", b"<html><body>Not found</body></html>", r"page\.parquet: not a readable parquet file"),
    ("truncated.parquet", _parquet(pa.table({"URL": ["u"] * 100, "TEXT": ["t"] * 100}))[:-100],
     r"truncated\.parquet: not a readable parquet file"),
    ("empty.csv", b"", r"empty\.csv: no columns found"),
    ("empty.jsonl", b"", r"empty\.jsonl: no columns found"),
])
def test_unreadable_input_files_stop_the_run_before_any_work(ray_local, tmp_path: Path, name: str, content: bytes,
                                                             message: str) -> None:
    (tmp_path / name).write_bytes(content)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", sources={"web": {"schema": "laion"}}))
    with pytest.raises(InputError, match=message):
        clean(recipe, tmp_path / "out", [("web", str(tmp_path / name))])
    assert not (tmp_path / "out").exists()
