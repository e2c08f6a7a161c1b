"""The one-way import rules of ARCHITECTURE.md, checked on the source tree (an AST walk, nothing imported)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlforge"

# What each top-level part of vlforge may import from the others. Lower layers never import upper ones.
ALLOWED = {
    "config": set(),
    "formats": {"config"},
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
}


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
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
    (fake / "formats" / "bad.py").write_text("import ray\nfrom vlforge.pipelines import x\nfrom . import y\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert len(_violations()) == 3


@pytest.mark.parametrize("module", ["vlforge.cli", "vlforge.config", "vlforge.formats", "vlforge.shards",
                                    "vlforge.sources", "vlforge.stats.report", "vlforge.stats.tables"])
def test_light_modules_load_no_heavy_package(module):
    """`vlforge --help` and the data layers must not pay for torch, ray or transformers."""
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'ray', 'transformers', 'open_clip') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing {module} loaded {out}"
