"""`iter_tar` groups members as webdataset's `group_by_keys` does (consecutive members with one key form a sample),
by `shards.members.split_member`, without importing webdataset (and torch)."""

import io
import tarfile

import pytest
from webdataset.tariterators import group_by_keys, tar_file_expander

from vlforge.shards.reader import ShardReadError, iter_tar

MEMBERS = [
    ("a/000001.jpg", b"j1"), ("a/000001.seg.PNG", b"p1"), ("a/000001.json", b"{}"),
    ("README", b"no extension"), (".hidden.txt", b"no key"), ("a/.x.txt", b"no key"),
    ("000002.txt", b"t2"), ("a/000001.txt", b"again, later"),
]


def write_tar(path, members) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_groups_consecutive_members_by_key(tmp_path):
    url = write_tar(tmp_path / "s.tar", MEMBERS)
    assert list(iter_tar(url)) == [
        {"__key__": "a/000001", "__url__": url, "jpg": b"j1", "seg.png": b"p1", "json": b"{}"},
        {"__key__": "000002", "__url__": url, "txt": b"t2"},
        {"__key__": "a/000001", "__url__": url, "txt": b"again, later"},  # not consecutive: a sample of its own
    ]


def test_same_samples_as_webdataset(tmp_path):
    """One deliberate difference: webdataset's regex turns a hidden file in a folder (`a/.x.txt`) into a sample with
    key `a/`; `split_member` gives it no key, so it is skipped like a hidden file at the top."""
    url = write_tar(tmp_path / "s.tar", [m for m in MEMBERS if m[0] != "a/.x.txt"])
    with open(url, "rb") as stream:
        theirs = [s for s in group_by_keys(tar_file_expander([{"stream": stream, "url": url}])) if "__key__" in s]
    assert list(iter_tar(url)) == theirs


def test_a_repeated_member_is_an_error_naming_the_tar(tmp_path):
    url = write_tar(tmp_path / "d.tar", [("k.txt", b"1"), ("k.txt", b"2")])
    with pytest.raises(ShardReadError, match=r"d\.tar: member k\.txt: a second 'txt' in sample k"):
        list(iter_tar(url))
