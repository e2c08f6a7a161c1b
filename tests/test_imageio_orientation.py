"""The one EXIF rule (shards/imageio.py): clean turns images upright; render and mix keep the stored orientation,
the frame pixel coordinates of public annotations are measured in, and drop the tag so every reader agrees."""

import io
import json

import pytest
from PIL import Image

from vlforge.filters.image import ImageFilter
from vlforge.pipelines.mix.images import prepare
from vlforge.pipelines.render import render_line
from vlforge.shards.imageio import ImageRejected, decode, exif_orientation

RED, BLUE = (255, 0, 0), (0, 0, 255)


def rotated_jpeg() -> bytes:
    """Stored 40x20, left half red, right half blue, tagged orientation 6: a viewer shows it 20x40."""
    im = Image.new("RGB", (40, 20), RED)
    im.paste(BLUE, (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


def stored(data: bytes) -> tuple[tuple[int, int], int, tuple, tuple]:
    """(size, orientation tag, left pixel, right pixel) of JPEG bytes as a reader without exif_transpose sees them."""
    with Image.open(io.BytesIO(data)) as im:
        rgb, (width, height) = im.convert("RGB"), im.size
        return im.size, exif_orientation(im), rgb.getpixel((width // 8, height // 2)), rgb.getpixel(
            (width - 1 - width // 8, height // 2))


def near(pixel: tuple, color: tuple) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, color, strict=True))


def test_the_fixture_is_what_it_claims():
    size, orientation, left, right = stored(rotated_jpeg())
    assert (size, orientation) == ((40, 20), 6) and near(left, RED) and near(right, BLUE)


def test_render_keeps_stored_orientation_and_drops_the_tag(tmp_path):
    (tmp_path / "a.jpg").write_bytes(rotated_jpeg())
    line = json.dumps({"image": "a.jpg", "expression": "the red half", "box": [0, 0, 20, 20]})
    sample, (image,), meta = render_line(line, tmp_path, "ref_grounding")
    assert meta["sizes"] == [[40, 20]]
    assert sample["segments"][-1]["text"] == "<box>(0,0),(500,999)</box>"  # the red half, left of 40 wide
    size, orientation, left, right = stored(image)
    assert (size, orientation) == ((40, 20), 1) and near(left, RED) and near(right, BLUE)


def test_mix_keeps_stored_orientation_and_drops_the_tag():
    prepared = prepare(rotated_jpeg(), None, 95, False)
    assert (prepared.size, prepared.reencoded) == ((40, 20), True)
    size, orientation, left, right = stored(prepared.data)
    assert (size, orientation) == ((40, 20), 1) and near(left, RED) and near(right, BLUE)


def test_mix_scales_in_stored_orientation():
    prepared = prepare(rotated_jpeg(), 10, 95, False)
    assert prepared.size == (40, 20)  # the source frame, which the record's boxes are in
    size, orientation, left, right = stored(prepared.data)
    assert (size, orientation) == ((10, 5), 1) and near(left, RED) and near(right, BLUE)


def test_clean_turns_the_same_image_upright():
    data, ext, width, height, reason = ImageFilter().check(rotated_jpeg())
    assert (ext, width, height, reason) == ("jpg", 20, 40, None)
    assert stored(data)[:2] == ((20, 40), 1)


def test_an_untagged_rgb_jpeg_passes_through_byte_for_byte(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), RED).save(buf, format="JPEG")
    prepared = prepare(buf.getvalue(), None, 95, False)
    assert (prepared.data, prepared.reencoded) == (buf.getvalue(), False)


@pytest.mark.parametrize("cut", [400, -200])  # in the EXIF header, in the pixel data
def test_decode_refuses_a_cut_off_jpeg_as_undecodable(cut):
    with pytest.raises(ImageRejected) as info:
        decode(rotated_jpeg()[:cut])
    assert info.value.reason == "image_undecodable"
