"""Phase 3 of `vlforge clean`: identical images (sha256) across units, after every unit has committed.

Image bytes are known only after download, so copies in different units can only be judged once all
units are done. The kept rows' hashes are deduplicated like the plan's (`keys.py`), and each unit holding
a later copy gets its tar rewritten without it and its manifest row turned into `duplicate_sha256` (tar
first, manifest last, both atomic). A rerun recomputes the duplicates from the manifests; first copies are
never touched, so the result is the same however often it runs or is killed.
"""

from __future__ import annotations

import shutil
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlforge.pipelines.clean.keys import (
    find_duplicates,
    hash_values,
    key_path,
    later_rows,
    order_keys,
    partition_jobs,
    write_keys,
)
from vlforge.pipelines.clean.plan import CleanJob, CleanWork
from vlforge.pipelines.executor import Unit, run_tasks
from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.manifest import DROPPED, KEPT, manifest_path, write_manifest
from vlforge.shards.members import split_member
from vlforge.sources.dumps.schemas import RowRange

DEDUP_DIR = "_dedup"


def sha256_keys(out_dir: str, file_index: int, prefixes: list[str]) -> None:
    """Key file of the kept images of one input file's units (a post-pass task)."""
    hashes, orders = [], []
    for prefix in prefixes:
        path = manifest_path(Path(out_dir), prefix)
        if "sha256" not in pq.read_schema(path).names:
            continue  # nothing of this unit reached download
        table = pq.read_table(path, columns=["status", "sha256", "row"])
        table = table.filter(pc.equal(table["status"], KEPT))
        hashes.extend(hash_values(table["sha256"].to_pylist()))
        orders.append(order_keys(file_index, table["row"].to_numpy()))
    all_orders = np.concatenate(orders) if orders else np.empty(0, dtype=np.int64)
    write_keys(key_path(Path(out_dir) / DEDUP_DIR, "sha256", file_index), hashes, all_orders)


def _rewrite_tar(path: Path, drop_keys: set[str]) -> None:
    """The tar without the members of `drop_keys`, replaced atomically; removed if nothing is left."""
    if not path.exists():
        return
    tmp = temp_path(path)
    kept = 0
    with tarfile.open(path, "r:") as src, tarfile.open(tmp, "w") as dst:
        for member in src:
            if split_member(member.name)[0] in drop_keys:
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            kept += 1
    if kept:
        commit(tmp, path)
    else:
        tmp.unlink()
        path.unlink()


def drop_image_duplicates(out_dir: str, prefix: str, file_index: int, rng: RowRange, bits: int) -> int:
    """Turn a unit's later image copies into dropped rows: tars rewritten first, manifest last."""
    out = Path(out_dir)
    rows = pq.read_table(manifest_path(out, prefix)).to_pylist()
    later = later_rows(out / DEDUP_DIR, "sha256", bits, file_index, rng.row_start, rng.row_start + rng.row_count)
    hit = [r for r in rows if r["status"] == KEPT and r["row"] in later]
    if not hit:
        return 0
    by_tar: dict[str, set[str]] = defaultdict(set)
    for r in hit:
        by_tar[r["tar"]].add(r["key"])
    for tar, keys in sorted(by_tar.items()):
        _rewrite_tar(out / tar, keys)
    for r in hit:
        r.update(status=DROPPED, reason="duplicate_sha256", stage="dedup_sha256", tar=None, key=None)
    write_manifest(out, prefix, rows)
    return len(hit)


def dedup_images(job: CleanJob, units: list[Unit[CleanWork]]) -> int:
    """Phase 3 over all committed units of this run; returns how many rows it turned into duplicates."""
    root = Path(job.out_dir) / DEDUP_DIR
    shutil.rmtree(root, ignore_errors=True)
    units = sorted(units, key=lambda u: u.id)
    by_file: dict[int, list[str]] = defaultdict(list)
    for unit in units:
        by_file[unit.payload.file_index].append(unit.id)
    run_tasks(sha256_keys, [(job.out_dir, i, prefixes) for i, prefixes in sorted(by_file.items())])
    found: list[int] = []
    run_tasks(find_duplicates, partition_jobs(root, "sha256", by_file, job.partition_bits), found.append)
    changed: list[int] = []
    if sum(found):
        run_tasks(drop_image_duplicates, [(job.out_dir, u.id, u.payload.file_index, u.payload.range,
                                           job.partition_bits) for u in units], changed.append)
    shutil.rmtree(root, ignore_errors=True)
    return sum(changed)
