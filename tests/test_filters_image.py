import io
import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest
import skimage.data
from PIL import Image

from vlforge.filters.base import run_filters
from vlforge.filters.image import ImageFilter
from vlforge.filters.metadata import AspectRatioFilter, ImageSizeFilter


def encode(im: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB"
        return np.asarray(im, dtype=np.int16)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows) -> bytes:
    """A PNG written chunk by chunk, so sizes and bit depths PIL would not produce are possible."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(skimage.data.coffee())  # 600 x 400 RGB photo


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea())  # 451 x 300 RGB photo


def check(data, **params):
    return ImageFilter(**params).check(data)


def test_upright_rgb_jpeg_keeps_its_bytes_and_real_size(coffee):
    data = encode(coffee, quality=90)
    batch = pa.table({"uid": ["a"], "image": [data], "width": pa.array([10], pa.int64()),
                      "height": pa.array([10], pa.int64())})
    result = ImageFilter().apply(batch)
    assert result.reasons == [None]
    out = result.batch.to_pylist()[0]
    assert out["image"] == data and out["image_reencoded"] is False and out["image_ext"] == "jpg"
    assert (out["width"], out["height"]) == (600, 400)
    assert (out["meta_width"], out["meta_height"]) == (10, 10)
    assert "sha256" not in out  # the clean unit hashes bytes as they arrive; the filter does not hash again


def test_png_and_webp_keep_their_format(coffee):
    for fmt, ext in [("PNG", "png"), ("WEBP", "webp")]:
        data = encode(coffee, fmt)
        out, got_ext, width, height, reason = check(data)
        assert (out, got_ext, width, height, reason) == (data, ext, 600, 400, None)


@pytest.mark.parametrize(("data", "reason"), [
    (None, "image_missing"),
    (b"", "image_empty"),
    (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "image_html"),
    (b"\n  <html><head><title>Access denied</title></head></html>", "image_html"),
    (b"GIF89a but not really an image at all", "image_unidentified"),
    (bytes(range(256)) * 8, "image_unidentified"),
])
def test_non_images_are_dropped_with_reasons(data, reason):
    assert check(data)[4] == reason


def test_truncated_and_corrupt_jpegs(coffee):
    data = encode(coffee)
    assert check(data[: len(data) // 2])[4] == "image_truncated"
    assert check(data[:-20])[4] == "image_truncated"
    dht = data.find(b"\xff\xc4")
    broken_tables = data[: dht + 4] + bytes(40) + data[dht + 44:]
    assert check(broken_tables)[4] == "image_corrupt"
    assert check(data[:2] + bytes(2000))[4] == "image_unidentified"  # SOI, then no JPEG markers


def test_truncated_and_corrupt_pngs(coffee):
    data = encode(coffee, "PNG")
    assert check(data[: len(data) // 2])[4] == "image_truncated"
    damaged = bytearray(data)
    damaged[len(data) // 2: len(data) // 2 + 100] = bytes(100)  # CRC no longer matches
    assert check(bytes(damaged))[4] == "image_corrupt"


def test_decompression_bomb_is_rejected_from_the_header():
    side = 50_000
    row = bytes(side // 8)  # mode "1": one bit per pixel, so 2.5 gigapixels compress to a few hundred KB
    bomb = raw_png(side, side, 1, 0, (row for _ in range(side)))
    assert len(bomb) < 1_000_000
    assert check(bomb)[4] == "image_pixels>50000000"


def test_pixel_cap_below_pils_own_limit(coffee):
    _, _, width, height, reason = check(encode(coffee), max_pixels=200_000)
    assert reason == "image_pixels>200000" and (width, height) == (600, 400)


def test_exif_rotated_photo_comes_out_upright(chelsea):
    upright = np.asarray(chelsea)
    for orientation, stored in [(6, chelsea.transpose(Image.Transpose.ROTATE_90)),
                                (3, chelsea.transpose(Image.Transpose.ROTATE_180)),
                                (8, chelsea.transpose(Image.Transpose.ROTATE_270))]:
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encode(stored, quality=95, exif=exif)
        out, ext, width, height, reason = check(data)
        assert reason is None and ext == "jpg" and out != data
        assert (width, height) == (451, 300)
        pixels = decode(out)
        assert mean_abs_diff(pixels, upright) < 4
        assert mean_abs_diff(pixels, np.asarray(chelsea.transpose(Image.Transpose.ROTATE_180))) > 20


def test_cmyk_jpeg_is_converted_to_rgb(coffee):
    data = encode(coffee.convert("CMYK"), quality=95)
    out, ext, width, height, reason = check(data)
    assert reason is None and ext == "jpg" and (width, height) == (600, 400)
    assert mean_abs_diff(decode(out), np.asarray(coffee)) < 4


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.arange(256, dtype=np.uint16), (32, 1))  # 8-bit values 0..255 across
    data = raw_png(256, 32, 16, 0, (row.astype(">u2").tobytes() for row in ramp * 257))
    out, ext, width, height, reason = check(data)
    assert reason is None and ext == "jpg" and (width, height) == (256, 32)
    pixels = decode(out)
    assert mean_abs_diff(pixels[..., 0], ramp) < 3  # clipping would turn 3/4 of the ramp white


def test_sixteen_bit_rgb_png_decodes(coffee):
    rgb = np.asarray(coffee).astype(np.uint16) * 257
    data = raw_png(600, 400, 16, 2, (row.astype(">u2").tobytes() for row in rgb))
    out, ext, width, height, reason = check(data)
    assert reason is None and (width, height) == (600, 400)
    assert ext == "png" and out == data  # PIL reads 16-bit RGB as 8-bit RGB: nothing to convert
    assert mean_abs_diff(decode(out), np.asarray(coffee)) < 1


def test_palette_png_with_and_without_transparency(coffee):
    palette = coffee.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out, ext, _, _, reason = check(encode(palette, "PNG"))
    assert reason is None and ext == "jpg"
    assert mean_abs_diff(decode(out), np.asarray(palette.convert("RGB"))) < 4
    transparent = palette.copy()
    index = transparent.getpixel((0, 0))
    out, _, _, _, reason = check(encode(transparent, "PNG", transparency=index))
    assert reason is None
    pixels = decode(out)
    hidden = np.asarray(transparent) == index
    assert hidden.sum() > 0 and np.asarray(palette.convert("RGB"))[hidden].mean() < 100  # a dark colour...
    assert pixels[hidden].mean() >= 250  # ...whose transparent entries come out white


def test_alpha_is_composited_on_white(coffee):
    rgba = coffee.convert("RGBA")
    alpha = np.full((400, 600), 255, dtype=np.uint8)
    alpha[:, :300] = 0
    rgba.putalpha(Image.fromarray(alpha))
    out, ext, _, _, reason = check(encode(rgba, "PNG"))
    assert reason is None and ext == "jpg"
    pixels = decode(out)
    assert pixels[:, :290].min() >= 250
    assert mean_abs_diff(pixels[:, 310:], np.asarray(coffee)[:, 310:]) < 4
    grey_alpha = coffee.convert("LA")
    out, _, _, _, reason = check(encode(grey_alpha, "PNG"))
    assert reason is None and decode(out).shape == (400, 600, 3)


def test_grey_gif_and_bmp_are_reencoded_as_rgb_jpeg(coffee):
    for im, fmt in [(coffee.convert("L"), "JPEG"), (coffee, "GIF"), (coffee, "BMP")]:
        out, ext, width, height, reason = check(encode(im, fmt))
        assert reason is None and ext == "jpg" and (width, height) == (600, 400), fmt
        assert decode(out).shape == (400, 600, 3)


def test_real_sizes_feed_the_size_filters(coffee, chelsea):
    small = coffee.resize((150, 100))
    wide = coffee.resize((600, 100))
    batch = pa.table({"uid": ["ok", "small", "wide", "html"],
                      "image": [encode(chelsea), encode(small), encode(wide), b"<html></html>"],
                      "width": pa.array([1000, 1000, 1000, 1000], pa.int64()),
                      "height": pa.array([1000, 1000, 1000, 1000], pa.int64())})
    kept, dropped = run_filters(batch, [ImageFilter(), AspectRatioFilter(max_ratio=3.0),
                                           ImageSizeFilter(min_side=200)])
    assert kept["uid"].to_pylist() == ["ok"]
    reasons = dict(zip(dropped["uid"].to_pylist(), dropped["reason"].to_pylist(), strict=True))
    assert reasons == {"html": "image_html", "wide": "aspect_ratio>3", "small": "min_side<200"}


def test_empty_batch_and_bad_parameters():
    empty = ImageFilter().apply(pa.table({"image": pa.array([], pa.binary())}))
    assert empty.batch.num_rows == 0 and {"width", "height", "image_ext"} <= set(empty.batch.column_names)
    with pytest.raises(ValueError, match="formats"):
        ImageFilter(formats=("JPEG", "NOPE"))
    with pytest.raises(ValueError, match="quality"):
        ImageFilter(quality=0)
