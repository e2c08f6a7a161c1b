"""Issue 8, item 1, for `vlforge export`: it replaces only what a vlforge export wrote, never writes into an
input, and a failed export leaves no data.json and no images."""

import json
from pathlib import Path

import pytest
from test_reliability_outdir import caption_input, render_cli

from vlforge.cli import main
from vlforge.shards.fence import STATE_DIR

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    out = tmp_path / "s"
    assert render_cli(caption_input(tmp_path, lines=2), out) == 0
    return out


def export_cli(shards: Path | str, out: Path, *flags: str) -> int:
    return main(["export", "--format", "qwenvl-json", "--input", str(shards), "--out", str(out), *flags])


def user_files(out: Path) -> None:
    (out / "images").mkdir(parents=True)
    (out / "data.json").write_text("my precious data\n")
    (out / "images/000000000.0.jpg").write_text("user image\n")


def assert_user_files(out: Path) -> None:
    assert (out / "data.json").read_text() == "my precious data\n"
    assert (out / "images/000000000.0.jpg").read_text() == "user image\n"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000000.0.jpg"]


def test_export_never_replaces_a_data_json_or_images_it_did_not_write(shards, tmp_path, capsys):
    out = tmp_path / "e2"
    user_files(out)
    assert export_cli(shards, out) == 2
    assert "holds files vlforge did not write (data.json, images)" in capsys.readouterr().err
    assert_user_files(out)
    assert export_cli(shards, out, "--allow-foreign-files") == 2
    assert "data.json was not written by a vlforge export" in capsys.readouterr().err
    assert_user_files(out)


def test_export_into_its_input_is_refused_and_writes_nothing_there(shards, capsys):
    before = sorted(p.relative_to(shards) for p in shards.rglob("*"))
    assert export_cli(shards, shards) == 2
    assert f"--out {shards}: is the input {shards}" in capsys.readouterr().err
    assert export_cli(shards, shards / "qwen") == 2
    assert f"--out {shards / 'qwen'}: is inside the input {shards}" in capsys.readouterr().err
    assert sorted(p.relative_to(shards) for p in shards.rglob("*")) == before


def test_export_reruns_replace_its_own_output_but_not_a_users_edit(shards, tmp_path, capsys):
    out = tmp_path / "qwen"
    assert export_cli(shards, out) == 0
    assert len(json.loads((out / "data.json").read_text())) == 2
    assert export_cli(shards, out) == 0  # its own data.json and images/ are replaced
    records = json.loads((out / "data.json").read_text())
    assert len(records) == 2 and sorted(p.name for p in (out / "images").iterdir()) == ["000000000.0.jpg",
                                                                                         "000000001.0.jpg"]
    (out / "images/notes.txt").write_text("mine\n")  # a user's file in vlforge's folder
    assert export_cli(shards, out) == 2
    assert "images was not written by a vlforge export (or changed since)" in capsys.readouterr().err
    assert (out / "images/notes.txt").read_text() == "mine\n"
    (out / "images/notes.txt").unlink()
    (out / "data.json").write_text("edited by hand\n")
    assert export_cli(shards, out) == 2
    assert (out / "data.json").read_text() == "edited by hand\n"


def test_a_failed_export_leaves_no_partial_images_or_data(shards, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00000.tar").write_bytes(b"not a tar at all" * 64)
    assert main(["export", "--format", "qwenvl-json", "--input", str(next(shards.glob("*.tar"))),
                 str(bad / "00000.tar"), "--out", str(tmp_path / "failed")]) == 2
    assert "vlforge export: error:" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "failed").iterdir()) == [STATE_DIR]  # first sample's image gone too
