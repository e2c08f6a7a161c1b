"""Each metric against values worked out by hand on small fixtures, and against the reference
implementations from the package registry (pycocoevalcap's CIDEr-D, the `anls` package) on the same inputs."""

import math
import random

import pytest
from anls import anls_score
from pycocoevalcap.cider.cider import Cider

from vlforge.evaluation.answer_metrics import anls, choice_match, exact_match, parse_choice, relaxed_match, vqa_score
from vlforge.evaluation.answers import normalize_answer
from vlforge.evaluation.cider import cider_d, tokenize
from vlforge.evaluation.grounding import box_iou, grounding_iou, parse_box
from vlforge.evaluation.metrics import Item, score_items


@pytest.mark.parametrize(("raw", "normal"), [
    ("Two dogs.", "2 dogs"),                # number word, period dropped
    ("The cat's toy!", "cat's toy"),        # article dropped, "!" becomes a space
    ("yes, it is", "yes it is"),            # mark beside a space is deleted
    ("1,000", "1000"),                      # digit comma: every mark deleted
    ("3.5", "3.5"),                         # a period before a digit stays
    ("black/white", "black white"),         # mark between letters becomes a space
    ("dont know", "don't know"),            # contraction table
    ("  None\tat all\n", "0 at all"),       # whitespace, "none" -> 0
    ("An Apple", "apple"),
])
def test_vqa_normalisation(raw, normal):
    assert normalize_answer(raw) == normal


