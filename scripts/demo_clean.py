"""Demo of `vlforge clean`: a small LAION-style dump with planted problems, served on 127.0.0.1, cleaned
with recipes/qwenvl-stage1.yaml, then the funnel: how many rows each stage let through, and why the rest went.

The photographs ship with scikit-image. Private-network URLs are IP literals, which the address guard
refuses before any connection; loopback is allowed for this demo only, so the local server can be reached.

Run: .venv/bin/python scripts/demo_clean.py [--out demo-out/clean]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import shutil
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from skimage import data

from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean, format_summary
from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "qwenvl-stage1.yaml"


def jpeg(arr: np.ndarray) -> bytes:
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_images(www: Path) -> dict[str, bytes]:
    """The files the local server hands out, including the broken ones."""
    images = {
        "astronaut.jpg": jpeg(data.astronaut()), "coffee.jpg": jpeg(data.coffee()), "cat.jpg": jpeg(data.chelsea()),
        "rocket.jpg": jpeg(data.rocket()), "galaxies.jpg": jpeg(data.hubble_deep_field()),
        "camera.jpg": jpeg(data.camera()), "slide.jpg": jpeg(data.immunohistochemistry()),
        "tiny.jpg": jpeg(data.astronaut()[::8, ::8]), "banner.jpg": jpeg(data.rocket()[:100, :]),
        "page.jpg": b"<!DOCTYPE html><html><body><h1>404 - image not found</h1></body></html>",
    }
    good = images["coffee.jpg"]
    middle = len(good) // 2  # the second half of the file overwritten with noise
    images["broken.jpg"] = good[:middle] + np.random.default_rng(0).bytes(len(good) - middle)
    images["cat-mirrored.jpg"] = jpeg(np.ascontiguousarray(data.chelsea()[:, ::-1]))
    images["galaxies-crop.jpg"] = jpeg(data.hubble_deep_field()[:500, :700])
    images["astronaut-mirror.jpg"] = images["astronaut.jpg"]  # same bytes, another address
    for name, payload in images.items():
        (www / name).write_bytes(payload)
    return images


def serve(www: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def laion_rows(base: str) -> tuple[list[tuple], list[tuple]]:
    """(laion-en rows, laion-zh rows): (SAMPLE_ID, URL, TEXT, WIDTH, HEIGHT, similarity)."""
    nan = float("nan")
    en = [
        (1, f"{base}/astronaut.jpg", "Portrait of an astronaut in a white space suit holding a helmet", 512, 512, 0.36),
        (2, f"{base}/coffee.jpg", "<p>A cup of <b>black coffee</b> &amp; a saucer on a wooden table</p>",
         600, 400, 0.35),
        (3, f"{base}/cat.jpg", "A ginger cat lying on the floor and looking up at the camera", 451, 300, 0.34),
        (4, f"{base}/rocket.jpg", "A rocket standing on the launch pad under a clear blue sky", 640, 427, 0.33),
        (5, f"{base}/galaxies.jpg", "Thousands of distant galaxies seen by a space telescope", 1000, 872, 0.37),
        (6, f"{base}/camera.jpg", "A black and white photo of a man with a camera on a tripod", 512, 512, 0.34),
        (7, f"{base}/slide.jpg", "Eine gefärbte Gewebeprobe unter dem Mikroskop im Labor", 512, 512, 0.35),
        (8, f"{base}/slide.jpg?fr", "Une lame de microscope colorée dans un laboratoire de recherche",
         512, 512, 0.35),
        (9, f"{base}/cat.jpg?ja", "床に寝転んでカメラを見上げている茶色の猫", 451, 300, 0.35),
        (10, f"{base}/tiny.jpg", "A tiny thumbnail of an astronaut in a space suit", 64, 64, 0.35),
        (11, f"{base}/banner.jpg", "A very wide banner showing the top of a rocket", 2000, 300, 0.35),
        (12, f"{base}/tiny.jpg?nosize", "A small picture of an astronaut whose size is not listed", nan, nan, 0.35),
        (13, f"{base}/banner.jpg?nosize", "A wide strip cut from a photo of a rocket on its pad", nan, nan, 0.35),
        (14, f"{base}/gone.jpg", "A photo of a lighthouse that the server no longer has", 800, 600, 0.35),
        (15, "http://10.0.0.5/cat.jpg", "A cat on a sofa, hosted inside a private network", 800, 600, 0.35),
        (16, "http://192.168.1.20/dog.jpg", "A dog in a garden, hosted on a home router address", 800, 600, 0.35),
        (17, "http://169.254.169.254/latest/meta-data/", "Not an image: the cloud metadata service", 800, 600, 0.35),
        (18, f"{base}/broken.jpg", "A cup of coffee whose file was damaged in transfer", 600, 400, 0.35),
        (19, f"{base}/page.jpg", "An error page that the server sends instead of an image", 600, 400, 0.35),
        (20, f"{base}/rocket.jpg?low", "best cheap deals buy now free shipping discount", 640, 427, 0.21),
        (21, f"{base}/astronaut.jpg", "The same astronaut address listed a second time", 512, 512, 0.36),
        (22, f"{base}/astronaut-mirror.jpg", "The same astronaut bytes served from a mirror site", 512, 512, 0.36),
        (23, f"{base}/coffee.jpg?name", "IMG_2034.JPG", 600, 400, 0.35),
    ]
    zh = [
        (101, f"{base}/galaxies-crop.jpg", "太空望远镜拍摄的遥远星系", 700, 500, 0.30),
        (102, f"{base}/cat-mirrored.jpg", "一只橘色的猫躺在地板上看着镜头", 451, 300, 0.30),
        (103, f"{base}/rocket.jpg?zh", "A rocket on its launch pad, captioned in English", 640, 427, 0.30),
    ]
    return en, zh


def write_dump(path: Path, rows: list[tuple]) -> None:
    columns = ("SAMPLE_ID", "URL", "TEXT", "WIDTH", "HEIGHT", "similarity")
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(columns)})
    pq.write_table(table, path)


def print_funnel(out: Path, recipe) -> None:
    """Rows left after each stage, in the order the pipeline applies them (from the manifests, with DuckDB)."""
    manifests = str(out / MANIFEST_DIR / f"*{MANIFEST_SUFFIX}")
    dropped = dict(duckdb.sql(f"select stage, count(*) from read_parquet('{manifests}', union_by_name=true) "
                              f"where status = 'dropped' group by stage").fetchall())
    total = duckdb.sql(f"select count(*) from read_parquet('{manifests}', union_by_name=true)").fetchall()[0][0]
    stages = ["read", "dedup", *[s.name for s in recipe.before_download], "download",
              *[s.name for s in recipe.after_download], "dedup_sha256"]
    print(f"\nfunnel ({total} rows in)")
    left = total
    for stage in stages:
        gone = dropped.pop(stage, 0)
        left -= gone
        print(f"  after {stage:<20} {left:>4}   (-{gone})")
    assert not dropped, f"stages missing from the funnel: {dropped}"


def build_dump(work: Path) -> tuple[http.server.ThreadingHTTPServer, list[tuple[str, Path]]]:
    """Write the raw LAION-schema dump and serve its images on 127.0.0.1; returns (server, [(source, file)])."""
    (work / "www").mkdir(parents=True)
    write_images(work / "www")
    server = serve(work / "www")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    en, zh = laion_rows(base)
    write_dump(work / "laion-en.parquet", en)
    write_dump(work / "laion-zh.parquet", zh)
    return server, [("laion-en", work / "laion-en.parquet"), ("laion-zh", work / "laion-zh.parquet")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-out" / "clean")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    server, inputs = build_dump(args.out / "raw")
    recipe = load_recipe(RECIPE, {"download.allow_loopback": True, "num_cpus": 2})
    try:
        report = clean(recipe, args.out / "shards", [(source, str(path)) for source, path in inputs])
    finally:
        server.shutdown()
    print(format_summary(report.summary))
    print_funnel(args.out / "shards", recipe)
    print(f"\nshards and manifests: {args.out / 'shards'}")


if __name__ == "__main__":
    main()
