"""`iter_tar` groups members as webdataset's `group_by_keys` does (consecutive members with one key form a sample),
by `shards.members.split_member`, without importing webdataset (and torch)."""

import io
import tarfile

import pytest
from webdataset.tariterators import group_by_keys, tar_file_expander

from vlforge.shards.reader import ShardReadError, iter_tar
from vlforge.sources.dumps.img2dataset import iter_shard_images

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


def test_a_corrupt_header_after_the_first_member_is_an_error_not_the_end(tmp_path):
    """tarfile read as a stream took a bad header past the first member for the end of the archive."""
    url = write_tar(tmp_path / "c.tar", [("k1.txt", b"1"), ("k2.txt", b"2"), ("k3.txt", b"3")])
    raw = bytearray((tmp_path / "c.tar").read_bytes())
    raw[1024] ^= 0x01  # k2.txt's header
    (tmp_path / "c.tar").write_bytes(raw)
    with pytest.raises(ShardReadError, match=r"c\.tar: unreadable or truncated tar \(bad header checksum at byte 1024"):
        list(iter_tar(url))
    with pytest.raises(tarfile.ReadError, match="bad header checksum at byte 1024"):
        list(iter_shard_images(url, ["k2", "k3"]))


def test_shard_images_stop_at_the_last_wanted_key(tmp_path):
    url = write_tar(tmp_path / "i.tar", [("k1.jpg", b"j1"), ("k1.json", b"{}"), ("k2.png", b"p2"), ("k3.jpg", b"j3")])
    (tmp_path / "i.tar").write_bytes((tmp_path / "i.tar").read_bytes()[:3072 + 100])  # cut off in k3.jpg's header
    assert [(key, member.data) for key, member in iter_shard_images(url, ["k2", "k1"])] == [("k1", b"j1"),
                                                                                             ("k2", b"p2")]
