"""The shard writer's standard-library tar: the bytes webdataset's TarWriter writes, without importing it."""

import random
import subprocess
import sys
import tarfile

import webdataset

from vlforge.shards.writer import TarFile


def _key(rng: random.Random, i: int) -> str:
    """Mostly short ASCII keys; some long (over ustar's 100-byte names) or non-ASCII, which need PAX records."""
    kind = rng.random()
    stem = f"{i:04d}_{rng.randrange(10**9):010d}"
    return stem if kind < 0.7 else stem + "x" * rng.randrange(80, 200) if kind < 0.85 else f"{stem}_é字"


def _samples(rng: random.Random) -> list[tuple[str, dict[str, bytes]]]:
    return [(_key(rng, i),
             {"jpg": rng.randbytes(rng.randrange(0, 20000)), "txt": "ü字 caption".encode() * rng.randrange(0, 60),
              "json": b"{}", "seg.png": rng.randbytes(rng.randrange(0, 700))})
            for i in range(rng.randrange(0, 25))]


def test_same_bytes_as_webdataset_tarwriter(tmp_path):
    rng = random.Random(0)
    for trial in range(15):
        samples = _samples(rng)
        theirs = webdataset.TarWriter(str(tmp_path / "wds.tar"), encoder=False, mtime=0.0, user="vlforge",
                                      group="vlforge")
        ours = TarFile(tmp_path / "ours.tar")
        for key, members in samples:
            theirs.write({"__key__": key, **members})
            ours.write(key, members)
        theirs.close()
        ours.close()
        assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "wds.tar").read_bytes(), trial


def test_members_read_back_in_sorted_order(tmp_path):
    tar = TarFile(tmp_path / "a.tar")
    tar.write("k1", {"txt": b"hello", "jpg": b"\xff\xd8abc"})
    tar.close()
    with tarfile.open(tmp_path / "a.tar") as t:
        assert [(m.name, m.size, m.mode, m.uname) for m in t.getmembers()] == [
            ("k1.jpg", 5, 0o444, "vlforge"), ("k1.txt", 5, 0o444, "vlforge")]
        assert t.extractfile("k1.txt").read() == b"hello"


def test_writing_a_shard_imports_neither_webdataset_nor_torch(tmp_path):
    code = ("import sys; from vlforge.shards.writer import ShardWriter\n"
            f"with ShardWriter({str(tmp_path)!r}, 'u') as w:\n"
            "    w.write('a', {'txt': 'x', 'jpg': b'1'}, {'uid': 'a'})\n"
            "print(sorted(m for m in ('torch', 'webdataset') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    with tarfile.open(tmp_path / "u-000000.tar") as t:
        assert t.getnames() == ["a.jpg", "a.txt"]
