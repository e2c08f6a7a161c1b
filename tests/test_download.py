"""img2dataset downloads behind the guard: every URL ends with bytes or a reason, nothing leaves 127.0.0.1."""

import io

import pytest
from PIL import Image
from test_clean_support import ImageServer, bomb_png, jpeg, only_loopback_connections, photo, sha256

from vlforge.sources.download import DownloadOptions, PixelLimitResizer, download, reason_from_error
from vlforge.sources.spill import Spill


def _options(**kwargs) -> DownloadOptions:
    return DownloadOptions(**{"thread_count": 4, "timeout": 1.0, "allow_loopback": True, **kwargs})


def test_default_policy_refuses_loopback_and_the_server_gets_no_request(tmp_path) -> None:
    with ImageServer() as server, only_loopback_connections():
        urls = [server.add(f"/{i}.jpg", jpeg(photo("astronaut"))) for i in range(3)]
        urls.append(f"http://localhost:{server.port}/0.jpg")
        results = download(urls, DownloadOptions(thread_count=2, timeout=1.0), Spill(tmp_path))
        assert server.requests == []
    assert [r.reason for r in results] == ["blocked_loopback"] * 4
    assert not any(r.stored for r in results)


def test_every_url_ends_with_bytes_or_a_reason_in_input_order(tmp_path) -> None:
    astronaut, coffee = jpeg(photo("astronaut")), jpeg(photo("coffee"))
    with ImageServer() as server, only_loopback_connections():
        urls = [
            server.add("/ok.jpg", astronaut),
            server.add("/gone.jpg", b"", 404),
            server.add("/boom.jpg", b"", 500),
            server.add("/slow.jpg", coffee, delay=2.5),
            server.redirect("/moved.jpg", server.url("/coffee.jpg")),
            server.redirect("/private.jpg", "http://10.1.2.3/x.jpg"),
            server.redirect("/loop.jpg", server.url("/loop.jpg")),
            server.add("/robots.jpg", coffee, headers={"X-Robots-Tag": "noai"}),
            "file:///etc/passwd",
            "http://192.168.7.7/x.jpg",
        ]
        server.add("/coffee.jpg", coffee)
        results = download(urls, _options(), Spill(tmp_path))
    reasons = [r.reason for r in results]
    assert reasons == [None, "http_404", "http_500", "timeout", None, "blocked_private", "too_many_redirects",
                       "robots_disallowed", "bad_url_scheme", "blocked_private"]
    assert results[0].read() == astronaut and results[0].sha256 == sha256(astronaut)
    assert results[4].read() == coffee and results[4].sha256 == sha256(coffee)
    assert "404" in results[1].error


def test_oversized_response_is_refused(tmp_path) -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/huge.jpg", b"\xff" * 4096)
        results = download([url], _options(allow_loopback=True, max_bytes=1024), Spill(tmp_path))
    assert results[0].reason == "too_large"


def test_reencoding_resizes_with_img2dataset(tmp_path) -> None:
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/a.jpg", jpeg(photo("coffee")))
        results = download([url], _options(disable_all_reencoding=False, resize_mode="keep_ratio", image_size=100,
                                           skip_reencode=False), Spill(tmp_path))
    result = results[0]
    assert result.reason is None
    assert (result.original_width, result.original_height) == (600, 400)
    assert (result.width, result.height) == (150, 100)
    assert Image.open(io.BytesIO(result.read())).size == (150, 100)


def test_decompression_bomb_is_refused_before_img2dataset_decodes_it(tmp_path) -> None:
    bomb = bomb_png()
    assert len(bomb) < 2_000_000
    with ImageServer() as server, only_loopback_connections():
        url = server.add("/bomb.png", bomb)
        results = download([url], _options(disable_all_reencoding=False, max_image_pixels=100_000_000),
                           Spill(tmp_path))
    assert results[0].reason == "decode_error"
    assert results[0].error.startswith("decode refused: Image size (2500000000 pixels)")


def test_pixel_limit_resizer_passes_small_images_through() -> None:
    calls = []

    def resizer(stream, bbox):
        calls.append(stream.read())
        return b"out", 1, 1, 2, 2, None

    guarded = PixelLimitResizer(resizer, max_pixels=512 * 512)
    data = jpeg(photo("astronaut"))
    assert guarded(io.BytesIO(data)) == (b"out", 1, 1, 2, 2, None)
    assert calls == [data]
    small = PixelLimitResizer(resizer, max_pixels=100)
    assert small(io.BytesIO(data))[-1] == "decode refused: 512x512 exceeds 100 pixels"
    assert len(calls) == 1


@pytest.mark.parametrize("message, reason", [
    ("HTTP Error 404: Not Found", "http_404"),
    ("HTTP Error 302: The HTTP server returned a redirect error that would lead to an infinite loop.",
     "too_many_redirects"),
    ("<urlopen error vlforge-refused:blocked_private 10.0.0.1 ...>", "blocked_private"),
    ("vlforge-refused:too_large response larger than 10 bytes", "too_large"),
    ("timed out", "timeout"),
    ("<urlopen error timed out>", "timeout"),
    ("The read operation timed out", "timeout"),
    ("<urlopen error [Errno 111] Connection refused>", "connection_refused"),
    ("Use of image disallowed by X-Robots-Tag directive", "robots_disallowed"),
    ("Image decoding error", "decode_error"),
    ("<urlopen error [Errno -2] Name or service not known>", "download_error"),
    (None, "download_error"),
])
def test_reason_from_error(message: str | None, reason: str) -> None:
    assert reason_from_error(message) == reason
