"""CIDEr-D as the COCO caption evaluation computes it (pycocoevalcap's cider_scorer.py): tf-idf n-gram
vectors (n = 1..4) with document frequencies taken from the reference captions of the evaluated set,
clipped cosine similarity, a Gaussian length penalty (sigma 6), averaged over references, times 10."""

import math
import re
from collections import Counter

# What pycocoevalcap's PTB tokenizer wrapper drops after tokenising; PTB writes brackets as -LRB- and
# double quotes as `` and '', which the list drops too.
_PUNCTUATION = {"''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--",
                "...", ";", '"', "(", ")", "[", "]", "{", "}"}
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|n't|'\w+|\w+(?:[-./]\w+)*|\.\.\.|--|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words with punctuation removed, close to the Stanford PTB tokenizer the COCO evaluation
    runs through Java ("A man's hat." -> ["a", "man", "'s", "hat"]); hyphenated words and numbers stay whole."""
    return [t for t in _TOKEN.findall(_CLITIC.sub(r" \1", text.lower())) if t not in _PUNCTUATION]


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


class _Vector:
    """One caption as tf-idf weights per n-gram order, their norms, and its length (bigram count, as in
    cider_scorer.py, whose `if n == 1` counts the n-grams of index 1: the bigrams)."""

    __slots__ = ("length", "norms", "weights")

    def __init__(self, counts: Counter, document_frequency: Counter, log_documents: float, n: int):
        self.weights: list[dict] = [{} for _ in range(n)]
        for gram, tf in counts.items():
            self.weights[len(gram) - 1][gram] = tf * (log_documents - math.log(max(1.0, document_frequency[gram])))
        self.norms = [math.sqrt(sum(w * w for w in order.values())) for order in self.weights]
        self.length = sum(tf for gram, tf in counts.items() if len(gram) == 2)


def _similarity(hyp: _Vector, ref: _Vector, sigma: float) -> float:
    """Sum over n-gram orders of the clipped cosine similarity times the length penalty."""
    penalty = math.exp(-((hyp.length - ref.length) ** 2) / (2 * sigma**2))
    total = 0.0
    for h, r, nh, nr in zip(hyp.weights, ref.weights, hyp.norms, ref.norms, strict=True):
        value = sum(min(w, r[g]) * r[g] for g, w in h.items() if g in r)
        if nh != 0 and nr != 0:
            value /= nh * nr
        total += value * penalty
    return total


def cider_d(hypotheses: list[list[str]], references: list[list[list[str]]], n: int = 4,
            sigma: float = 6.0) -> list[float]:
    """CIDEr-D of each tokenised hypothesis against its tokenised references (0..10 per sample; the corpus
    score is the mean). Document frequencies come from all the references given, so score a benchmark at once."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(not refs for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    ref_counts = [[_ngrams(ref, n) for ref in refs] for refs in references]
    document_frequency: Counter = Counter()
    for counts in ref_counts:
        document_frequency.update(set().union(*counts))
    log_documents = math.log(len(hypotheses)) if hypotheses else 0.0
    scores = []
    for hyp, counts in zip(hypotheses, ref_counts, strict=True):
        vec = _Vector(_ngrams(hyp, n), document_frequency, log_documents, n)
        refs = [_Vector(c, document_frequency, log_documents, n) for c in counts]
        scores.append(10.0 * sum(_similarity(vec, ref, sigma) for ref in refs) / n / len(refs))
    return scores
