"""Issue 8, item 1: vlforge deletes only what it wrote, and never works in a directory that is an input."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES
from test_clean_support import write_recipe

from vlforge.cli import main
from vlforge.shards.manifest import MANIFEST_DIR, read_manifests
from vlforge.shards.outdir import MARKER, OutDirError, Plan, claim_out_dir
from vlforge.shards.units import cleanup_uncommitted
from vlforge.shards.writer import ShardWriter

pytestmark = pytest.mark.usefixtures("ray_local")


def caption_input(tmp_path: Path, lines: int = 3) -> Path:
    src = tmp_path / "in"
    (src / "images").mkdir(parents=True)
    shutil.copy(EXAMPLES / "images/chelsea.jpg", src / "images")
    jsonl = src / "x.jsonl"
    jsonl.write_text("".join(json.dumps({"image": "images/chelsea.jpg", "caption": f"cat {i}"}) + "\n"
                             for i in range(lines)))
    return jsonl


def render_cli(jsonl: Path, out: Path, *flags: str) -> int:
    return main(["render", "--task", "caption", "--input", str(jsonl), "--out", str(out), *flags])


def test_foreign_tars_in_out_are_refused_then_kept_beside_the_run(tmp_path, capsys):
    jsonl = caption_input(tmp_path)
    out = tmp_path / "d"
    out.mkdir()
    (out / "00000.tar").write_text("x\n")
    (out / "family-photos.tar").write_text("x\n")
    assert render_cli(jsonl, out) == 2
    err = capsys.readouterr().err
    assert "holds files vlforge did not write (00000.tar, family-photos.tar)" in err
    assert sorted(p.name for p in out.iterdir()) == ["00000.tar", "family-photos.tar"]  # nothing written

    assert render_cli(jsonl, out, "--allow-foreign-files") == 0
    assert "debris removed 0" in capsys.readouterr().err
    (unit_tar,) = out.glob("caption-x-*.tar")
    (out / MANIFEST_DIR / "caption-x-00000.manifest.parquet").unlink()  # as if killed before its manifest
    assert render_cli(jsonl, out, "--allow-foreign-files") == 0
    assert "debris removed 1" in capsys.readouterr().err  # its own uncommitted tar, nothing else
    assert (out / "00000.tar").read_text() == "x\n" and (out / "family-photos.tar").read_text() == "x\n"
    assert unit_tar.exists() and read_manifests(out).num_rows == 3
    # a marked directory with a foreign file still needs the flag
    assert render_cli(jsonl, out) == 2
    assert "holds files vlforge did not write (00000.tar, family-photos.tar)" in capsys.readouterr().err


def test_a_user_file_named_like_an_unfinished_units_tar_is_refused_not_deleted(tmp_path, capsys):
    jsonl = caption_input(tmp_path)
    out = tmp_path / "s2"
    assert render_cli(jsonl, out, "--lines-per-unit", "1") == 0
    for unit in ("caption-x-00001", "caption-x-00002"):
        (out / MANIFEST_DIR / f"{unit}.manifest.parquet").unlink()  # as if killed before these manifests
    (out / "caption-x-00001-000007.tar").write_text("user data\n")  # a name no run here gave
    (out / "caption-x-00002-000000.tar").write_text("user data\n")  # a user's replacement of vlforge's tar
    assert render_cli(jsonl, out, "--lines-per-unit", "1") == 2
    err = capsys.readouterr().err
    assert "caption-x-00001-000007.tar, caption-x-00002-000000.tar: named like a tar of an unfinished unit" in err
    assert (out / "caption-x-00001-000007.tar").read_text() == (out / "caption-x-00002-000000.tar").read_text()
    assert (out / "caption-x-00001-000000.tar").exists()  # nothing deleted before the refusal
    (out / "caption-x-00001-000007.tar").unlink()
    (out / "caption-x-00002-000000.tar").unlink()
    assert render_cli(jsonl, out, "--lines-per-unit", "1") == 0
    assert "debris removed 1" in capsys.readouterr().err  # vlforge's own unchanged tar of unit 1
    assert read_manifests(out).num_rows == 3


def test_render_out_that_is_or_contains_an_input_is_refused(tmp_path, capsys):
    jsonl = caption_input(tmp_path)
    before = jsonl.read_bytes()
    assert render_cli(jsonl, jsonl) == 2
    assert f"--out {jsonl}: is the input {jsonl}" in capsys.readouterr().err
    assert render_cli(jsonl, jsonl.parent) == 2
    assert f"--out {jsonl.parent}: contains the input {jsonl}" in capsys.readouterr().err
    assert jsonl.read_bytes() == before and sorted(p.name for p in jsonl.parent.iterdir()) == ["images", "x.jsonl"]


def test_clean_out_that_is_or_is_inside_the_input_folder_is_refused(tmp_path, capsys):
    shards = tmp_path / "i2d_dir"
    shards.mkdir()
    (shards / "00000.jsonl").write_text(json.dumps({"url": "http://127.0.0.1:9/a.jpg", "caption": "a cat"}) + "\n")
    (shards / "00000.tar").write_bytes(b"tar bytes of the input")
    recipe = write_recipe(tmp_path / "r.yaml")
    for out, says in ((shards, "is the input"), (shards / "cleaned", "is inside the input")):
        assert main(["clean", "--recipe", str(recipe), "--input", str(shards), "--out", str(out)]) == 2
        assert f"--out {out}: {says} {shards}" in capsys.readouterr().err
    assert sorted(p.name for p in shards.iterdir()) == ["00000.jsonl", "00000.tar"]
    assert (shards / "00000.tar").read_bytes() == b"tar bytes of the input"


def test_cleanup_removes_only_this_plans_uncommitted_files(tmp_path):
    out = tmp_path / "out"
    plan = Plan(key="p", pipeline="test", units=r"u-\d")
    with claim_out_dir(out, plan) as claim:
        with ShardWriter(out, "u-1") as w:
            w.write("s0", {"txt": "x"}, {"uid": "0", "source": "t"})
        (out / MANIFEST_DIR / "u-1.manifest.parquet").unlink()
        mine = out / f".u-2-000000.tar.{claim.fence.token}.tmp"
        mine.write_bytes(b"half a tar")
    out_of_plan = out / "v-1-000000.tar"  # a vlforge-like name of no unit of this run
    unknown_run = out / f".u-3-000000.tar.{'f' * 32}.tmp"  # a token no run of this directory used
    for path in (out_of_plan, unknown_run):
        path.write_bytes(b"not ours")
    removed = cleanup_uncommitted(out, ["u-1", "u-2", "u-3"], claim.tokens)
    assert sorted(removed) == sorted(["u-1-000000.tar", mine.name])
    assert out_of_plan.read_bytes() == unknown_run.read_bytes() == b"not ours"


def test_marker_records_the_plan_and_a_foreign_subfolder_is_refused(tmp_path):
    out = tmp_path / "out"
    plan = Plan(key="p", pipeline="test", units=r"u-\d", fingerprint={"--seed": "1"})
    with claim_out_dir(out, plan) as claim:
        pass
    recorded = json.loads((out / MARKER).read_text())
    assert recorded["plans"]["p"]["fingerprint"] == {"--seed": "1"} and recorded["tokens"] == [claim.fence.token]
    (out / "__thumbs").mkdir()
    (out / "__thumbs/u-1.thumbs.parquet").write_bytes(b"a unit's thumbnails are vlforge's")
    (out / "photos").mkdir()
    (out / MANIFEST_DIR).mkdir()
    (out / MANIFEST_DIR / "notes.txt").write_text("mine")
    with pytest.raises(OutDirError, match=r"did not write \(__manifests/notes.txt, photos\)"), \
            claim_out_dir(out, plan):
        pass
