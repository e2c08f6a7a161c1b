"""`make demo`: every stage that exists, chained, on bundled data; prints what each produced.

Everything runs locally; the only network traffic is to servers the demo starts on 127.0.0.1.
"""

import argparse
import shutil
from pathlib import Path

from demo_clean import RECIPE, build_dump, print_funnel
from demo_synthdog import contact_sheet

from vlforge.cli import main as cli
from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.runner import ray_session

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "tasks"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    with ray_session():
        clean_web_dump(args.out)
        synthesize_ocr(args.out)
        render_examples(args.out)
    print(f"\ndemo finished: everything is under {args.out}/")


if __name__ == "__main__":
    main()
