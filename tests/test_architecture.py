"""The one-way import rules of ARCHITECTURE.md, checked on the source tree (an AST walk, nothing imported)."""

import ast
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlforge"

# What each top-level part of vlforge may import from the others. Lower layers never import upper ones.
ALLOWED = {
    "config": set(),
    "formats": {"config", "shards"},  # the member-name rule and image extensions (shards.members); never back
    "shards": {"config"},
    "sources": {"config", "formats", "shards"},
    "filters": {"config", "formats", "shards"},
    "synthdog": {"config", "formats", "shards"},
    "pipelines": {"config", "formats", "shards", "sources", "filters", "synthdog"},
    "training": {"config", "formats", "shards"},
    "evaluation": {"config", "formats", "shards", "training"},
    "stats": {"config", "formats", "shards", "evaluation"},  # reads eval outputs; stays light (test below)
    "cli": {"config", "formats", "shards", "sources", "filters", "synthdog", "pipelines", "training", "evaluation",
            "stats"},
}
# Heavy third-party packages and the only parts allowed to import them.
HEAVY = {
    "ray": {"pipelines"},
    "torch": {"filters", "training", "evaluation"},
    "open_clip": {"filters", "training"},
    "transformers": {"training", "evaluation"},
    "webdataset": set(),  # shards are read with shards.reader (webdataset pulls in torch); only tests use it
}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "vlforge":  # `from vlforge import pipelines`
            found += [(node.lineno, f"vlforge.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "<relative>"))
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        if part in ("__init__", "__main__"):
            continue
        where = path.relative_to(PACKAGE.parent)
        for line, module in _imports(path):
            top, _, rest = module.partition(".")
            if module == "<relative>":
                bad.append(f"{where}:{line}: relative import (use absolute vlforge.* imports)")
            elif top == "vlforge" and rest:  # a bare `import vlforge` (the version) is fine everywhere
                target = rest.split(".")[0]
                if target == "cli":
                    bad.append(f"{where}:{line}: imports vlforge.cli (nothing may)")
                elif target != part and target not in ALLOWED.get(part, set()):
                    bad.append(f"{where}:{line}: {part} may not import vlforge.{target}")
            elif top == "vlforge":
                continue
            elif top in HEAVY and part not in HEAVY[top]:
                bad.append(f"{where}:{line}: {part} may not import {top}")
    return bad


def test_every_part_is_in_the_rule_table():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED (and to ARCHITECTURE.md)"


def test_imports_flow_one_way():
    assert _violations() == []


def test_rule_checker_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself must fail on a violation, or the test above proves nothing."""
    fake = tmp_path / "vlforge"
    (fake / "formats").mkdir(parents=True)
    (fake / "formats" / "bad.py").write_text("import ray\nfrom vlforge.pipelines import x\nfrom . import y\n"
                                             "from vlforge import cli, stats\nimport webdataset\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert [v.split(": ", 1)[1] for v in _violations()] == [
        "formats may not import ray", "formats may not import vlforge.pipelines",
        "relative import (use absolute vlforge.* imports)", "imports vlforge.cli (nothing may)",
        "formats may not import vlforge.stats", "formats may not import webdataset"]


LIGHT = ["vlforge.cli", "vlforge.config", "vlforge.formats.sample", "vlforge.shards.reader", "vlforge.shards.listing",
         "vlforge.shards.imageio", "vlforge.sources.dumps.readers", "vlforge.sources.download",
         "vlforge.sources.annotations", "vlforge.stats.report", "vlforge.stats.tables"]
LOADED = "; heavy = [m for m in ('torch', 'ray', 'transformers', 'open_clip', 'webdataset') if m in sys.modules]"


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_load_no_heavy_package(module):
    """`vlforge --help` and the data layers must not pay for torch, ray, transformers or webdataset."""
    code = f"import sys, {module}{LOADED}; print(','.join(heavy))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loaded {out}"


def test_reading_a_shard_loads_no_heavy_package(tmp_path):
    """Export, stats, the donut export and eval read tars with `iter_tar`: grouping members must not load torch."""
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        for name, data in (("k1.json", b"{}"), ("k1.txt", b"a"), ("k2.txt", b"b")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    code = (f"import sys; from vlforge.shards.reader import iter_tar; keys = [s['__key__'] for s in "
            f"iter_tar({str(tmp_path / 'a.tar')!r})]{LOADED}; print(keys, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['k1', 'k2'] []"
