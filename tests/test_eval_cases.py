"""Evaluation samples rendered by `vlforge render` from the bundled JSONL: the prompt ends exactly where
Qwen-VL's eval_mm prompts end, the references come from meta or from the sample's own answer, and
`evaluate` scores each benchmark (source) on its own with the same code as `vlforge score`."""

import io
import json
import shutil
import tarfile

import pytest
from conftest import EXAMPLES

from vlforge.evaluation.cases import case_from_sample, split_prompt
from vlforge.evaluation.evaluate import evaluate
from vlforge.evaluation.grounding import box_iou
from vlforge.evaluation.samples import read_eval_samples
from vlforge.formats.errors import FieldError
from vlforge.formats.sample import Sample, sample_from_wds
from vlforge.formats.segments import Segment
from vlforge.formats.tasks import image_fields
from vlforge.pipelines.render import RenderOptions, run_render
from vlforge.shards.reader import iter_samples


@pytest.fixture(scope="module")
def eval_shards(tmp_path_factory, ray_local):
    out = tmp_path_factory.mktemp("eval") / "shards"
    for task in ("caption", "vqa", "ref_grounding"):
        run_render([EXAMPLES / f"{task}.jsonl"], out, RenderOptions(task=task))
    return out


def _samples(out, source):
    return [s for s in map(sample_from_wds, iter_samples(str(out))) if s.source == source]


def test_prompts_end_where_eval_mm_ends_them(eval_shards):
    caption = [case_from_sample(s, "cider") for s in _samples(eval_shards, "caption")]
    assert [(c.prompt, c.references) for c in caption] == [
        ("<img></img>Generate the caption in English:", ["A rocket on the launch pad at dusk, between two towers."]),
        ("<img></img>Generate the caption in Chinese:", ["一只虎斑猫盯着镜头。"]),
    ]
    vqa = [case_from_sample(s, "vqa") for s in _samples(eval_shards, "vqa")]
    assert [(c.prompt, c.references) for c in vqa] == [
        ("<img></img>What color is the saucer? Answer:", ["Red."]),
        ("<img></img>What is the person wearing? Answer:", ["An orange space suit."]),
    ]
    assert [c.text for c in vqa] == ["What color is the saucer? Answer:", "What is the person wearing? Answer:"]
    grounding = [case_from_sample(s, "grounding") for s in _samples(eval_shards, "ref_grounding")]
    assert [c.prompt for c in grounding] == ["<img></img><ref>the cat's left eye</ref><box>",
                                             "<img></img><ref>the spoon on the saucer</ref><box>"]
    assert [c.image_size for c in grounding] == [(384, 255), (384, 256)]
    # the answer's grid box back in pixels: within a grid step of the JSONL's box (xywh [200,40,60,170] second)
    assert grounding[0].references[0] == pytest.approx([135, 70, 185, 125], abs=0.4)
    assert grounding[1].references[0] == pytest.approx([200, 40, 260, 210], abs=0.4)
    assert box_iou(grounding[1].references[0], [200, 40, 260, 210]) > 0.98


def _sample(meta, segments=(("<img></img>", False), ("Q? Answer:", False), (" a", True))):
    return Sample("k1", "vqa", "okvqa", [Segment(t, s) for t, s in segments], [("jpg", b"")], meta)


def test_references_from_meta_win_and_are_checked():
    case = case_from_sample(_sample({"references": ["a", "b", "b"]}), "vqa")
    assert case.references == ["a", "b", "b"] and case.benchmark == "okvqa"
    with pytest.raises(ValueError, match="sample k1: meta \"references\" must be a non-empty list of strings"):
        case_from_sample(_sample({"references": [[0, 0, 1, 1]]}), "vqa")
    boxes = {"references": [[0, 0, 10, 10]], "sizes": [[20, 20]]}
    assert case_from_sample(_sample(boxes), "grounding").references == [[0.0, 0.0, 10.0, 10.0]]


def test_unusable_samples_are_named():
    with pytest.raises(ValueError, match="sample k1: no supervised segment"):
        split_prompt(_sample({}, segments=(("<img></img>", False), ("hi", False))))
    with pytest.raises(ValueError, match="sample k1 \\(vqa\\): its answer ' a' holds no box"):
        case_from_sample(_sample({"sizes": [[20, 20]]}), "grounding")
    interleaved = (("Look: <img></img>", False), ("Q? Answer:", False), (" a", True))
    with pytest.raises(ValueError, match="sample k1: its 1 images must open the prompt"):
        case_from_sample(_sample({}, segments=interleaved), "vqa")


