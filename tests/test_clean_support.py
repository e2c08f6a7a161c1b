"""Shared pieces for the cleaning tests: a 127.0.0.1 image server, image makers, dump writers.

Nothing here sends a packet anywhere but 127.0.0.1: the server binds there, and
`only_loopback_connections` turns any other connect() attempt of this process into an error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import io
import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from skimage import data as skdata

# img2dataset imports albumentations, which otherwise asks pypi.org for its version on import
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "qwenvl-stage1.yaml"
_STRICT = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _STRICT.is_set():
        address = args[1]
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1"):
            raise OSError(f"test safety net: connect to {address!r} attempted")


sys.addaudithook(_audit)


@contextlib.contextmanager
def only_loopback_connections() -> Iterator[None]:
    """Fail any connect() of this process to an address other than 127.0.0.1 while the block runs."""
    _STRICT.set()
    try:
        yield
    finally:
        _STRICT.clear()


# ---------------------------------------------------------------- server


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_length: bool = True


class ImageServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving fixed routes and logging every request path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path, Route(b"not found", 404))
                time.sleep(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.content_length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(route.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", status: int = 200, **kwargs: object) -> str:
        self.routes[path] = Route(body, status, **kwargs)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.add(path, b"", status, headers={"Location": location})


# ---------------------------------------------------------------- images


def jpeg(arr: np.ndarray, quality: int = 90, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality, **save)
    return buf.getvalue()


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def photo(name: str, width: int | None = None, height: int | None = None) -> np.ndarray:
    """A skimage sample photograph, optionally resized (RGB uint8)."""
    arr = getattr(skdata, name)()
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if width and height:
        arr = np.asarray(Image.fromarray(arr).resize((width, height)))
    return arr


def exif_rotated_jpeg(width: int, height: int) -> bytes:
    """Stored width x height, EXIF orientation 6: viewers show it height x width (rotated 90 degrees)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(photo("astronaut", width, height), exif=exif.tobytes())


def bomb_png(side: int = 50_000) -> bytes:
    """A real side x side 1-bit PNG of zeros (~2.5 G pixels) that compresses to a few hundred KB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- dumps


def write_laion(path: Path, rows: list[dict], row_group_size: int | None = None) -> Path:
    """A LAION-schema parquet (SAMPLE_ID, URL, TEXT, WIDTH, HEIGHT, similarity) from dicts with those keys."""
    columns = {
        "SAMPLE_ID": pa.array([r["SAMPLE_ID"] for r in rows], pa.int64()),
        "URL": pa.array([r["URL"] for r in rows], pa.string()),
        "TEXT": pa.array([r["TEXT"] for r in rows], pa.string()),
        "HEIGHT": pa.array([r.get("HEIGHT") for r in rows], pa.float64()),
        "WIDTH": pa.array([r.get("WIDTH") for r in rows], pa.float64()),
        "similarity": pa.array([r.get("similarity", 0.4) for r in rows], pa.float64()),
    }
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def write_recipe(path: Path, **overrides: object) -> Path:
    """A small one-source recipe in the qwenvl-stage1 style, with `overrides` merged at the top level."""
    import yaml

    recipe = {
        "name": "test",
        "rows_per_unit": 4,
        "download": {"allow_loopback": True, "timeout": 2, "thread_count": 4},
        "sources": {"web": {"schema": "auto"}},
        "before_download": [
            {"op": "aspect_ratio", "max_ratio": 3.0, "missing": "keep"},
            {"op": "image_size", "min_side": 64, "max_pixels": None, "missing": "keep"},
            {"op": "clip_score", "thresholds": 0.28},
            {"op": "caption", "min_words": 2, "min_chars": 5},
            {"op": "language", "keep": ["en"]},
        ],
        "after_download": [
            {"op": "image"},
            {"op": "aspect_ratio", "name": "aspect_ratio_real", "max_ratio": 3.0},
            {"op": "image_size", "name": "image_size_real", "min_side": 64, "max_pixels": None},
        ],
        "shards": {"max_samples": 3},
    }
    recipe.update(overrides)
    path.write_text(yaml.safe_dump(recipe))
    return path


def cli_command(*args: str) -> list[str]:
    """The clean CLI exactly as vlforge.cli wires it (add_clean_parser + run_clean), as a subprocess argv."""
    code = ("import argparse, sys; from vlforge.pipelines.clean.run import add_clean_parser, run_clean; "
            "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='command', required=True); "
            "add_clean_parser(s); sys.exit(run_clean(p.parse_args(sys.argv[1:])))")
    return [sys.executable, "-c", code, "clean", *args]


def parse_clean_args(*args: str) -> argparse.Namespace:
    from vlforge.pipelines.clean.run import add_clean_parser

    parser = argparse.ArgumentParser()
    add_clean_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["clean", *args])


def manifest_rows(out: Path) -> list[dict]:
    from vlforge.shards.manifest import list_manifests

    return [row for path in list_manifests(out) for row in pq.read_table(path).to_pylist()]


def by_uid(out: Path) -> dict[str, dict]:
    rows = manifest_rows(out)
    uids = [r["uid"] for r in rows]
    assert len(uids) == len(set(uids)), "a uid has more than one manifest row"
    return {r["uid"]: r for r in rows}


def tar_samples(out: Path) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} over every tar of the output directory."""
    from vlforge.shards.reader import iter_samples

    samples = {}
    for sample in iter_samples(str(out)):
        key = sample.pop("__key__")
        sample.pop("__url__", None)
        assert key not in samples, f"key {key} appears in two tars"
        samples[key] = sample
    return samples


def sample_json(samples: dict[str, dict[str, bytes]], key: str) -> dict:
    return json.loads(samples[key]["json"])
