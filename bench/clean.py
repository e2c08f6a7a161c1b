"""`vlforge clean` end to end against Data-Juicer and a plain loop, on metadata, at scale, and on 1 vs 2 workers.

1. End to end on already-downloaded shards: img2dataset writes webdataset shards here (it downloads
   scikit-image photographs, cropped and resized to 64-1024 px a side, from a 127.0.0.1 server), with
   captions in six languages carrying HTML, links, mojibake and a few one-word or empty ones, and 0.5%
   truncated JPEGs. The same operations run three ways, each as a whole command in its own process
   session, alternating, median of `--repeats` runs:
   - `vlforge clean` with bench/clean-equivalent.yaml (caption cleanup, >= 2 words, 5-1000 characters,
     aspect <= 3 and shorter side >= 200 on the image header's sizes, decode validation, the same bounds on
     the decoded sizes; no dedup, no language step) on 2 CPUs, on its
     default private local Ray and, as vlforge-processes, with --executor processes (no Ray);
   - Data-Juicer 1.6.1 (`dj-process`, default executor, np=2) with fix_unicode_mapper, clean_html_mapper,
     clean_links_mapper, whitespace_normalization_mapper, text_length_filter (5-1000),
     words_num_filter (>= 2), image_aspect_ratio_filter (1/3-3) and image_shape_filter (>= 200 both
     sides), reading a JSONL with the same images extracted to files beforehand (not timed). It runs from
     its own virtual environment, /tmp/djvenv by default (`--dj-python`), and is skipped with a message
     when that is absent:
         python3 -m venv /tmp/djvenv && /tmp/djvenv/bin/pip install py-data-juicer==1.6.1 aiohttp ftfy selectolax
   - a plain one-process Python loop: the same readers and filter chain without the header steps (every
     image decoded, as the issue defines it), tars
     written with webdataset's TarWriter (no Ray, units, manifests or dedup). Its kept set must be vlforge's:
     the bench stops, naming the difference, when it is not.
   Reported: samples/s (input samples over whole-command wall clock, in runs that nothing samples), peak RSS
   and PSS summed over every process of the command (one more run per tool, sampled every 0.2 s), kept counts
   and how the kept sets differ, and vlforge's fixed cost (command start to the first committed unit's
   manifest, last manifest to exit).
   Where the kept sets differ on purpose: vlforge counts each CJK character as a word (Data-Juicer's
   whitespace tokenizer counts a Chinese or Japanese caption as one word and drops it), removes bare
   domains, file names and camera stems and unescapes HTML entities before counting, and drops images
   that do not decode (Data-Juicer reads only the header for sizes, so a truncated JPEG passes).
2. 1,000,000 metadata rows (LAION schema) through the same recipe in a subprocess; peak memory is the
   sum over the driver, the Ray workers and Ray's own daemons, sampled from /proc (RSS, and PSS, which
   counts shared pages once). Rows that survive the metadata and caption filters point at private
   addresses, which the guard refuses before connecting: nothing is downloaded, nothing leaves the host.
   Baseline, same run: one Python loop over the parquet batches with the same filter chain.
3. Scale (`--parts scale`): `vlforge clean` (2 CPUs) once per size of `--scale` (default 20,000, 200,000 and
   1,000,000 samples). The larger inputs are not generated: the 1000-sample tar/parquet pairs of `--data` are
   hard-linked in turn under new shard numbers into a temporary folder (no extra disk). The bench recipe has
   no dedup, so repeated content is processed like new content. Reported per size: samples/s over the whole
   command, the unit-phase rate (below), peak RSS and PSS summed over every process, and the fixed costs;
   the smallest size is the baseline of each figure, so the ratios show whether throughput holds and memory
   stays flat as the input grows. Each size's output is deleted once measured (about 30 GB at 1M), the
   links at the end.
4. Workers (`--parts workers`): `vlforge clean --executor processes` on `--data` with --num-cpus 1 and
   --num-cpus 2, alternating, median of `--repeats` runs each (not on Ray: there the driver also works on
   units while Ray starts in a first run, a third process that blurs one worker against two). The unit
   phase is measured from the committed manifests' modification
   times: the least-squares slope of input samples committed so far against commit time. It leaves out
   Ray's start and stop, planning, worker start-up and the first units' own work (fixed costs, reported
   by parts 1 and 3), and unlike units / (last commit - first commit) it does not depend on whether the two
   workers commit in step. Needs at least three units per run (one unit per 1000-sample shard here).

Run: .venv/bin/python bench/clean.py [--parts e2e,scale,workers,metadata] [--samples 20000] [--repeats 5]
         [--rows 1000000] [--scale 20000,200000,1000000] [--data DIR]
     (--parts defaults to e2e,metadata; --data keeps the generated shards in DIR and reuses them on the next
     run, and parts 3 and 4 read theirs from it; --rows 0 skips part 2; --before DIR measures the vlforge
     package in DIR too (a checkout: `git worktree add DIR REV`), as vlforge-before, alternating with the
     others in part 1, with DIR/bench/clean-equivalent.yaml when it has one). For example:
         .venv/bin/python bench/clean.py --parts scale --data /tmp/clean-bench-data
         .venv/bin/python bench/clean.py --parts workers --repeats 5 --data /tmp/clean-bench-data
     Part 3 needs the bench's temporary folder (TMPDIR) on the filesystem of --data, for the hard links.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from demo_clean import serve  # the same static server on 127.0.0.1 the demo uses
from jsonline import report
from measure import Measured, fixed_cost, gib, run_measured, unit_rate

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "qwenvl-stage1.yaml"
EQUIVALENT = Path(__file__).resolve().parent / "clean-equivalent.yaml"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"  # img2dataset imports albumentations, which phones home otherwise
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
WORDS = {
    "adj": ["red", "blue", "green", "small", "large", "old", "new", "wooden", "bright", "dark", "quiet", "busy"],
    "noun": ["cat", "dog", "house", "car", "tree", "boat", "bird", "chair", "table", "flower", "bicycle", "lamp"],
    "place": ["morning", "evening", "park", "garden", "city", "beach", "river", "market", "kitchen"],
}
# Captions in other languages (a few per language, numbered so each is distinct)
PHRASES = {
    "de": ["Eine gefärbte Gewebeprobe unter dem Mikroskop", "Ein rotes Fahrrad vor einem alten Haus"],
    "fr": ["Une tasse de café noir sur une table en bois", "Un chat roux allongé sur le sol"],
    "es": ["Un cohete en la plataforma de lanzamiento", "Una calle tranquila por la mañana"],
    "zh": ["一只橘色的猫躺在地板上看着镜头", "太空望远镜拍摄的遥远星系"],
    "ja": ["床に寝転んでカメラを見上げている茶色の猫", "木のテーブルの上のブラックコーヒー"],
}


def caption(rng: np.random.Generator, i: int) -> str:
    pick = {k: rng.choice(v, size=2) for k, v in WORDS.items()}
    return (f"A {pick['adj'][0]} {pick['noun'][0]} next to a {pick['adj'][1]} {pick['noun'][1]} "
            f"in the {pick['place'][0]}, photo {i}")


def mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1252 (Latin-1 where 1252 has no character): what ftfy undoes."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in text.encode("utf-8"))


def noisy_caption(rng: np.random.Generator, i: int) -> str:
    """A web caption: 60% English, the rest in five languages; 15% HTML, 15% links, 10% mojibake, 5% junk."""
    lang = rng.choice(["en", *PHRASES], p=[0.6, 0.08, 0.08, 0.08, 0.08, 0.08])
    text = caption(rng, i) if lang == "en" else f"{rng.choice(PHRASES[lang])} {i}"
    noise = rng.random()
    if noise < 0.15:
        text = f"<p>{text.replace(' ', ' <b>', 1)}</b> &amp; more</p>"
    elif noise < 0.30:
        text = f"{text} https://example.com/photos/{i}?ref=feed or www.example.org/p/{i}"
    elif noise < 0.40:
        text = mojibake(f"“{text}” — café")
    elif noise < 0.45:
        text = str(rng.choice([f"IMG_{i:05d}.JPG", "photo", "<br/>", "Katze"]))
    return text


# ---------------------------------------------------------------- 1. end to end on img2dataset shards


def make_photos(folder: Path, n: int, rng: np.random.Generator) -> None:
    """Distinct JPEGs: a random crop of a photograph resized to 64-1024 px a side; 0.5% cut in half."""
    from PIL import Image
    from skimage import data

    sources = [Image.fromarray(getattr(data, name)()) for name in PHOTOS]
    for i in range(n):
        src = sources[i % len(sources)]
        x0, y0 = rng.integers(0, src.width // 3), rng.integers(0, src.height // 3)
        width, height = (int(v) for v in rng.integers(64, 1025, size=2))
        box = (int(x0), int(y0), int(x0 + src.width // 2), int(y0 + src.height // 2))
        path = folder / f"{i}.jpg"
        src.resize((width, height), Image.BILINEAR, box=box).save(path, quality=90)
        if rng.random() < 0.005:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def make_shards(tmp: Path, n: int, per_shard: int) -> Path:
    from img2dataset import download

    rng = np.random.default_rng(0)
    (tmp / "www").mkdir()
    make_photos(tmp / "www", n, rng)
    server = serve(tmp / "www")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pq.write_table(pa.table({"url": [f"{base}/{i}.jpg" for i in range(n)],
                             "caption": [noisy_caption(rng, i) for i in range(n)]}), tmp / "list.parquet")
    download(url_list=str(tmp / "list.parquet"), input_format="parquet", url_col="url", caption_col="caption",
             output_folder=str(tmp / "shards"), output_format="webdataset", processes_count=1, thread_count=16,
             number_sample_per_shard=per_shard, resize_mode="no", disable_all_reencoding=True, timeout=10,
             enable_wandb=False)
    server.shutdown()
    return tmp / "shards"


def make_dj_input(shards: Path, folder: Path) -> Path:
    """Data-Juicer's input: one JSONL line per image of the shards, the image extracted to a file."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for name, member in members.items():
                if not name.endswith(".jpg"):
                    continue
                key = name[: -len(".jpg")]
                image = folder / "images" / name
                image.write_bytes(tar.extractfile(member).read())
                text = tar.extractfile(members[f"{key}.txt"]).read().decode("utf-8")
                lines.append(json.dumps({"key": key, "text": text, "images": [str(image)]}, ensure_ascii=False))
    (folder / "input.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "input.jsonl"


def dj_config(data: Path, out: Path) -> Path:
    ops = [
        {"fix_unicode_mapper": {}},
        {"clean_html_mapper": {}},
        {"clean_links_mapper": {}},
        {"whitespace_normalization_mapper": {}},
        {"text_length_filter": {"min_len": 5, "max_len": 1000}},
        {"words_num_filter": {"min_num": 2, "max_num": sys.maxsize}},
        {"image_aspect_ratio_filter": {"min_ratio": 1 / 3, "max_ratio": 3.0}},
        {"image_shape_filter": {"min_width": 200, "min_height": 200}},
    ]
    config = {"project_name": "vlforge-bench", "dataset_path": str(data), "export_path": str(out / "kept.jsonl"),
              "np": 2, "text_keys": "text", "image_key": "images", "use_cache": False, "open_tracer": False,
              "process": ops}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def baseline_loop(recipe, source: str, shards: Path, out: Path) -> int:
    """The same reading, filters and tar writing, in one process, one shard after another; every image decoded
    (the recipe's header steps, which only drop earlier what the decoded sizes drop, are left out)."""
    import webdataset

    from vlforge.filters.base import run_filters
    from vlforge.pipelines.clean.recipe import make_filter
    from vlforge.sources.dumps.img2dataset import read_shard_images
    from vlforge.sources.dumps.readers import list_inputs, read_range

    before = [make_filter(s) for s in recipe.source_steps(source, "before_download")]
    after = [make_filter(s) for s in recipe.source_steps(source, "after_download")
             if s.op != "image_header" and s.params.get("width_col") != "header_width"]
    files = list_inputs([(source, str(shards))], {source: recipe.sources[source].overrides()})
    out.mkdir()
    kept = 0
    for f in files:
        table = pa.concat_tables(list(read_range(f)))
        table, _ = run_filters(table.filter(pc.equal(table["status"], "success")), before)
        images = read_shard_images(f.companion, table["key"].to_pylist())
        table = table.append_column("image", pa.array([images.get(k) for k in table["key"].to_pylist()]))
        table, _ = run_filters(table, after)
        with webdataset.TarWriter(str(out / f"{f.file_index:05d}.tar"), encoder=False) as tar:
            for r in table.to_pylist():
                meta = {"uid": r["uid"], "url": r["url"], "width": r["width"], "height": r["height"],
                        "lang": r.get("lang")}
                tar.write({"__key__": r["uid"], r["image_ext"]: r["image"], "txt": r["caption"].encode(),
                           "json": json.dumps(meta).encode()})
        kept += table.num_rows
    return kept


def run_loop(shards: str, out: str) -> None:
    """Subprocess entry: the plain loop; prints the kept keys."""
    from vlforge.pipelines.clean.recipe import load_recipe

    recipe = load_recipe(EQUIVALENT)
    kept = baseline_loop(recipe, "bench", Path(shards), Path(out))
    print(json.dumps({"kept": kept}))


def kept_keys(tool: str, out: Path) -> set[str]:
    """The img2dataset keys a tool kept (from its own output)."""
    if tool == "data-juicer":
        with open(out / "kept.jsonl", encoding="utf-8") as fh:
            return {json.loads(line)["key"] for line in fh if line.strip()}
    if tool.startswith("vlforge"):
        from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX

        table = pa.concat_tables([pq.read_table(p, columns=["status", "uid"]) for p in
                                  (out / MANIFEST_DIR).glob(f"*{MANIFEST_SUFFIX}")], promote_options="permissive")
        return set(table.filter(pc.equal(table["status"], "kept"))["uid"].to_pylist())
    keys = set()
    for tar_path in out.glob("*.tar"):
        with tarfile.open(tar_path) as tar:
            keys |= {m.name.split(".", 1)[0] for m in tar.getmembers()}
    return keys


def shard_rows(shards: Path) -> int:
    """Input samples (rows of the img2dataset parquets, downloaded or not) in a shard folder."""
    return sum(pq.read_metadata(p).num_rows for p in shards.glob("*.parquet"))


def ensure_shards(data: Path, samples: int) -> Path:
    """`data`/shards, generated with `samples` samples when absent; refused when it holds another number."""
    shards = data / "shards"
    if not shards.exists():
        data.mkdir(parents=True, exist_ok=True)
        make_shards(data, samples, per_shard=1000)
    found = shard_rows(shards)
    if found != samples:
        raise SystemExit(f"{data} holds shards for {found} samples, not --samples {samples}; use another --data")
    return shards


def vlforge_argv(shards: Path, out: Path, cpus: int, executor: str | None = "ray", recipe: Path = EQUIVALENT
                 ) -> list[str]:
    return [str(Path(sys.executable).parent / "vlforge"), "clean", "--recipe", str(recipe), "--input",
            f"bench={shards}", "--out", str(out), "--num-cpus", str(cpus),
            *(["--executor", executor] if executor else [])]


def bench_end_to_end(tmp: Path, shards: Path, samples: int, repeats: int, dj_python: Path,
                     before: Path | None) -> None:
    data = shards.parent
    tools = {
        "vlforge": lambda out: vlforge_argv(shards, out, 2),
        "vlforge-processes": lambda out: vlforge_argv(shards, out, 2, "processes"),
        "loop": lambda out: [sys.executable, __file__, "--run-loop", str(shards), str(out)],
    }
    if before:  # another copy of the package, first on the path of the command and of its Ray workers; with its
        # own bench recipe when it has one (it may predate ops and flags this one uses)
        recipe = before / "bench" / EQUIVALENT.name
        tools["vlforge-before"] = lambda out: vlforge_argv(shards, out, 2, None, recipe if recipe.exists()
                                                           else EQUIVALENT)
    if dj_python.exists():
        if not (data / "dj" / "input.jsonl").exists():
            make_dj_input(shards, data / "dj")
        tools["data-juicer"] = lambda out: [str(dj_python), "-m", "data_juicer.tools.process_data", "--config",
                                            str(dj_config(data / "dj" / "input.jsonl", out))]
    else:
        print(f"Data-Juicer baseline skipped: no {dj_python} (python3 -m venv /tmp/djvenv && /tmp/djvenv/bin/pip "
              f"install py-data-juicer==1.6.1 aiohttp ftfy selectolax)")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp / "hf-cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    runs: dict[str, list[Measured]] = {name: [] for name in tools}
    fixed: dict[str, list[tuple[float, float]]] = {}
    kept: dict[str, set[str]] = {}
    names = list(tools)
    memory: dict[str, Measured] = {}

    def run_tool(name: str, out: Path, sample_memory: bool) -> Measured:
        extra = {"PYTHONPATH": str(before)} if name == "vlforge-before" else {}
        run = run_measured(tools[name](out), {**env, **extra}, cwd=tmp,  # not the checkout: Ray puts the driver's
                           sample_memory=sample_memory)  # working directory on its workers' path, ahead of PYTHONPATH
        kept[name] = kept_keys(name, out)
        if name.startswith("vlforge") and not sample_memory:
            fixed.setdefault(name, []).append(fixed_cost(run, out))
        subprocess.run(["rm", "-rf", str(out)], check=True)  # our own output, gone before the next run
        return run

    for r in range(repeats):  # timed runs: nothing samples /proc meanwhile (see measure.run_measured)
        for name in names[r % len(names):] + names[: r % len(names)]:  # alternate who goes first
            run = run_tool(name, tmp / f"{name}-{r}", sample_memory=False)
            runs[name].append(run)
            detail = ""
            if name in fixed:
                ray = re.search(r"ray start ([0-9.]+)s, stop ([0-9.]+)s", run.stderr)
                detail = (f"; first unit committed at {fixed[name][-1][0]:.1f} s, exit {fixed[name][-1][1]:.1f} s "
                          f"after the last" + (f", Ray start {ray[1]} s, stop {ray[2]} s" if ray else ""))
            print(f"  round {r + 1} {name}: {samples / run.seconds:,.0f} samples/s ({run.seconds:.1f} s), "
                  f"kept {len(kept[name])}{detail}", flush=True)
    for name in names:  # one more run each, with memory sampled, for the peaks only
        memory[name] = run_tool(name, tmp / f"{name}-memory", sample_memory=True)
        print(f"  memory run {name}: peak RSS {gib(memory[name].peak_rss):.2f} GiB, "
              f"PSS {gib(memory[name].peak_pss):.2f} GiB", flush=True)
    rate = {name: samples / statistics.median(r.seconds for r in rs) for name, rs in runs.items()}
    rss = {name: gib(memory[name].peak_rss) for name in runs}
    pss = {name: gib(memory[name].peak_pss) for name in runs}
    print(f"\nend to end, {samples:,} img2dataset samples, 2 CPUs, median of {repeats} alternating runs:")
    print(f"  {'tool':<14} {'samples/s':>10} {'vs DJ':>6} {'vs loop':>8} {'kept':>6} {'RSS GiB':>8} {'PSS GiB':>8}")
    for name in runs:
        vs_dj = f"{rate[name] / rate['data-juicer']:.2f}x" if "data-juicer" in rate else "-"
        print(f"  {name:<14} {rate[name]:>10,.0f} {vs_dj:>6} {rate[name] / rate['loop']:>7.2f}x "
              f"{len(kept[name]):>6} {rss[name]:>8.2f} {pss[name]:>8.2f}")
    first = {name: statistics.median(f[0] for f in fs) for name, fs in fixed.items()}
    last = {name: statistics.median(f[1] for f in fs) for name, fs in fixed.items()}
    for name in fixed:
        print(f"  {name} fixed cost: start to first committed unit {first[name]:.1f} s, "
              f"last unit to exit {last[name]:.1f} s")
    if kept["vlforge"] != kept["loop"]:
        raise SystemExit(f"vlforge and the loop kept different sets: only vlforge "
                         f"{sorted(kept['vlforge'] - kept['loop'])[:5]}, only the loop "
                         f"{sorted(kept['loop'] - kept['vlforge'])[:5]}")
    print(f"  vlforge and the loop kept the same {len(kept['loop'])} samples")
    if "data-juicer" in kept:
        ours, theirs = kept["vlforge"], kept["data-juicer"]
        print(f"  kept by both {len(ours & theirs)}, only vlforge {len(ours - theirs)}, "
              f"only Data-Juicer {len(theirs - ours)} (the rules that differ on purpose: see this file's docstring)")
    for ours in ("vlforge", "vlforge-processes"):
        for name in runs:
            if name in ("vlforge", "vlforge-processes") or (name == "vlforge-before" and ours != "vlforge"):
                continue  # each executor against the baselines; the default Ray one also against --before
            prefix = "end_to_end" if ours == "vlforge" else "end_to_end_processes"
            report("clean", f"{prefix}_samples_per_s_vs_{name.replace('-', '_')}", rate[ours], "samples/s",
                   rate[name])
            report("clean", f"{prefix}_peak_rss_gib_vs_{name.replace('-', '_')}", rss[ours], "GiB", rss[name])
    report("clean", "end_to_end_processes_first_unit_s", first["vlforge-processes"], "s", first["vlforge"])
    report("clean", "end_to_end_processes_exit_after_last_unit_s", last["vlforge-processes"], "s", last["vlforge"])
    if "vlforge-before" in first:  # a figure only against a baseline from the same run
        report("clean", "end_to_end_first_unit_s", first["vlforge"], "s", first["vlforge-before"])
        report("clean", "end_to_end_exit_after_last_unit_s", last["vlforge"], "s", last["vlforge-before"])


# ---------------------------------------------------------------- 3. scale and 4. workers, vlforge alone


@dataclass
class CleanRun:
    samples: int
    run: Measured
    first_unit_s: float  # command start to the first committed unit
    exit_s: float  # last committed unit to exit
    unit_rate: float | None  # input samples/s while units commit (measure.unit_rate)


def clean_once(shards: Path, out: Path, cpus: int, cwd: Path, sample_memory: bool = True,
               executor: str = "ray") -> CleanRun:
    """One measured `vlforge clean` of the bench recipe; its output is deleted once read."""
    run = run_measured(vlforge_argv(shards, out, cpus, executor), cwd=cwd,  # not the checkout: Ray puts the driver's
                       sample_memory=sample_memory)  # working directory on its workers' path
    first, last = fixed_cost(run, out)
    measured = CleanRun(shard_rows(shards), run, first, last, unit_rate(out))
    subprocess.run(["rm", "-rf", str(out)], check=True)  # vlforge's own output, gone before the next run
    return measured


def link_shards(shards: Path, folder: Path, samples: int) -> Path:
    """`samples` / 1000 shards whose tar/parquet pairs are hard links to `shards`' pairs, taken in turn: no
    extra disk, and repeated content costs what new content does under a recipe without dedup."""
    sources = sorted(shards.glob("*.parquet"))
    if samples % 1000 or any(pq.read_metadata(p).num_rows != 1000 for p in sources):
        raise SystemExit(f"--scale {samples}: sizes are built from whole 1000-sample shards of --data")
    folder.mkdir(parents=True)
    for i in range(samples // 1000):
        for ext in (".parquet", ".tar"):
            try:
                os.link(sources[i % len(sources)].with_suffix(ext), folder / f"{i:05d}{ext}")
            except OSError as e:
                raise SystemExit(f"cannot hard-link {shards} into {folder} ({e}): put TMPDIR on the same "
                                 f"filesystem as --data") from e
    return folder


def bench_scale(tmp: Path, shards: Path, sizes: list[int]) -> None:
    results: dict[int, CleanRun] = {}
    try:
        for size in sizes:
            folder = link_shards(shards, tmp / "links" / str(size), size)
            r = results[size] = clean_once(folder, tmp / f"out-{size}", 2, tmp)
            print(f"  {size:,} samples: {size / r.run.seconds:,.0f} samples/s ({r.run.seconds:.1f} s), peak RSS "
                  f"{gib(r.run.peak_rss):.2f} GiB, PSS {gib(r.run.peak_pss):.2f} GiB", flush=True)
    finally:
        subprocess.run(["rm", "-rf", str(tmp / "links")], check=True)
    print(f"\nscale, vlforge clean on 2 CPUs, img2dataset shards hard-linked from {shards} (one run per size):")
    print(f"  {'samples':>9} {'seconds':>8} {'samples/s':>10} {'unit s/s':>9} {'RSS GiB':>8} {'PSS GiB':>8} "
          f"{'first unit s':>13} {'exit s':>7}")
    for size, r in results.items():
        unit = f"{r.unit_rate:,.0f}" if r.unit_rate else "-"
        print(f"  {size:>9,} {r.run.seconds:>8.1f} {size / r.run.seconds:>10,.0f} {unit:>9} "
              f"{gib(r.run.peak_rss):>8.2f} {gib(r.run.peak_pss):>8.2f} {r.first_unit_s:>13.1f} {r.exit_s:>7.1f}")
    base = results[sizes[0]]
    for size, r in results.items():
        report("clean", f"scale_samples_per_s_{size}", size / r.run.seconds, "samples/s", sizes[0] / base.run.seconds)
        if r.unit_rate and base.unit_rate:
            report("clean", f"scale_unit_samples_per_s_{size}", r.unit_rate, "samples/s", base.unit_rate)
        report("clean", f"scale_peak_rss_gib_{size}", gib(r.run.peak_rss), "GiB", gib(base.run.peak_rss))
        report("clean", f"scale_peak_pss_gib_{size}", gib(r.run.peak_pss), "GiB", gib(base.run.peak_pss))
        report("clean", f"scale_first_unit_s_{size}", r.first_unit_s, "s", base.first_unit_s)
        report("clean", f"scale_exit_after_last_unit_s_{size}", r.exit_s, "s", base.exit_s)


def bench_workers(tmp: Path, shards: Path, repeats: int) -> None:
    runs: dict[int, list[CleanRun]] = {1: [], 2: []}
    for r in range(repeats):
        for cpus in (1, 2) if r % 2 == 0 else (2, 1):  # alternate who goes first
            run = clean_once(shards, tmp / f"workers-{cpus}-{r}", cpus, tmp, sample_memory=False,
                             executor="processes")
            if run.unit_rate is None:
                raise SystemExit("workers: fewer than three units in a run, no unit-phase rate; use more --samples")
            runs[cpus].append(run)
            print(f"  round {r + 1} --num-cpus {cpus}: unit phase {run.unit_rate:,.0f} samples/s, whole command "
                  f"{run.samples / run.run.seconds:,.0f} samples/s ({run.run.seconds:.1f} s)", flush=True)
    unit = {cpus: statistics.median(run.unit_rate for run in rs) for cpus, rs in runs.items()}
    whole = {cpus: statistics.median(run.samples / run.run.seconds for run in rs) for cpus, rs in runs.items()}
    print(f"\nworkers, vlforge clean on {shards}, median of {repeats} alternating runs:")
    for cpus in runs:
        print(f"  --num-cpus {cpus}: unit phase {unit[cpus]:,.0f} samples/s, whole command {whole[cpus]:,.0f} "
              f"samples/s")
    print(f"  2 vs 1: unit phase {unit[2] / unit[1]:.2f}x, whole command {whole[2] / whole[1]:.2f}x")
    report("clean", "workers_scaling_2_vs_1", unit[2], "samples/s", unit[1])


# ---------------------------------------------------------------- 2. one million metadata rows


def make_metadata(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        ids = np.arange(start, start + n)
        table = pa.table({
            "SAMPLE_ID": ids,
            "URL": [f"http://10.{i % 250}.{(i // 250) % 250}.7/{i}.jpg" for i in ids],
            "TEXT": [caption(rng, i) for i in ids],
            "WIDTH": rng.integers(64, 2048, n).astype(np.float64),
            "HEIGHT": rng.integers(64, 2048, n).astype(np.float64),
            "similarity": rng.uniform(0.26, 0.40, n),
        })
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=50_000)
    writer.close()


def baseline_metadata(path: str) -> None:
    """Subprocess entry: the recipe's before-download chain over the parquet, batch by batch, one process."""
    from vlforge.filters.base import run_filters
    from vlforge.pipelines.clean.recipe import load_recipe, make_filter
    from vlforge.sources.dumps.readers import list_inputs, read_range

    recipe = load_recipe(RECIPE)
    chain = [make_filter(s) for s in recipe.source_steps("laion-en", "before_download")]
    kept = 0
    for f in list_inputs([("laion-en", path)], {}):
        for batch in read_range(f, batch_size=5000):
            survivors, _ = run_filters(batch.filter(pc.is_null(batch["read_error"])), chain)
            kept += survivors.num_rows
    print(json.dumps({"kept": kept}))


def bench_metadata(tmp: Path, rows: int) -> None:
    path = tmp / "laion.parquet"
    make_metadata(path, rows)
    base = run_measured([sys.executable, __file__, "--baseline-metadata", str(path)])
    base_s, base_rss, base_pss = base.seconds, base.peak_rss, base.peak_pss
    cli = ("import argparse, sys; from vlforge.pipelines.clean.run import add_clean_parser, run_clean; "
           "p = argparse.ArgumentParser(); add_clean_parser(p.add_subparsers()); "
           "sys.exit(run_clean(p.parse_args(sys.argv[1:])))")
    ours = run_measured([sys.executable, "-c", cli, "clean", "--recipe", str(RECIPE), "--input", f"laion-en={path}",
                         "--out", str(tmp / "meta-out"), "--num-cpus", "2"])
    ours_s, rss, pss, err = ours.seconds, ours.peak_rss, ours.peak_pss, ours.stderr
    # the same rows survive the metadata and caption steps both ways: vlforge's reach the download, which refuses
    from vlforge.shards.manifest import read_manifests

    manifests = read_manifests(tmp / "meta-out")
    reached = pc.sum(pc.equal(manifests["stage"], "download")).as_py() or 0
    assert reached == json.loads(base.stdout.splitlines()[-1])["kept"], (reached, base.stdout[-200:])
    start, stop = (float(x) for x in re.search(r"ray start ([0-9.]+)s, stop ([0-9.]+)s", err).groups())
    print(f"{rows:,} metadata rows, whole commands: {rows / ours_s:,.0f} rows/s on Ray (2 CPUs; Ray start "
          f"{start:.1f} s and stop {stop:.1f} s included), plain loop {rows / base_s:,.0f} rows/s; {reached:,} rows "
          f"reach the download both ways; peak memory driver+workers+Ray daemons RSS {gib(rss):.2f} GiB, "
          f"PSS {gib(pss):.2f} GiB (plain loop RSS {gib(base_rss):.2f} GiB)")
    report("clean", "metadata_rows_per_s", rows / ours_s, "rows/s", rows / base_s)
    report("clean", "metadata_peak_rss_gib", gib(rss), "GiB", gib(base_rss))
    report("clean", "metadata_peak_pss_gib", gib(pss), "GiB", gib(base_pss))


PARTS = ("e2e", "scale", "workers", "metadata")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="e2e,metadata",
                        help=f"comma-separated parts to run, of {','.join(PARTS)} (default e2e,metadata)")
    parser.add_argument("--samples", type=int, default=20000, help="img2dataset samples in --data's shards")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs per tool or worker count (median)")
    parser.add_argument("--data", type=Path, help="keep the generated shards here and reuse them")
    parser.add_argument("--dj-python", type=Path, default=Path("/tmp/djvenv/bin/python"),
                        help="the Python of a venv with py-data-juicer==1.6.1 (skipped when absent)")
    parser.add_argument("--before", type=Path, help="a folder holding another vlforge package (e.g. an older "
                        "commit's checkout), measured as vlforge-before in the same run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="metadata rows for the memory run (0: skip)")
    parser.add_argument("--scale", default="20000,200000,1000000",
                        help="sample counts of the scale part, smallest first (the baseline of the others)")
    parser.add_argument("--baseline-metadata", help=argparse.SUPPRESS)
    parser.add_argument("--run-loop", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_metadata:
        baseline_metadata(args.baseline_metadata)
        return
    if args.run_loop:
        run_loop(*args.run_loop)
        return
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"--parts: unknown {sorted(unknown)}; choose from {','.join(PARTS)}")
    sizes = sorted(int(n) for n in args.scale.split(","))
    with tempfile.TemporaryDirectory(prefix="vlforge-bench-clean-") as tmp:
        folder = {part: Path(tmp) / part for part in PARTS}
        if {"e2e", "scale", "workers"} & set(parts):
            shards = ensure_shards(args.data or Path(tmp) / "data", args.samples)
        for part in parts:
            folder[part].mkdir()
        if "e2e" in parts:
            bench_end_to_end(folder["e2e"], shards, args.samples, args.repeats, args.dj_python, args.before)
        if "scale" in parts:
            bench_scale(folder["scale"], shards, sizes)
        if "workers" in parts:
            bench_workers(folder["workers"], shards, args.repeats)
        if "metadata" in parts and args.rows:
            bench_metadata(folder["metadata"], args.rows)


if __name__ == "__main__":
    main()
