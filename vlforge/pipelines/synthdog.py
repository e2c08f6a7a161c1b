"""`vlforge synthdog`: SynthDoG OCR samples written as WebDataset shards, in parallel on Ray, resumable.

Work unit = a contiguous range of sample indices of one language (`synthdog-{lang}-{start:08d}`),
written by one task into its own tar and manifest, committed atomically. Sample i of a seed depends
only on (seed, language, i), so any number of workers gives the same shards, and a killed run
started again with the same command finishes the missing units only.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from vlforge.config import ConfigError, load_model
from vlforge.pipelines.executor import (
    SESSION_KEYS,
    RunReport,
    SessionOptions,
    Unit,
    UnitStats,
    add_session_flags,
    finish,
    give_up_rows,
    run_units,
)
from vlforge.pipelines.fingerprint import plan_fingerprint
from vlforge.shards.outdir import Plan, claim_out_dir
from vlforge.shards.writer import ShardWriter
from vlforge.synthdog.config import SynthConfig, config_dict
from vlforge.synthdog.corpus import LANGUAGES, guess_language, read_source
from vlforge.synthdog.donut import export_donut
from vlforge.synthdog.resources import ResourceReport, load_resources, prepare_resources
from vlforge.synthdog.sample import EmptySample, identity_row, synthesize

log = logging.getLogger(__name__)
DONUT_NAMES = ("donut", ".donut.tmp")  # export_donut's output and its temporary folder


class Recipe(SessionOptions):
    """Every `vlforge synthdog` flag as a recipe key; `synthdog` holds the generator parameters."""

    model_config = ConfigDict(extra="forbid")

    lang: list[Literal["en", "zh"]] = Field(["en", "zh"], min_length=1)
    count: Annotated[int, Field(ge=0)] = 1000  # samples per language
    out: str | None = None
    seed: int = 0
    fonts: list[str] = Field(default_factory=list)
    backgrounds: list[str] = Field(default_factory=list)
    corpus: list[str] = Field(default_factory=list)  # FILE or LANG=FILE; a bare FILE: language from its text
    size: Annotated[int, Field(ge=32, le=8192)] | Literal["variable"] | None = None  # shorthand, see below
    format: Literal["webdataset", "donut"] = "webdataset"
    unit_size: Annotated[int, Field(ge=1)] = 200  # samples per work unit (and per tar)
    allow_foreign_files: bool = False  # write into an `out` holding files vlforge did not write (never deleted)
    synthdog: SynthConfig = SynthConfig()

    @field_validator("lang")
    @classmethod
    def _once_each(cls, langs: list[str]) -> list[str]:
        return list(dict.fromkeys(langs))

    @model_validator(mode="after")
    def _size_shorthand(self) -> Recipe:
        """`size` (the --size flag) sets synthdog.canvas.size; "variable" is None there (SynthDoG's sizes)."""
        if self.size is not None:
            canvas = self.synthdog.canvas.model_copy(update={"size": None if self.size == "variable" else self.size})
            self.synthdog = self.synthdog.model_copy(update={"canvas": canvas})
        return self


def resolve(args: argparse.Namespace) -> Recipe:
    """Recipe file, then command-line flags on top (`vlforge.config.load_model`); errors name file and key."""
    flags = {"lang": args.lang.split(",") if args.lang else None, "count": args.count, "out": args.out,
             "seed": args.seed, "fonts": args.fonts, "backgrounds": args.backgrounds, "corpus": args.corpus,
             **{key: getattr(args, key) for key in SESSION_KEYS}, "format": args.format,
             "unit_size": args.unit_size, "size": args.size, "allow_foreign_files": args.allow_foreign_files}
    recipe = load_model(args.recipe, Recipe, {k: v for k, v in flags.items() if v is not None})
    if recipe.out is None:
        raise ConfigError("out: an output directory is required (--out DIR)")
    return recipe


def split_corpus_entry(entry: str) -> tuple[str | None, str]:
    """`LANG=FILE` -> (LANG, FILE); a bare `FILE` (even one holding `=`) -> (None, FILE)."""
    lang, sep, path = entry.partition("=")
    return (lang, path) if sep and lang in LANGUAGES else (None, entry)


def corpus_sources(entries: list[str]) -> dict[str, list[str]]:
    """`LANG=FILE` or `FILE` (language guessed from the text) -> sources per language."""
    by_lang: dict[str, list[str]] = {}
    for entry in entries:
        lang, path = split_corpus_entry(entry)
        by_lang.setdefault(lang or guess_language(read_source(path)), []).append(path)
    return by_lang


@dataclass(frozen=True)
class SynthdogWork:
    """A synthdog unit's payload: sample indices [start, stop) of one language, the validated config, and the
    resource spec (plain data: each worker loads the fonts and corpora it names once)."""

    out: str
    seed: int
    config: SynthConfig
    resources: dict
    lang: str
    start: int
    stop: int


def make_units(langs: list[str], count: int, unit_size: int, out: str, seed: int, config: SynthConfig,
               resources: dict) -> list[Unit[SynthdogWork]]:
    return [
        Unit(f"synthdog-{lang}-{start:08d}",
             SynthdogWork(out, seed, config, resources, lang, start, min(start + unit_size, count)))
        for lang in langs
        for start in range(0, count, unit_size)
    ]


def process_unit(unit: Unit[SynthdogWork]) -> UnitStats:
    """Generate and commit one unit; a sample that fails becomes a dropped manifest row."""
    p = unit.payload
    t0 = time.process_time()
    config = p.config
    res = load_resources(p.resources, config)  # once per worker process
    load_cpu_s = time.process_time() - t0
    t0 = time.process_time()
    read, kept, unreadable, reasons = 0, 0, 0, Counter()
    with ShardWriter(p.out, prefix=unit.id, max_samples=p.stop - p.start) as writer:
        for index in range(p.start, p.stop):
            read += 1
            row = identity_row(p.lang, p.seed, index)
            try:
                sample = synthesize(p.lang, p.seed, index, config, res)
            except EmptySample as exc:
                writer.drop(row, f"no_text: {exc}", "layout")
                reasons["no_text"] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - one bad sample must not stop the unit
                log.warning("synthdog %s sample %d failed: %s", p.lang, index, exc)
                writer.drop(row, f"{type(exc).__name__}: {exc}", "render")
                reasons[type(exc).__name__] += 1
                continue
            writer.write(sample.key, {"jpg": sample.jpeg, "json": sample.record}, row=sample.row)
            kept += 1
            unreadable += sample.row["unreadable_backgrounds"]
    return UnitStats(unit.id, read=read, kept=kept, dropped=read - kept, reasons=dict(reasons),
                     extra={"lang": p.lang, "unreadable_backgrounds": unreadable, "load_cpu_s": load_cpu_s,
                            "cpu_s": time.process_time() - t0})


def synthdog_plan(recipe: Recipe, config: SynthConfig, resources: dict, corpora: list[str]) -> Plan:
    """Units `synthdog-{lang}-{start}`; every option that changes a sample or a unit's range is fingerprinted."""
    options = {"--seed": recipe.seed, "--unit-size": recipe.unit_size, "--lang": recipe.lang,
               "--count": recipe.count, "synthdog": config_dict(config), "resources": resources}
    return Plan(key="synthdog", pipeline="synthdog", units=r"synthdog-[a-z]+-\d{8}", extras=DONUT_NAMES,
                fingerprint=plan_fingerprint(options, [path for path in corpora if Path(path).is_file()]))


def give_up_unit(unit: Unit[SynthdogWork], cause: str) -> UnitStats:
    """Commit a unit whose worker kept dying: every sample index a dropped row saying why."""
    p = unit.payload
    return give_up_rows(unit, p.out, (identity_row(p.lang, p.seed, i) for i in range(p.start, p.stop)), cause,
                        extra={"lang": p.lang, "unreadable_backgrounds": 0, "load_cpu_s": 0.0, "cpu_s": 0.0})


def synthesize_shards(recipe: Recipe, config: SynthConfig) -> tuple[RunReport, ResourceReport]:
    """Prepare resources, run every missing unit, export Donut's layout when asked."""
    spec, resources = prepare_resources(recipe.lang, config, recipe.fonts or None,
                                        corpus_sources(recipe.corpus), recipe.backgrounds or None)
    out = Path(recipe.out)
    corpora = [split_corpus_entry(entry)[1] for entry in recipe.corpus]
    units = make_units(recipe.lang, recipe.count, recipe.unit_size, str(out), recipe.seed, config, spec)
    with claim_out_dir(out, synthdog_plan(recipe, config, spec, corpora),
                       inputs=[*recipe.fonts, *recipe.backgrounds, *corpora],
                       allow_foreign_files=recipe.allow_foreign_files) as claim:
        report = run_units(units, process_unit, out, **recipe.model_dump(include=set(SESSION_KEYS)),
                           desc="synthdog", claim=claim, give_up=give_up_unit)
        if recipe.format == "donut":
            export_donut(out, out / "donut")
    return report, resources


def summary(report: RunReport, resources: ResourceReport) -> str:
    """Synthdog's own end-of-run lines, after the executor's `report.summary(out)`: per language kept/dropped
    and CPU time, then the resources used."""
    rows = {}
    for stats in report.stats:
        lang = rows.setdefault(stats.extra["lang"], {"kept": 0, "dropped": 0, "cpu_s": 0.0})
        lang["kept"] += stats.kept
        lang["dropped"] += stats.dropped
        lang["cpu_s"] += stats.extra["cpu_s"]
    lines = [f"{'lang':<6}{'kept':>10}{'dropped':>10}{'CPU s/img':>12}"]  # resource loading not included
    for lang, r in sorted(rows.items()):
        per = r["cpu_s"] / max(r["kept"] + r["dropped"], 1)
        lines.append(f"{lang:<6}{r['kept']:>10}{r['dropped']:>10}{per:>12.3f}")
    unreadable = sum(s.extra["unreadable_backgrounds"] for s in report.stats)
    counts = resources.counts()
    chars = ", ".join(f"{lang} {n:,}" for lang, n in resources.corpus_chars.items())
    lines.append(f"corpus characters: {chars}")
    lines.append("fonts: " + ", ".join(f"{lang} {n}" for lang, n in resources.fonts_by_lang.items())
                 + f"; skipped {counts['fonts_skipped']} font faces, {counts['corpora_skipped']} corpora; "
                 f"background photos {counts['backgrounds']}; unreadable background uses {unreadable}")
    return "\n".join(lines)


def _size(text: str) -> int | str:
    if text == "variable":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'variable', got {text!r}") from None


def add_synthdog_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synthdog", help="synthesize SynthDoG OCR samples (text on paper over photos) as WebDataset shards",
        description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", help="YAML recipe (flags override its keys); see recipes/synthdog.yaml")
    parser.add_argument("--lang", help="comma-separated languages: en, zh (default en,zh)")
    parser.add_argument("--count", type=int, help="samples per language (default 1000)")
    parser.add_argument("--out", help="output directory for shards and manifests")
    parser.add_argument("--size", type=_size, help="square output side in pixels (default 448), or "
                                                   "'variable' for SynthDoG's sizes")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--fonts", nargs="+", metavar="DIR", help="font files/directories (TTF/OTF/TTC/OTC)")
    parser.add_argument("--backgrounds", nargs="+", metavar="DIR", help="background image files/directories")
    parser.add_argument("--corpus", nargs="+", metavar="[LANG=]FILE", help="UTF-8 text files per language")
    add_session_flags(parser)
    parser.add_argument("--format", choices=["webdataset", "donut"],
                        help="donut: also export Donut's layout (split/metadata.jsonl) under OUT/donut")
    parser.add_argument("--unit-size", type=int, help="samples per work unit and tar (default 200)")
    parser.add_argument("--allow-foreign-files", action="store_true", default=None,
                        help="write into an --out that holds files vlforge did not write (never deleted)")
    return parser


def run_synthdog(args: argparse.Namespace) -> int:
    """Bad recipes, inputs and failed units raise; `vlforge.cli.main` prints them and exits 2, as for every command."""
    recipe = resolve(args)
    report, resources = synthesize_shards(recipe, recipe.synthdog)
    print(summary(report, resources))
    finish(report, recipe.out)
    return 0
