"""Per-answer metrics: each takes one prediction and its reference answers and returns a score in [0, 1]."""

import re

from vlforge.evaluation.answers import normalize_answer

ANLS_THRESHOLD = 0.5
RELAXED_TOLERANCE = 0.05


def vqa_score(prediction: str, references: list[str]) -> float:
    """VQAv2 accuracy: min(#humans who gave the answer / 3, 1), averaged over the leave-one-out subsets
    of the references (the 10-choose-9 subsets for VQAv2's ten answers).

    Both sides are normalised (vqaEval.py normalises the references only when they disagree; they come
    normalised in the official annotation files, so the result is the same there). A single reference
    is treated as ten humans agreeing: 1 if the answer matches, else 0.
    """
    answer = normalize_answer(prediction)
    gold = [normalize_answer(r) for r in references]
    if len(gold) == 1:
        return float(answer == gold[0])
    matches = sum(g == answer for g in gold)
    # leaving out reference i removes one match exactly when reference i is itself a match
    return sum(min(1.0, (matches - (g == answer)) / 3) for g in gold) / len(gold)


def exact_match(prediction: str, references: list[str]) -> float:
    """1 if the answer equals any reference after VQA normalisation (case, punctuation, articles, number words)."""
    answer = normalize_answer(prediction)
    return float(any(answer == normalize_answer(r) for r in references))


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute, each 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _anls_text(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, references: list[str], threshold: float = ANLS_THRESHOLD) -> float:
    """Average Normalized Levenshtein Similarity for one question (DocVQA): the best 1 - NL over the references
    after lower-casing and collapsing whitespace, 0 where NL reaches the threshold."""
    answer = _anls_text(prediction)
    best = 0.0
    for reference in references:
        gold = _anls_text(reference)
        length = max(len(answer), len(gold))
        distance = levenshtein(answer, gold) / length if length else 0.0
        if distance < threshold:
            best = max(best, 1.0 - distance)
    return best


def _to_float(text: str) -> float | None:
    """pix2struct's reading of a number: "12.5" -> 12.5, "40%" -> 0.4, anything else -> None."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_match(prediction: str, references: list[str], tolerance: float = RELAXED_TOLERANCE) -> float:
    """ChartQA relaxed accuracy (pix2struct's relaxed_correctness): a number within 5% of a non-zero
    numeric reference counts, anything else must match case-insensitively."""
    answer = prediction.strip()
    value = _to_float(answer)
    for reference in references:
        gold = reference.strip()
        target = _to_float(gold)
        if value is not None and target:
            if abs(value - target) / abs(target) <= tolerance:
                return 1.0
        elif answer.lower() == gold.lower():
            return 1.0
    return 0.0


# "B", "B.", "(B)", "B) a cat", "Answer: B", "The answer is B."; not "I think B" or "A cat" (a letter must
# stand alone or be followed by one of . ) : ,)
_CHOICE = re.compile(r"^\s*(?i:the\s+)?(?i:answer\s*(?:is)?\s*:?\s*)?\(?([A-Z])(?=\s*$|[.):,])")


def parse_choice(prediction: str) -> str | None:
    """The option letter a prediction picks, upper-case, or None when it names none."""
    match = _CHOICE.match(prediction)
    return match.group(1).upper() if match else None


def choice_match(prediction: str, references: list[str]) -> float:
    """Multiple-choice accuracy: the predicted option letter equals the reference letter."""
    letter = parse_choice(prediction)
    return float(letter is not None and letter in {r.strip().strip("()").upper() for r in references})