def test_evaluate_scores_each_benchmark(eval_shards):
    seen = []

    def answer_saucer(images, prompts, max_new_tokens):
        seen.append((prompts, [[im.size for im in imgs] for imgs in images], max_new_tokens))
        return [" Red\n" if "saucer" in p else "a cat" for p in prompts]

    samples = map(sample_from_wds, iter_samples(str(eval_shards)))
    scored = evaluate((s for s in samples if s.task != "ref_grounding"), answer_saucer, "exact", batch_size=3)
    assert [(s.benchmark, s.result.count, s.result.score) for s in scored] == [("caption", 2, 0.0), ("vqa", 2, 50.0)]
    assert [prompts for prompts, _, _ in seen] == [  # the images go first, generate() adds their slots
        ["Generate the caption in English:", "Generate the caption in Chinese:", "What color is the saucer? Answer:"],
        ["What is the person wearing? Answer:"]]
    assert all(budget == 10 for _, _, budget in seen)  # eval_mm's max_new_tokens for short answers
    assert [s.result.per_sample for s in scored] == [[0.0, 0.0], [100.0, 0.0]]
    assert scored[1].items[0].prediction == "Red"  # stripped like eval_mm's decode().strip()
    assert scored[1].columns["prompt"] == ["<img></img>What color is the saucer? Answer:",
                                           "<img></img>What is the person wearing? Answer:"]
    assert {size for _, sizes, _ in seen for per in sizes for size in per} == {(384, 256), (384, 255), (384, 384)}


def test_evaluate_limit_and_empty(eval_shards):
    def fixed(images, prompts, max_new_tokens):
        return ["x"] * len(prompts)

    scored = evaluate(map(sample_from_wds, iter_samples(str(eval_shards))), fixed, "anls", limit=1)
    assert sum(s.result.count for s in scored) == 1
    with pytest.raises(ValueError, match="no evaluation samples"):
        evaluate([], fixed, "anls")
    with pytest.raises(ValueError, match="--max-new-tokens must be at least 1, got 0"):
        evaluate([], fixed, "anls", max_new_tokens=0)
    with pytest.raises(ValueError, match="--batch-size must be at least 1, got 0"):
        evaluate([], fixed, "anls", batch_size=0)


def test_read_eval_samples_globs_and_refuses_bad_samples(eval_shards, tmp_path):
    samples = list(read_eval_samples([f"{eval_shards}/vqa-*.tar", f"{eval_shards}/caption-*.tar"]))
    assert [s.source for s in samples] == ["vqa", "vqa", "caption", "caption"]
    assert len(list(read_eval_samples([str(eval_shards)]))) == 6
    with pytest.raises(FileNotFoundError, match=r"no shards \(\*\.tar\) match '.*/\*\.tar'"):
        read_eval_samples([f"{tmp_path}/*.tar"]).__next__()
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        data = b"{not json"
        info = tarfile.TarInfo("k1.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    message = r"evaluation sample unusable: .*bad\.tar: sample k1: KEY\.json does not parse"
    with pytest.raises(ValueError, match=message):
        list(read_eval_samples([str(bad)]))


def test_references_travel_in_meta(tmp_path, ray_local):
    shutil.copytree(EXAMPLES / "images", tmp_path / "images")
    answers = ["red"] * 4 + ["dark red"] * 6
    (tmp_path / "vqav2.jsonl").write_text(json.dumps(
        {"image": "images/coffee.jpg", "question": "What color is the saucer?", "answer": "red",
         "references": answers}) + "\n")
    (tmp_path / "refcoco.jsonl").write_text(json.dumps(
        {"image": "images/coffee.jpg", "expression": "the spoon", "box": [200, 40, 60, 170], "box_format": "xywh",
         "references": [[200, 40, 60, 170], [190, 30, 70, 180]]}) + "\n")
    out = tmp_path / "shards"
    run_render([tmp_path / "vqav2.jsonl"], out, RenderOptions(task="vqa"))
    run_render([tmp_path / "refcoco.jsonl"], out, RenderOptions(task="ref_grounding"))
    (vqa,) = _samples(out, "vqav2")
    assert vqa.meta["references"] == answers
    assert case_from_sample(vqa, "vqa").references == answers
    (ref,) = _samples(out, "refcoco")
    assert case_from_sample(ref, "grounding").references == [[200, 40, 260, 210], [190, 30, 260, 210]]


@pytest.mark.parametrize(("task", "record", "field"), [
    ("vqa", {"image": "x.jpg", "question": "q", "answer": "a", "references": ["a", ""]}, "references[1]"),
    ("vqa", {"image": "x.jpg", "question": "q", "answer": "a", "references": []}, "references"),
    ("caption", {"image": "x.jpg", "caption": "c", "references": "c"}, "references"),
    ("ref_grounding", {"image": "x.jpg", "expression": "e", "box": [0, 0, 1, 1], "references": [[5, 5, 1, 1]]},
     "references[0]"),
    ("ocr", {"image": "x.jpg", "lines": [{"text": "t", "quad": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
             "references": ["t"]}, "references"),
])
def test_bad_references_are_named_before_any_image_is_read(task, record, field):
    with pytest.raises(FieldError) as info:
        image_fields(task, record)
    assert info.value.field == field
