import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from vlforge.shards.keys import KeyAllocator, sanitize_key
from vlforge.shards.listing import format_listing, list_shards
from vlforge.shards.manifest import read_manifests
from vlforge.shards.reader import expand_shards, iter_samples
from vlforge.shards.units import cleanup_uncommitted, committed_units
from vlforge.shards.verify import verify_dir
from vlforge.shards.writer import ShardWriter


def jpeg(color=(200, 10, 10), size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def write_samples(out: Path, n: int, prefix: str = "u", **limits) -> ShardWriter:
    with ShardWriter(out, prefix, **limits) as w:
        for i in range(n):
            w.write(f"s{i}", {"0.jpg": jpeg(), "json": {"i": i, "task": "caption"}, "txt": f"caption {i}"},
                    {"uid": f"id{i}", "source": "test", "task": "caption"})
        w.drop({"uid": "bad", "source": "test", "task": "caption"}, reason="bad_field:image", stage="render")
    return w


@pytest.mark.parametrize(
    ("key", "expected"),
    [("../etc/passwd", "etc_passwd"), ("a.b.c", "a_b_c"), ("/abs/path", "abs_path"), ("", "sample"),
     ("..", "sample"), ("ok-key_1", "ok-key_1"), ("图片 1", "1")],
)
def test_sanitize_key(key, expected):
    assert sanitize_key(key) == expected


def test_keys_unique_within_shard():
    alloc = KeyAllocator()
    assert [alloc.allocate(k) for k in ["a.b", "a/b", "a_b", "a.b"]] == ["a_b", "a_b_1", "a_b_2", "a_b_3"]


def test_writer_rolls_by_samples_and_manifest_accounts_for_every_sample(tmp_path):
    w = write_samples(tmp_path, 5, max_samples=2)
    assert [p.name for p in w.tars] == ["u-000000.tar", "u-000001.tar", "u-000002.tar"]
    rows = pq.read_table(tmp_path / "__manifests/u.manifest.parquet").to_pylist()
    assert len(rows) == 6
    assert [r["status"] for r in rows].count("kept") == 5
    dropped = [r for r in rows if r["status"] == "dropped"]
    assert dropped == [{"uid": "bad", "source": "test", "status": "dropped", "reason": "bad_field:image",
                        "stage": "render", "tar": None, "key": None, "task": "caption"}]
    assert {(r["tar"], r["key"]) for r in rows if r["key"]} == {
        ("u-000000.tar", "s0"), ("u-000000.tar", "s1"), ("u-000001.tar", "s2"), ("u-000001.tar", "s3"),
        ("u-000002.tar", "s4")}


def test_writer_rolls_by_bytes(tmp_path):
    w = write_samples(tmp_path, 6, max_bytes=4000)
    assert len(w.tars) > 1
    for tar in w.tars:
        with tarfile.open(tar) as t:
            members = t.getmembers()
        payload = sum(m.size + 512 for m in members)
        assert payload <= 4000 or len(members) == 3  # a single oversized sample still gets its own tar


def test_same_samples_same_bytes(tmp_path):
    write_samples(tmp_path / "a", 4)
    write_samples(tmp_path / "b", 4)
    assert (tmp_path / "a/u-000000.tar").read_bytes() == (tmp_path / "b/u-000000.tar").read_bytes()


def test_reader_forms(tmp_path):
    write_samples(tmp_path, 5, max_samples=2)
    tars = [str(tmp_path / f"u-{i:06d}.tar") for i in range(3)]
    assert expand_shards(str(tmp_path)) == tars
    assert expand_shards(str(tmp_path / "u-{000000..000001}.tar")) == tars[:2]
    assert expand_shards(tars[2:]) == tars[2:]
    assert expand_shards(f"file://{tmp_path}/u-000001.tar") == [f"file://{tmp_path}/u-000001.tar"]
    samples = list(iter_samples(f"file://{tmp_path}"))
    assert [s["__key__"] for s in samples] == ["s0", "s1", "s2", "s3", "s4"]
    assert json.loads(samples[3]["json"])["i"] == 3
    with pytest.raises(FileNotFoundError):
        expand_shards(str(tmp_path / "missing.tar"))


def test_loads_with_webdataset(tmp_path):
    import webdataset as wds

    write_samples(tmp_path, 5, max_samples=2)
    ds = wds.WebDataset(str(tmp_path / "u-{000000..000002}.tar"), shardshuffle=False).decode("pil")
    samples = list(ds)
    assert [s["__key__"] for s in samples] == ["s0", "s1", "s2", "s3", "s4"]
    assert samples[0]["0.jpg"].size == (32, 24)
    assert samples[4]["json"]["i"] == 4
    assert samples[2]["txt"] == "caption 2"


def test_loads_with_ray_data(tmp_path, ray_local):
    import ray

    write_samples(tmp_path, 5, max_samples=2)
    rows = ray.data.read_webdataset(str(tmp_path), decoder=None).take_all()
    assert sorted(r["__key__"] for r in rows) == ["s0", "s1", "s2", "s3", "s4"]
    by_key = {r["__key__"]: r for r in rows}
    assert json.loads(by_key["s1"]["json"])["i"] == 1


def test_loads_with_hf_datasets(tmp_path, tmp_path_factory):
    from datasets import load_dataset

    write_samples(tmp_path, 5, max_samples=2)
    # the bare directory: datasets skips `__manifests/`
    ds = load_dataset("webdataset", data_dir=str(tmp_path), split="train",
                      cache_dir=str(tmp_path_factory.mktemp("hf-cache")))
    assert ds.num_rows == 5
    assert sorted(ds["__key__"]) == ["s0", "s1", "s2", "s3", "s4"]
    assert ds[0]["0.jpg"].size == (32, 24)
    assert ds[0]["json"]["task"] == "caption"


def test_verify_ok_and_listing(tmp_path):
    write_samples(tmp_path, 5, max_samples=2)
    report = verify_dir(tmp_path)
    assert report.ok, report.problems
    assert (report.tars, report.samples, report.manifest_rows) == (3, 5, 6)
    infos = list_shards(tmp_path)
    assert [(i.name, i.samples, dict(i.tasks)) for i in infos] == [
        ("u-000000.tar", 2, {"caption": 2}), ("u-000001.tar", 2, {"caption": 2}),
        ("u-000002.tar", 1, {"caption": 1})]
    assert infos[0].bytes == (tmp_path / "u-000000.tar").stat().st_size
    total_bytes = sum(p.stat().st_size for p in tmp_path.glob("*.tar"))
    lines = format_listing(infos).splitlines()
    assert lines[1].split() == ["u-000000.tar", "2", str(infos[0].bytes), "caption=2"]
    assert lines[-1].split() == ["total", "(3", "shards)", "5", str(total_bytes), "caption=5"]


def test_verify_finds_truncation_missing_members_orphans_and_bad_images(tmp_path):
    write_samples(tmp_path, 5, max_samples=2)
    tar0 = tmp_path / "u-000000.tar"
    tar0.write_bytes(tar0.read_bytes()[:1500])  # truncated in the middle of a member
    (tmp_path / "orphan-000000.tar").write_bytes((tmp_path / "u-000001.tar").read_bytes())
    with tarfile.open(tmp_path / "u-000002.tar", "w") as tar:  # replace s4 by a sample with a broken image
        for name, data in [("s9.0.jpg", b"\xff\xd8not a jpeg"), ("s9.json", b"{broken")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / ".u-000003.tar.tmp").write_bytes(b"partial")
    report = verify_dir(tmp_path)
    text = "\n".join(report.problems)
    assert not report.ok
    assert "u-000000.tar: unreadable or truncated tar" in text
    assert "orphan-000000.tar: tar not listed in any manifest" in text
    assert "u-000002.tar: s9.0.jpg: does not decode" in text
    assert "u-000002.tar: s9.json: does not decode" in text
    assert "u-000002.tar: sample s4 in the manifest but not in the tar" in text
    assert "u-000002.tar: sample s9 in the tar but not in the manifest" in text
    assert any(".u-000003.tar.tmp" in w for w in report.warnings)


def test_verify_finds_a_tar_cut_between_two_members(tmp_path):
    write_samples(tmp_path, 2)
    tar_path = tmp_path / "u-000000.tar"
    with tarfile.open(tar_path) as tar:
        cut = tar.getmember("s1.json").offset  # s0 whole, s1 without its json: every member reads fine
    tar_path.write_bytes(tar_path.read_bytes()[:cut])
    report = verify_dir(tmp_path)
    assert report.problems == ["u-000000.tar: unreadable or truncated tar (no end-of-archive marker: cut off "
                               "between two members)"]


def test_abort_on_exception_commits_nothing(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, "u", max_samples=2) as w:
        for i in range(3):
            w.write(f"s{i}", {"txt": "x"}, {"uid": str(i), "source": "t"})
        raise RuntimeError("boom")
    assert committed_units(tmp_path) == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u-000000.tar"]  # finished, but uncommitted
    assert cleanup_uncommitted(tmp_path, ["u"]) == ["u-000000.tar"]
    assert list(tmp_path.iterdir()) == []


KILL_SCRIPT = """
import sys, time
from vlforge.shards.writer import ShardWriter
out, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with ShardWriter(out, "u", max_samples=3) as w:
    for i in range(n):
        w.write(f"s{i}", {"bin": bytes([i % 256]) * 20000, "json": {"i": i}}, {"uid": str(i), "source": "t"})
        time.sleep(delay)
"""


def test_killed_writer_never_leaves_partial_tar_under_final_name(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out), "1000", "0.01"])
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("u-*.tar"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finals = sorted(out.glob("u-*.tar"))
    temps = list(out.glob(".*.tmp"))
    assert len(finals) >= 2 and temps, "the writer must have been killed mid-shard"
    assert not (out / "__manifests/u.manifest.parquet").exists()
    for tar in finals:  # every tar under a final name reads to the end with all 3 samples
        with tarfile.open(tar) as t:
            assert len(t.getnames()) == 6
    assert not verify_dir(out).ok  # uncommitted tars are reported
    removed = cleanup_uncommitted(out, ["u"])
    assert sorted(removed) == sorted(p.name for p in finals + temps)
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), "7", "0"], check=True)
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "clean"), "7", "0"], check=True)
    for name in ["u-000000.tar", "u-000001.tar", "u-000002.tar"]:
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert verify_dir(out).ok
    assert read_manifests(out).num_rows == 7
    assert not list(out.glob(".*")) and not list(out.glob("__manifests/.*"))  # no temp files left


def test_importing_shards_loads_neither_torch_nor_ray():
    code = ("import sys; import vlforge.shards.writer, vlforge.shards.reader, vlforge.shards.verify; "
            "assert not any(m in sys.modules for m in ('torch', 'ray')), 'heavy import'; print('light')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "light\n"
