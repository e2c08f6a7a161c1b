"""CIDEr-D over 5,000 captions (5 references each): vlforge's scorer against pycocoevalcap's on the same
pre-tokenised text, same run. Prints the speed ratio and checks both give the same corpus score."""

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report
from pycocoevalcap.cider.cider import Cider

from vlforge.evaluation.cider import cider_d

COUNT, REFS, REPEATS = 5000, 5, 3


def captions(rng: random.Random) -> tuple[list[str], list[list[str]]]:
    vocab = [f"w{i}" for i in range(2000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf-like, as words in captions are

    def caption() -> str:
        return " ".join(rng.choices(vocab, weights, k=rng.randint(6, 16)))

    return [caption() for _ in range(COUNT)], [[caption() for _ in range(REFS)] for _ in range(COUNT)]


def best_of(fn) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    hyps, refs = captions(random.Random(0))
    split_hyps, split_refs = [h.split() for h in hyps], [[r.split() for r in rs] for rs in refs]
    gts, res = {i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    ours_s, ours = best_of(lambda: sum(cider_d(split_hyps, split_refs)) / COUNT)
    coco_s, coco = best_of(lambda: Cider().compute_score(gts, res)[0])
    print(f"CIDEr-D over {COUNT} captions x {REFS} refs: vlforge {ours_s:.2f} s ({ours:.6f}), "
          f"pycocoevalcap {coco_s:.2f} s ({coco:.6f}); same score: {abs(ours - coco) < 1e-9}")
    if abs(ours - coco) > 1e-9:
        raise SystemExit("scores differ")
    report("score", "cider_captions_per_s", COUNT / ours_s, "captions/s", COUNT / coco_s)


if __name__ == "__main__":
    main()
