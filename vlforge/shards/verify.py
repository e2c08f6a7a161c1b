"""`vlforge shards verify`: every tar complete, members match the manifest, JSON parses, images decode."""

import json
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vlforge.shards.atomic import is_temp
from vlforge.shards.imageio import open_image
from vlforge.shards.manifest import KEPT, list_manifests, read_manifests
from vlforge.shards.members import is_image, split_member
from vlforge.shards.reader import MAX_MEMBER_BYTES, member_bytes

END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks close every complete tar


@dataclass
class VerifyReport:
    tars: int = 0
    samples: int = 0
    manifest_rows: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_member(tar_name: str, name: str, ext: str, data: bytes) -> str | None:
    try:
        if ext.rsplit(".", 1)[-1].lower() == "json":
            json.loads(data)
        elif is_image(ext):
            with open_image(data) as im:
                im.load()
    except Exception as exc:  # noqa: BLE001 - any failure is a finding, not a crash
        return f"{tar_name}: {name}: does not decode ({type(exc).__name__}: {exc})"
    return None


def _has_end_marker(path: Path, offset: int) -> bool:
    """tarfile stops silently at end of file: without this, a tar cut between two members reads as whole."""
    with open(path, "rb") as f:
        f.seek(offset)
        tail = f.read(END_OF_ARCHIVE)
    return len(tail) == END_OF_ARCHIVE and not tail.strip(b"\0")


def _read_tar(path: Path, report: VerifyReport) -> dict[str, set[str]] | None:
    """Members by key, or None when the tar is truncated or unreadable. Members stream one at a time."""
    members: dict[str, set[str]] = defaultdict(set)
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                tar.members = []  # a stream: keep no member headers (a tar may hold millions)
                data = member_bytes(tar, info)
                if not info.isfile():
                    report.problems.append(f"{path.name}: {info.name}: not a regular file")
                    continue
                key, ext = split_member(info.name)
                members[key].add(ext)
                if data is None:
                    report.problems.append(f"{path.name}: {info.name}: {info.size} bytes, over the "
                                           f"{MAX_MEMBER_BYTES}-byte limit for one member; not read")
                    continue
                problem = _check_member(path.name, info.name, ext, data)
                if problem:
                    report.problems.append(problem)
            if not _has_end_marker(path, tar.offset):
                raise tarfile.ReadError("no end-of-archive marker: cut off between two members")
    except (tarfile.TarError, OSError, EOFError) as exc:
        report.problems.append(f"{path.name}: unreadable or truncated tar ({exc})")
        return None
    return members


def verify_dir(out_dir: str | Path) -> VerifyReport:
    out = Path(out_dir)
    report = VerifyReport()
    if not out.is_dir():
        report.problems.append(f"{out}: not a directory")
        return report
    if not list_manifests(out):
        report.problems.append(f"{out}: no manifest (__manifests/*.manifest.parquet): nothing committed")
    manifest = read_manifests(out)
    report.manifest_rows = manifest.num_rows
    expected: dict[str, set[str]] = defaultdict(set)
    for row in manifest.select(["status", "tar", "key"]).to_pylist():
        if row["status"] == KEPT:
            if row["key"] in expected[row["tar"]]:
                report.problems.append(f"{row['tar']}: key {row['key']} listed twice in the manifest")
            expected[row["tar"]].add(row["key"])
    for path in sorted(out.iterdir()):
        if is_temp(path):
            report.warnings.append(
                f"{path.name}: leftover temporary file of a killed run (the next run removes it)")
        elif path.suffix == ".tar" and path.name not in expected:
            report.problems.append(f"{path.name}: tar not listed in any manifest (uncommitted unit)")
    for tar_name, keys in sorted(expected.items()):
        path = out / tar_name
        if not path.exists():
            report.problems.append(f"{tar_name}: listed in the manifest but missing")
            continue
        report.tars += 1
        members = _read_tar(path, report)
        if members is None:
            continue
        report.samples += len(members)
        for key in sorted(keys - members.keys()):
            report.problems.append(f"{tar_name}: sample {key} in the manifest but not in the tar")
        for key in sorted(members.keys() - keys):
            report.problems.append(f"{tar_name}: sample {key} in the tar but not in the manifest")
    return report
