"""SynthDoG backgrounds open through `shards.imageio` (its formats and pixel cap) and are turned upright."""

import io

import pytest
from PIL import Image

from vlforge.synthdog.images import BadImage, decode, image_files


def test_a_background_is_turned_upright_and_capped(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 200), (255, 0, 0)).save(tmp_path / "r.jpg", exif=exif)
    im = decode(str(tmp_path / "r.jpg"), 100)
    assert (im.mode, im.size) == ("RGB", (50, 100))


def test_formats_outside_the_allow_list_and_bombs_are_bad_images(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.ppm")
    with pytest.raises(BadImage, match=r"a\.ppm: ImageRejected: not one of JPEG"):
        decode(str(tmp_path / "a.ppm"), 100)
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, format="PNG")  # 100 M pixels in a few KB
    (tmp_path / "bomb.png").write_bytes(buf.getvalue())
    with pytest.raises(BadImage, match=r"bomb\.png: ImageRejected: 10000x10000 exceeds 89478485 pixels"):
        decode(str(tmp_path / "bomb.png"), 100)


def test_background_files_are_listed_by_the_shard_image_extensions(tmp_path):
    for name in ("a.JPG", "b.gif", "c.txt", "d.tar", "sub/e.webp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert image_files([str(tmp_path)]) == [str(tmp_path / n) for n in ("a.JPG", "b.gif", "sub/e.webp")]
