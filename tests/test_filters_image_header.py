"""`image_header`: sizes from the header alone, so size steps can drop before `image` decodes; it never drops a
row `image` keeps, and drops what `image` would drop for the same cause with the same reason."""

import io
from pathlib import Path

import pyarrow as pa
import pytest
import skimage.data
from PIL import Image
from test_clean_support import write_recipe

from vlforge.filters.base import run_filters
from vlforge.filters.image import ImageFilter
from vlforge.filters.image_header import ImageHeaderFilter
from vlforge.filters.metadata import AspectRatioFilter, ImageSizeFilter
from vlforge.pipelines.clean.recipe import NEEDS_IMAGE, OPS, RecipeError, load_recipe

ORIENTATION = 0x0112


def encode(im: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def rotated_jpeg(upright: Image.Image) -> bytes:
    """A phone-style JPEG: pixels stored turned 90 degrees, EXIF orientation 6 says how to show them upright."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encode(upright.transpose(Image.Transpose.ROTATE_90), exif=exif)


def cut_in_scan(data: bytes) -> bytes:
    """A JPEG cut off 100 bytes into its entropy-coded scan: header intact, pixels truncated."""
    return data[: data.find(b"\xff\xda") + 100]


def header(data: bytes | None, **params) -> tuple:
    return ImageHeaderFilter(**params).judge(data)


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(skimage.data.coffee())  # 600 x 400 RGB photo


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
@pytest.mark.parametrize("size", [(1, 1), (64, 48), (1024, 17), (333, 777)])
def test_header_sizes_are_the_decoded_sizes(coffee, fmt, size):
    data = encode(coffee.resize(size), fmt)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.size == size
    assert header(data) == (*size, None)


def test_exif_rotated_jpeg_gives_stored_sizes_image_gives_upright(coffee):
    data = rotated_jpeg(coffee)  # upright 600 x 400, stored 400 x 600
    assert header(data) == (400, 600, None)
    assert ImageFilter().check(data)[2:] == (600, 400, None)


@pytest.mark.parametrize(("data", "reason"), [
    (None, "image_missing"),
    (b"", "image_empty"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "image_html"),
    (b"\xef\xbb\xbf  <?xml version='1.0'?><Error>AccessDenied</Error>", "image_html"),
    (b"GIF89a but not really an image at all", "image_unidentified"),
    (bytes(range(256)) * 8, "image_unidentified"),
])
def test_non_images_get_images_reasons(data, reason):
    assert header(data) == (None, None, reason)
    assert ImageFilter().check(data)[4] == reason


@pytest.mark.parametrize(("fmt", "cut", "reason"), [
    ("JPEG", 100, "image_truncated"),  # inside the quantisation tables, before the frame header
    ("PNG", 16, "image_truncated"),  # inside IHDR
    ("WEBP", 20, "image_corrupt"),  # inside the VP8 chunk header
])
def test_a_cut_off_header_gets_images_reason(coffee, fmt, cut, reason):
    data = encode(coffee, fmt)[:cut]
    assert header(data) == (None, None, reason)
    assert ImageFilter().check(data)[4] == reason


def test_pixel_cap_and_formats_are_images(coffee):
    data = encode(coffee)
    assert header(data, max_pixels=200_000) == (600, 400, "image_pixels>200000")
    assert ImageFilter(max_pixels=200_000).check(data)[4] == "image_pixels>200000"
    assert header(encode(coffee, "BMP"), formats=("JPEG", "PNG")) == (None, None, "image_unidentified")
    assert ImageHeaderFilter().max_pixels == ImageFilter().max_pixels == 50_000_000
    assert ImageHeaderFilter().formats == ImageFilter().formats
    with pytest.raises(ValueError, match="formats"):
        ImageHeaderFilter(formats=("JPEG", "NOPE"))


def test_damage_past_the_header_is_kept_for_image_to_drop(coffee):
    cut = cut_in_scan(encode(coffee))
    assert header(cut) == (600, 400, None)
    assert ImageFilter().check(cut)[4] == "image_truncated"


def test_adds_header_columns_and_leaves_image_and_sizes_alone(coffee):
    data = encode(coffee)
    batch = pa.table({"uid": ["a", "b"], "image": [data, b"<html></html>"],
                      "width": pa.array([10, 20], pa.int64()), "height": pa.array([30, 40], pa.int64())})
    result = ImageHeaderFilter().apply(batch)
    assert result.reasons == [None, "image_html"]
    assert result.batch.column_names == ["uid", "image", "width", "height", "header_width", "header_height"]
    assert result.batch.schema.field("header_width").type == pa.int64()
    assert result.batch.to_pydict() == {"uid": ["a", "b"], "image": [data, b"<html></html>"], "width": [10, 20],
                                        "height": [30, 40], "header_width": [600, None],
                                        "header_height": [400, None]}
    empty = ImageHeaderFilter().apply(pa.table({"image": pa.array([], pa.binary())}))
    assert empty.batch.num_rows == 0 and {"header_width", "header_height"} <= set(empty.batch.column_names)


def _size_steps(suffix: str = "", **cols) -> list:
    return [AspectRatioFilter(3.0, name=f"aspect_ratio{suffix}", **cols),
            ImageSizeFilter(200, None, name=f"image_size{suffix}", **cols)]


HEADER_STEPS = [ImageHeaderFilter(), *_size_steps("_header", width_col="header_width", height_col="header_height")]


@pytest.fixture(scope="module")
def mixed(coffee) -> pa.Table:
    """Good images of several formats and sizes, images too small or too wide, rotated ones, bad bytes."""
    damaged_png = bytearray(encode(coffee.crop((0, 0, 300, 300)), "PNG"))
    damaged_png[len(damaged_png) // 2: len(damaged_png) // 2 + 100] = bytes(100)  # chunk CRC no longer matches
    rows = {
        "ok_jpeg": encode(coffee),  # 600 x 400
        "ok_png": encode(coffee.resize((300, 250)), "PNG"),
        "ok_webp": encode(coffee.resize((400, 220)), "WEBP"),
        "ok_rotated": rotated_jpeg(coffee.resize((300, 400))),  # stored 400 x 300
        "small": encode(coffee.resize((150, 150))),
        "wide": encode(coffee.resize((900, 250))),  # 3.6 : 1
        "tall_rotated": rotated_jpeg(coffee.resize((210, 700))),  # stored 700 x 210, 3.33 : 1 either way
        "cut_scan": cut_in_scan(encode(coffee)),
        "small_cut_scan": cut_in_scan(encode(coffee.resize((120, 100)))),
        "cut_header": encode(coffee)[:100],
        "damaged_png": bytes(damaged_png),
        "html": b"<html><body>403 Forbidden</body></html>",
        "empty": b"",
        "missing": None,
        "noise": bytes(range(256)) * 8,
    }
    return pa.table({"uid": list(rows), "image": list(rows.values())})


def _reasons(dropped: pa.Table) -> dict[str, str]:
    return dict(zip(dropped["uid"].to_pylist(), dropped["reason"].to_pylist(), strict=True))


def test_header_steps_first_keep_the_same_rows_and_decode_fewer(mixed, monkeypatch):
    decoded: list[tuple[int, int]] = []
    real_decode = ImageFilter._decode

    def spy(self, im, data):
        decoded.append(im.size)
        return real_decode(self, im, data)

    monkeypatch.setattr(ImageFilter, "_decode", spy)
    kept_alone, dropped_alone = run_filters(mixed, [ImageFilter(), *_size_steps()])
    decoded_alone, decoded[:] = len(decoded), []
    kept_first, dropped_first = run_filters(mixed, [*HEADER_STEPS, ImageFilter(), *_size_steps()])

    expected_kept = ["ok_jpeg", "ok_png", "ok_webp", "ok_rotated"]
    assert kept_alone["uid"].to_pylist() == kept_first["uid"].to_pylist() == expected_kept
    assert kept_first["width"].to_pylist() == [600, 300, 400, 300]  # real upright sizes, as without the header
    assert kept_first["height"].to_pylist() == [400, 250, 220, 400]
    # alone, `image` decodes every image whose header parses (the damaged PNG fails its CRC check first)
    assert decoded_alone == 9
    assert sorted(decoded) == sorted([(600, 400), (300, 250), (400, 220), (400, 300), (600, 400)])

    same = {"small": "min_side<200", "wide": "aspect_ratio>3", "tall_rotated": "aspect_ratio>3",
            "cut_scan": "image_truncated", "cut_header": "image_truncated", "damaged_png": "image_corrupt",
            "html": "image_html", "empty": "image_empty", "missing": "image_missing", "noise": "image_unidentified"}
    assert _reasons(dropped_alone) == {**same, "small_cut_scan": "image_truncated"}
    assert _reasons(dropped_first) == {**same, "small_cut_scan": "min_side<200"}  # its size is seen first
    stages = dict(zip(dropped_first["uid"].to_pylist(), dropped_first["stage"].to_pylist(), strict=True))
    assert stages["small"] == "image_size_header" and stages["cut_header"] == "image_header"
    assert stages["cut_scan"] == "image"


RECIPE_YAML = """\
name: header-first
rows_per_unit: 100
dedup: {url: false, uid: false, sha256: false}
before_download:
  - op: caption
    min_words: 2
after_download:
  - op: image_header
  - op: aspect_ratio
    name: aspect_ratio_header
    width_col: header_width
    height_col: header_height
    max_ratio: 3.0
  - op: image_size
    name: image_size_header
    width_col: header_width
    height_col: header_height
    min_side: 200
    max_pixels: null
  - op: image
  - op: aspect_ratio
    max_ratio: 3.0
  - op: image_size
    min_side: 200
    max_pixels: null
sources:
  bench:
    schema: img2dataset
"""


def test_a_recipe_with_header_steps_loads(tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE_YAML)
    recipe = load_recipe(path)
    steps = recipe.source_steps("bench", "after_download")
    assert [(s.op, s.name) for s in steps] == [
        ("image_header", "image_header"), ("aspect_ratio", "aspect_ratio_header"),
        ("image_size", "image_size_header"), ("image", "image"), ("aspect_ratio", "aspect_ratio"),
        ("image_size", "image_size")]
    assert steps[1].params["width_col"] == "header_width"


def test_the_recipe_places_it_after_download_and_still_wants_image(tmp_path: Path):
    assert OPS["image_header"] is ImageHeaderFilter and "image_header" in NEEDS_IMAGE
    with pytest.raises(RecipeError, match=r"before_download\.0 \(image_header\): op image_header needs the image"):
        load_recipe(write_recipe(tmp_path / "r.yaml", before_download=[{"op": "image_header"}]))
    with pytest.raises(RecipeError, match="source web has no enabled `image` step"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image_header"}]))
    with pytest.raises(RecipeError, match=r"after_download\.0: max_pixels: Input should be greater than 0"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image_header", "max_pixels": 0},
                                                                      {"op": "image"}]))

