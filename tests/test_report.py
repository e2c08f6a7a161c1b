"""`vlforge report`: one self-contained HTML page, checked as markup and loaded in headless Chromium.

The browser test needs Debian's `chromium` (`apt-get install -y chromium`, which .ci/run does) and the
playwright package (dev extra); elsewhere it skips and says which is missing.
"""

import io
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stats_support import XSS_CAPTION, clean_shards, eval_dir, pipeline_outputs, run_cli, stats_json, train_dir

from vlforge.stats.report import GENERATOR

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class Page(HTMLParser):
    """The parts of the page the tests look at: sections, tables, charts, grids, every URL."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[tuple[int, str], list[list[str]]] = {}
        self.charts: list[tuple[int, str, str]] = []
        self.grids: list[tuple[int, str, str | None, int]] = []  # section, kind, reason, images
        self.urls: list[str] = []
        self.scripts = 0
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.urls.extend(v for k, v in attrs if k in ("src", "href") and v)
        section = len(self.sections) - 1
        if tag == "script":
            self.scripts += 1
        elif tag == "section":
            self.sections.append(a["data-pipeline"])
        elif tag == "table":
            self._table = self.tables.setdefault((section, a["data-table"]), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img" and "chart" in a.get("class", ""):
            self.charts.append((section, a["data-chart"], a["src"]))
        elif tag == "div" and a.get("class", "").startswith("grid"):
            self.grids.append((section, a["class"].split()[1], a.get("data-reason"), 0))
        elif tag == "img" and self.grids and self.grids[-1][0] == section:
            s, kind, reason, n = self.grids[-1]
            self.grids[-1] = (s, kind, reason, n + 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    built = pipeline_outputs(tmp_path_factory.getbasetemp() / "stats-pipelines")
    dirs = [clean_shards(tmp / "clean"), built["render"], built["synthdog"], train_dir(tmp / "run"),
            eval_dir(tmp / "eval")]
    out = tmp / "out" / "report.html"
    assert run_cli_plain("report", *map(str, dirs), "--out", str(out), "--images", "5") == 0
    return {"dirs": dirs, "out": out, "page": Page(out.read_text(encoding="utf-8"))}


def run_cli_plain(*args: str) -> int:
    from vlforge.cli import main

    return main(list(args))


@pytest.mark.slow  # shares the real render and synthdog runs with test_stats
def test_page_has_every_part_and_nothing_remote(report):
    page = report["page"]
    assert page.sections == ["clean", "render", "synthdog", "train", "eval"]
    assert page.scripts == 0
    assert all(url.startswith("data:image/") for url in page.urls)
    charts = {(s, name) for s, name, _ in page.charts}
    assert {(0, "funnel"), (0, "aspect_ratio"), (0, "shorter_side"), (0, "clip_score"), (0, "caption_chars"),
            (1, "funnel"), (1, "tasks"), (2, "lines_per_image"), (2, "chars_per_line"), (3, "training")} <= charts
    for _, _, uri in page.charts:
        assert uri.startswith("data:image/png;base64,") and len(uri) > 2000
    grids = {(s, kind, reason): n for s, kind, reason, n in page.grids}
    assert grids[0, "kept", None] == 5 and grids[2, "kept", None] == 5
    assert 1 <= grids[1, "kept", None] <= 5  # render wrote one tar per input file; a report reads three at most
    assert grids[0, "dropped", "min_side<64"] == 3 and grids[0, "dropped", "aspect_ratio>3"] == 3
    assert not any(kind == "dropped" for s, kind, _ in grids if s == 1)  # render's bad lines have no images
    assert grids[4, "worst", "ref_grounding"] == 2  # both referring expressions, with their images
    head, *rows = page.tables[4, "evaluation"]
    assert head[:4] == ["benchmark", "metric", "score", "count"] and [r[:4] for r in rows] == [
        ["ref_grounding", "grounding", "0", "2"]]  # the stand-in answers the whole image: IoU < 0.5 for both


@pytest.mark.slow
def test_tables_in_the_page_are_the_stats_tables(report, capsys):
    page, clean = report["page"], report["dirs"][0]
    [row] = stats_json(capsys, clean)["funnel"]
    head, *rows = page.tables[0, "funnel"]
    assert head[:6] == ["pipeline", "source", "read", "kept", "dropped", "retention_pct"]
    assert rows == [["clean", "web", "12", "6", "6", "50", "en 100%"]] and (row["read"], row["kept"]) == (12, 6)
    head, *rows = page.tables[3, "task_loss"]
    assert head[:2] == ["task", "evals"] and [r[:2] for r in rows] == [["caption", "4"], ["ocr", "4"]]


@pytest.mark.slow
def test_captions_are_text_and_reports_are_replaced_only_when_ours(report, tmp_path, capsys):
    text = report["out"].read_text(encoding="utf-8")
    assert XSS_CAPTION not in text and "&lt;script&gt;document.title=" in text
    assert GENERATOR in text
    out = tmp_path / "r.html"
    for images in ("1", "2"):  # the second run replaces the first one's report
        code, _, err = run_cli(capsys, "report", str(report["dirs"][0]), "--out", str(out), "--images", images)
        assert code == 0, err
        assert [kind for _, kind, _, n in Page(out.read_text(encoding="utf-8")).grids if kind == "kept"] == ["kept"]
        assert [g[3] for g in Page(out.read_text(encoding="utf-8")).grids if g[1] == "kept"] == [int(images)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left


def find_browser() -> str | None:
    return os.environ.get("VLFORGE_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)


@pytest.mark.slow
def test_page_in_headless_chromium(report, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium found (Debian: apt-get install -y chromium; or set VLFORGE_CHROMIUM)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    problems, requests = [], []
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            tab = chromium.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(report["out"].as_uri(), wait_until="load")
            loaded = tab.evaluate("""() => {
                const ok = (img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
                const grid = (sel) => [...document.querySelectorAll(sel)].map(
                    (g) => [g.dataset.reason || '', g.querySelectorAll('img').length,
                            [...g.querySelectorAll('img')].every(ok)]);
                return {charts: [...document.querySelectorAll('img.chart')].map((i) => [i.dataset.chart, ok(i)]),
                        kept: grid('.grid.kept'), dropped: grid('.grid.dropped'), worst: grid('.grid.worst'),
                        evaluation: [...document.querySelectorAll('section[data-pipeline="eval"] '
                                                                  + 'table[data-table="evaluation"] td')]
                                    .map((td) => td.textContent),
                        evalText: document.querySelector('section[data-pipeline="eval"]').innerText,
                        title: document.title,
                        height: document.body.scrollHeight};
            }""")
            shot = tmp_path / "report.png"
            tab.screenshot(path=str(shot), full_page=True)
        finally:
            chromium.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert loaded["title"] == "vlforge report"  # the hostile caption's script never ran
    assert len(loaded["charts"]) >= 10 and all(ok for _, ok in loaded["charts"]), loaded["charts"]
    assert [n > 0 for _, n, _ in loaded["kept"]] == [True] * 3 and all(ok for *_, ok in loaded["kept"])
    assert sorted(r for r, _, _ in loaded["dropped"]) == ["aspect_ratio>3", "min_side<64"]
    assert all(n == 3 and ok for _, n, ok in loaded["dropped"])
    assert loaded["worst"] == [["ref_grounding", 2, True]]  # the eval section's images decoded in the browser
    assert loaded["evaluation"][:4] == ["ref_grounding", "grounding", "0", "2"]
    assert "the cat's left eye" in loaded["evalText"] and "(0,0),(1000,1000)" in loaded["evalText"]
    with Image.open(io.BytesIO(shot.read_bytes())) as im:
        assert im.width == 1280 and im.height >= loaded["height"] > 900
        assert np.asarray(im.convert("L")).std() > 10  # drawn, not blank


def test_training_run_alone(tmp_path, capsys):
    run = train_dir(tmp_path / "run")
    code, _, err = run_cli(capsys, "report", str(run), "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    page = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert page.sections == ["train"] and [name for _, name, _ in page.charts] == ["training"]
    head, *rows = page.tables[0, "training"]
    assert head[:3] == ["steps", "last_step", "last_loss"] and rows[0][:3] == ["20", "20", "2"]


def test_images_zero_leaves_out_the_kept_grid(tmp_path, capsys):
    clean = clean_shards(tmp_path / "clean")
    code, _, err = run_cli(capsys, "report", str(clean), "--out", str(tmp_path / "r.html"), "--images", "0")
    assert code == 0, err
    page = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert [kind for _, kind, _, _ in page.grids] == ["dropped", "dropped"]
    assert Path(tmp_path / "r.html").stat().st_size > 10_000


def test_a_cut_tar_is_a_note_not_a_failure(tmp_path, capsys):
    clean = clean_shards(tmp_path / "clean")
    first = sorted(clean.glob("*.tar"))[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 3])
    code, _, err = run_cli(capsys, "report", str(clean), "--out", str(tmp_path / "r.html"), "--images", "6")
    assert code == 0, err
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f'<p class="none">not shown: {first.name}: ' in text and "unreadable or truncated tar" in text
    kept = [n for _, kind, _, n in Page(text).grids if kind == "kept"]
    assert len(kept) == 1 and 2 <= kept[0] < 6  # the intact tar's two samples, and what preceded the cut
