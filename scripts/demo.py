"""`make demo`: every stage that exists, chained, on bundled data; prints what each produced.

clean a served web dump -> SynthDoG OCR pages -> render every task -> stage-2 mixture -> train a few dozen steps
and generate -> `vlforge stats` and the HTML report over all of it. Everything runs locally; the only network
traffic is to servers the demo starts on 127.0.0.1.
"""

import argparse
import shutil
from pathlib import Path

from demo_clean import RECIPE, build_dump, print_funnel
from demo_mix import build_mix
from demo_stats import stats_and_report
from demo_synthdog import contact_sheet
from demo_train import train_and_generate

from vlforge.cli import main as cli
from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.executor import executor_session

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "tasks"
MARKER = ".vlforge-demo"  # the demo deletes an output folder only if it made it


def vlforge(*args: str) -> None:
    """Run a CLI command in this process, so every command shares the demo's one Ray instance."""
    print(f"\n$ vlforge {' '.join(args)}", flush=True)
    status = cli(list(args))
    if status:
        raise SystemExit(f"vlforge {args[0]} failed with status {status}")


def render_examples(out: Path) -> None:
    """Render the bundled example of every task into one shard directory, verify it, list it."""
    tasks = out / "tasks"
    for jsonl in sorted(EXAMPLES.glob("*.jsonl")):
        vlforge("render", "--task", jsonl.stem, "--input", str(jsonl), "--out", str(tasks))
    vlforge("shards", "verify", str(tasks))
    vlforge("shards", "ls", str(tasks))
    vlforge("export", "--format", "qwenvl-json", "--input", str(tasks), "--out", str(out / "qwenvl-json"))


def clean_web_dump(out: Path) -> None:
    """A LAION-schema dump of bundled photos with planted bad rows, served on 127.0.0.1, cleaned, funnel printed."""
    server, inputs = build_dump(out / "raw")
    try:
        vlforge("clean", "--recipe", str(RECIPE), "--input", *(f"{source}={path}" for source, path in inputs),
                "--out", str(out / "clean"), "--allow-loopback")
    finally:
        server.shutdown()
    print_funnel(out / "clean", load_recipe(RECIPE, {}))
    vlforge("shards", "verify", str(out / "clean"))


def synthesize_ocr(out: Path) -> None:
    """A few dozen English and Chinese SynthDoG pages, checked, with a contact sheet of their quads."""
    shards = out / "synthdog"
    vlforge("synthdog", "--lang", "en,zh", "--count", "16", "--size", "448", "--seed", "0", "--unit-size", "8",
            "--out", str(shards))
    vlforge("shards", "verify", str(shards))
    sheet = out / "synthdog_contact_sheet.png"
    contact_sheet(shards).save(sheet)
    print(f"contact sheet with every line's quad drawn: {sheet}")


def fresh_out_dir(out: Path) -> None:
    """Start from an empty folder; remove an old one only if an earlier demo made it (never a user's folder)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SystemExit(f"{out} exists and was not made by the demo; pass another --out or remove it yourself")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by scripts/demo.py; `make demo` replaces this folder\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args()
    fresh_out_dir(args.out)
    with executor_session():
        clean_web_dump(args.out)
        synthesize_ocr(args.out)
        render_examples(args.out)
        mix = build_mix(args.out, args.out / "clean", args.out / "synthdog")
    shards = [args.out / "tasks", args.out / "synthdog", args.out / "clean"]
    train_and_generate(args.out, shards)
    stats_and_report([*shards, mix, args.out / "train"], args.out / "report.html")
    print(f"\ndemo finished: everything is under {args.out}/")


if __name__ == "__main__":
    main()
