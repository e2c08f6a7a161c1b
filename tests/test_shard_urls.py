"""`shard_urls`: the one way the trainer, `vlforge tokenize` and evaluation turn patterns into tars."""

import re

import pytest

from vlforge.shards.listing import shard_urls


@pytest.fixture
def tars(tmp_path):
    for name in ("a-000000.tar", "a-000001.tar", "b-000000.tar", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "__manifests").mkdir()
    return tmp_path


def test_directories_globs_braces_and_lists_name_tars_in_order(tars):
    d = str(tars)
    assert shard_urls(d) == [f"{d}/a-000000.tar", f"{d}/a-000001.tar", f"{d}/b-000000.tar"]
    assert shard_urls(f"{d}/*") == [f"{d}/a-000000.tar", f"{d}/a-000001.tar", f"{d}/b-000000.tar"]
    assert shard_urls(f"{d}/a-{{000001..000000}}.tar") == [f"{d}/a-000001.tar", f"{d}/a-000000.tar"]
    assert shard_urls([f"{d}/b-*.tar", f"{d}/a-*.tar"]) == [f"{d}/b-000000.tar", f"{d}/a-000000.tar",
                                                            f"{d}/a-000001.tar"]


def test_each_pattern_must_name_a_tar(tars):
    typo = f"{tars}/c-*.tar"
    with pytest.raises(FileNotFoundError, match=re.escape(f"no shards (*.tar) match {typo!r}")):
        shard_urls([f"{tars}/a-*.tar", typo])
    with pytest.raises(FileNotFoundError, match=re.escape(f"no shards (*.tar) match '{tars}/__manifests'")):
        shard_urls(str(tars / "__manifests"))
    with pytest.raises(FileNotFoundError, match="no shard at"):
        shard_urls(str(tars / "missing.tar"))
