"""Evaluation samples from rendered shards, in shard order; an unreadable sample stops the run (a benchmark
scored on fewer samples than it has would be silently wrong)."""

import glob
from collections.abc import Iterator, Sequence

from vlforge.formats.sample import Sample, SampleError, sample_from_wds
from vlforge.shards.reader import expand_shards, iter_tar

_GLOB = ("*", "?", "[")


def shard_urls(patterns: Sequence[str]) -> list[str]:
    """Tars named by directories, brace patterns, URLs and (local) globs such as 'EVAL/*.tar'."""
    urls: list[str] = []
    for pattern in patterns:
        if "://" not in pattern and any(c in pattern for c in _GLOB):
            found = sorted(glob.glob(pattern))
            if not found:
                raise FileNotFoundError(f"--shards: nothing matches {pattern}")
            urls.extend(found)
        else:
            urls.extend(expand_shards(pattern))
    return urls


def read_eval_samples(patterns: Sequence[str]) -> Iterator[Sample]:
    for url in shard_urls(patterns):
        for wds in iter_tar(url):
            if "__key__" not in wds:  # webdataset >= 0.2.87 ends each shard with an empty marker
                continue
            try:
                yield sample_from_wds(wds)
            except SampleError as exc:
                raise ValueError(f"evaluation sample unusable: {exc}") from None
