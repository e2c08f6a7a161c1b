"""Evaluation samples from rendered shards, in shard order; an unreadable sample stops the run (a benchmark
scored on fewer samples than it has would be silently wrong)."""

from collections.abc import Iterator, Sequence

from vlforge.formats.sample import Sample, SampleError, sample_from_wds
from vlforge.shards.listing import shard_urls
from vlforge.shards.reader import iter_tar


def read_eval_samples(patterns: Sequence[str]) -> Iterator[Sample]:
    for url in shard_urls(patterns):
        for wds in iter_tar(url):
            try:
                yield sample_from_wds(wds)
            except SampleError as exc:
                raise ValueError(f"evaluation sample unusable: {exc}") from None