@pytest.mark.parametrize(("matches", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_score_leave_one_out(matches, expected):
    # by hand: k matching answers among 10 -> (k * min(1, (k-1)/3) + (10-k) * min(1, k/3)) / 10
    refs = ["cat"] * matches + ["dog"] * (10 - matches)
    assert vqa_score("Cat.", refs) == pytest.approx(expected)


def test_vqa_score_normalises_references_and_single_reference():
    assert vqa_score("two", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    assert vqa_score("the red one", ["Red one"]) == 1.0
    assert vqa_score("blue", ["red"]) == 0.0


def test_exact_match():
    assert exact_match("Red.", ["red"]) == 1.0
    assert exact_match("a red one", ["blue", "red one"]) == 1.0
    assert exact_match("a red one", ["red"]) == 0.0


@pytest.mark.parametrize(("pred", "refs", "expected"), [
    ("hello", ["hallo"], 0.8),                  # 1 edit / 5 chars
    ("  Hello   World ", ["hello world"], 1.0),  # case and runs of spaces ignored
    ("abc", ["xyz"], 0.0),
    ("ab", ["ax"], 0.0),                         # NL = 0.5 is not below the threshold
    ("abcd", ["abxd", "zzzz"], 0.75),            # best reference
    ("", [""], 1.0),
])
def test_anls_by_hand(pred, refs, expected):
    assert anls(pred, refs) == pytest.approx(expected)


def test_anls_matches_the_anls_package():
    rng = random.Random(3)
    words = ["total", "12.50", "Invoice", "date", "2019", "ACME inc.", "  ", "x"]
    for _ in range(300):
        pred = " ".join(rng.choices(words, k=rng.randint(0, 3)))
        refs = [" ".join(rng.choices(words, k=rng.randint(1, 3))) for _ in range(rng.randint(1, 3))]
        if not pred.strip() and not any(r.strip() for r in refs):
            continue
        assert anls(pred, refs) == pytest.approx(anls_score(pred, refs)), (pred, refs)


@pytest.mark.parametrize(("pred", "refs", "expected"), [
    ("10.4", ["10"], 1.0),     # 4% off
    ("10.6", ["10"], 0.0),     # 6% off
    ("9.5", ["10"], 1.0),      # exactly 5%
    ("40%", ["0.41"], 1.0),    # percent read as 0.40, 2.4% off
    ("0.01", ["0"], 0.0),      # zero reference: exact text only
    ("0", ["0"], 1.0),
    (" Yes ", ["yes"], 1.0),
    ("5", ["five"], 0.0),
    ("12", ["abc", "12.3"], 1.0),
])
def test_relaxed_accuracy(pred, refs, expected):
    assert relaxed_match(pred, refs) == expected


@pytest.mark.parametrize(("pred", "letter"), [
    ("B", "B"), ("(C)", "C"), ("D. a cat", "D"), ("Answer: A", "A"), ("The answer is E.", "E"),
    ("b", None), ("I think B", None), ("A cat", None), ("", None), ("Bird", None),
])
def test_parse_choice(pred, letter):
    assert parse_choice(pred) == letter


def test_choice_accuracy():
    assert choice_match("(B) the dog", ["B"]) == 1.0
    assert choice_match("C", ["B"]) == 0.0
    assert choice_match("no idea", ["B"]) == 0.0


def test_tokenize_like_ptb():
    assert tokenize("A man's hat. Don't go -- black-and-white, 3.5 ...") == [
        "a", "man", "'s", "hat", "do", "n't", "go", "black-and-white", "3.5"]
    assert tokenize('Two (2) "big" dogs & 1,000 cats/birds!') == [
        "two", "2", "big", "dogs", "&", "1,000", "cats/birds"]


def test_cider_d_by_hand():
    # two images; every n-gram of the references occurs in one image only, so each weight is tf * ln 2
    refs = [[["a", "b"]], [["c", "d"]]]
    # identical 2-word captions: cosine 1 for unigrams and bigrams, 0 for 3- and 4-grams -> 10 * 2/4
    assert cider_d([["a", "b"], ["c", "d"]], refs) == pytest.approx([5.0, 5.0])
    # "a" vs "a b": unigram cosine 1/sqrt(2), no bigram, length penalty for 0 vs 1 bigram
    first = cider_d([["a"], ["c", "d"]], refs)[0]
    assert first == pytest.approx(10 / 4 / math.sqrt(2) * math.exp(-1 / 72))
    # "a a" vs "a b": clipping keeps min(2 ln2, ln2) -> unigram 1/(2 sqrt 2); same bigram count, no penalty
    clipped = cider_d([["a", "a"], ["c", "d"]], refs)[0]
    assert clipped == pytest.approx(10 / 4 / (2 * math.sqrt(2)))


def _captions(rng: random.Random, count: int) -> tuple[list[str], list[list[str]]]:
    vocab = ["a", "the", "dog", "cat", "man", "woman", "red", "blue", "on", "runs", "with", "ball", "park", "two"]
    hyps = [" ".join(rng.choices(vocab, k=rng.randint(1, 12))) for _ in range(count)]
    refs = [[" ".join(rng.choices(vocab, k=rng.randint(2, 12))) for _ in range(rng.randint(1, 5))]
            for _ in range(count)]
    return hyps, refs


def test_cider_d_matches_pycocoevalcap():
    hyps, refs = _captions(random.Random(0), 300)
    expected_mean, expected = Cider().compute_score({i: r for i, r in enumerate(refs)},
                                                    {i: [h] for i, h in enumerate(hyps)})
    ours = cider_d([h.split() for h in hyps], [[r.split() for r in rs] for rs in refs])
    assert ours == pytest.approx(list(expected), abs=1e-9)
    result = score_items("cider", [Item(str(i), h, r) for i, (h, r) in enumerate(zip(hyps, refs, strict=True))])
    assert result.score == pytest.approx(100 * expected_mean)
    assert result.count == 300


def test_grounding_iou_and_parsing():
    size, ref = (200, 100), [[20, 10, 120, 60]]
    # (100,100),(600,600) on the grid of a 200x100 image is exactly (20,10),(120,60)
    assert grounding_iou("<box>(100,100),(600,600)</box>", ref, size) == ((20, 10, 120, 60), 1.0)
    # shifted 10 px: intersection 90x50, union 2 * 5000 - 4500
    assert grounding_iou("(150,100),(650,600)</box>", ref, size)[1] == pytest.approx(4500 / 5500)
    assert grounding_iou("<ref>x</ref><box>(300,100),(800,600)</box>", ref, size)[1] == pytest.approx(3000 / 7000)
    assert grounding_iou("a cat", ref, size) == (None, 0.0)
    assert parse_box("(1, 2),( 3,4)") == (1, 2, 3, 4)
    assert box_iou((10, 10, 0, 0), (0, 0, 10, 10)) == 0.0


def test_grounding_accuracy_counts_unparseable():
    items = [
        Item("hit", "<box>(150,100),(650,600)</box>", [[20, 10, 120, 60]], (200, 100)),
        Item("miss", "<box>(300,100),(800,600)</box>", [[20, 10, 120, 60]], (200, 100)),
        Item("junk", "the dog on the left", [[20, 10, 120, 60]], (200, 100)),
        Item("second ref", "(0,0),(500,500)", [[20, 10, 120, 60], [0, 0, 100, 50]], (200, 100)),
    ]
    result = score_items("grounding", items)
    assert result.per_sample == [100.0, 0.0, 0.0, 100.0]
    assert result.score == 50.0
    assert result.extras == {"unparseable": 1}
    assert result.columns["pred_box"][2] is None


@pytest.mark.parametrize(("metric", "prediction", "references", "expected"), [
    ("vqa", "Two", ["2"] * 2 + ["3"] * 8, 60.0),
    ("exact", "The Cat", ["cat"], 100.0),
    ("anls", "hello", ["hallo"], 80.0),
    ("relaxed", "10.4", ["10"], 100.0),
    ("choice", "(A)", ["B"], 0.0),
])
def test_score_items_scale(metric, prediction, references, expected):
    result = score_items(metric, [Item("1", prediction, references), Item("2", "zzz", ["qqq"])])
    assert result.per_sample == pytest.approx([expected, 0.0])
    assert result.score == pytest.approx(expected / 2)
