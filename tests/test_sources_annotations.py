"""Each adapter on a fixture in its release's real layout: the records it yields, and the errors it gives."""

import importlib
import json
import pickle
import pkgutil

import pytest
from mix_support import mix_layouts
from pydantic import TypeAdapter

import vlforge.sources.annotations as package
from vlforge.shards.writer import ShardWriter
from vlforge.sources.annotations import (
    ADAPTERS,
    AdapterOptionsUnion,
    ShardMember,
    SourceError,
    ai2d,
    coco_captions,
    gqa,
    grit,
    jsonl,
    refcoco,
    simple_vqa,
    text,
    visual_genome,
    vqav2,
)
from vlforge.sources.annotations import shards as shard_source
from vlforge.sources.annotations.base import most_common


def _scan(module, options, task):
    return list(module.scan(options, task))


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return mix_layouts.write_all(tmp_path_factory.mktemp("layouts"))


def test_coco_captions_one_sample_per_caption_with_its_image(fx):
    c = fx["coco"]
    items = _scan(coco_captions, coco_captions.Options(adapter="coco_captions", annotations=c["captions"],
                                                     images=c["images2017"]), "caption")
    assert [i.uid for i in items] == ["coco:661611", "coco:661612", "coco:122312", "coco:122313"]
    assert items[2].record["caption"] == "A giraffe eating food from the top of a tree."
    assert items[2].images == [str(c["images2017"] / "000000000025.jpg")]


def test_vqav2_most_common_answer_and_coco_file_name(fx):
    c, v = fx["coco"], fx["vqav2"]
    items = _scan(vqav2, vqav2.Options(adapter="vqav2", questions=v["questions"], annotations=v["annotations"],
                                     images=c["images2014"]), "vqa")
    assert [(i.record["question"], i.record["answer"]) for i in items] == [
        ("How many people are there?", "2"), ("What animal is this?", "bear")]
    assert items[0].images == [str(c["images2014"] / "COCO_train2014_000000000139.jpg")]


def test_most_common_prefers_the_annotated_answer_on_a_tie():
    assert most_common(["3", "2", "2", "3"], "2") == "2"
    assert most_common(["3", "2", "2", "3"], "9") == "3"
    assert most_common(["a", "b", "b"], "a") == "b"


def test_gqa_short_answer_and_image_by_id(fx):
    g = fx["gqa"]
    [item] = _scan(gqa, gqa.Options(adapter="gqa", questions=g["questions"], images=g["images"]), "vqa")
    assert item.uid == "gqa:02930152"
    assert item.record == {"image": str(g["images"] / "2354786.jpg"), "question": "Is the sky dark?",
                           "answer": "yes"}


@pytest.mark.parametrize(("layout", "expected"), [
    ("textvqa", [("what is the brand of phone?", "nokia", "0054c91397f2fe05.jpg")]),
    ("docvqa", [("what is the date mentioned in this letter?", "1/8/93", "documents/xnbl0037_1.png")]),
    ("chartqa", [("What is the highest value?", "62", "41699051005347.png")]),
    ("ocrvqa", [("Who wrote this book?", "Someone", "1563050.jpg"),
                ("What is the title of this book?", "A Field Guide", "1563050.jpg")]),
])
def test_simple_vqa_layouts(fx, layout, expected):
    annotations, images = fx[layout]
    items = _scan(simple_vqa, simple_vqa.Options(adapter="simple_vqa", layout=layout, annotations=annotations,
                                               images=images), "vqa")
    assert [(i.record["question"], i.record["answer"], i.images[0]) for i in items] == [
        (q, a, str(images / rel)) for q, a, rel in expected]


def test_ocrvqa_keeps_only_the_chosen_splits(fx):
    annotations, images = fx["ocrvqa"]
    options = simple_vqa.Options(adapter="simple_vqa", layout="ocrvqa", annotations=annotations, images=images,
                                 splits=(3,))
    assert _scan(simple_vqa, options, "vqa") == []


def test_refcoco_sentences_of_train_refs_with_their_coco_box(fx):
    c = fx["coco"]
    options = refcoco.Options(adapter="refcoco", refs=fx["refcoco"], instances=c["instances"], images=c["images2014"])
    items = _scan(refcoco, options, "ref_grounding")
    assert [i.record["expression"] for i in items] == ["man on the left", "guy in red", "bear in the corner",
                                                       "bear mostly outside"]  # the testA ref is left out
    assert items[0].record["box"] == [64.0, 48.0, 128.0, 96.0] and items[0].record["box_format"] == "xywh"
    assert _scan(refcoco, options, "grounded_caption")[1].record["caption"] == "guy in red"


def test_refcoco_refuses_the_pickle_itself(fx, tmp_path):
    c = fx["coco"]
    options = refcoco.Options(adapter="refcoco", refs=tmp_path / "refs(unc).p", instances=c["instances"],
                              images=c["images2014"])
    with pytest.raises(SourceError, match="is a pickle; convert it first"):
        _scan(refcoco, options, "ref_grounding")


def py2_pickle(value: object) -> bytes:
    """Protocol-2 opcodes as Python 2 wrote refs(unc).p: byte strings are SHORT_BINSTRING, not _codecs calls."""
    if isinstance(value, bytes):
        return b"U" + bytes([len(value)]) + value
    if isinstance(value, int):
        return b"J" + value.to_bytes(4, "little", signed=True)
    if isinstance(value, list):
        return b"]" + b"".join(py2_pickle(v) + b"a" for v in value)
    return b"}" + b"".join(py2_pickle(k) + py2_pickle(v) + b"s" for k, v in value.items())


def test_refs_pickle_converts_plain_python2_data(tmp_path):
    refs = [{b"ref_id": 7, b"split": b"train", b"sentences": [{b"sent": "caf\u00e9 chair".encode()}]}]
    src = tmp_path / "refs(unc).p"
    src.write_bytes(b"\x80\x02" + py2_pickle(refs) + b".")
    assert pickle.loads(src.read_bytes(), encoding="bytes") == refs  # the hand-made pickle is a valid one
    assert refcoco.refs_pickle_to_json(src, tmp_path / "refs.json") == 1
    assert json.loads((tmp_path / "refs.json").read_text()) == [
        {"ref_id": 7, "split": "train", "sentences": [{"sent": "caf\u00e9 chair"}]}]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_refs_pickle_that_names_a_function_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    src = tmp_path / "refs(unc).p"
    src.write_bytes(pickle.dumps([_Payload(marker)], protocol=2))
    with pytest.raises(SourceError, match="refuses to load"):
        refcoco.refs_pickle_to_json(src, tmp_path / "refs.json")
    assert not marker.exists() and not (tmp_path / "refs.json").exists()


def test_visual_genome_regions_in_either_image_folder(fx):
    vg = fx["vg"]
    items = _scan(visual_genome, visual_genome.Options(adapter="visual_genome", regions=vg["regions"],
                                                     images=vg["images"]), "grounded_caption")
    assert [(i.uid, i.record["caption"], i.record["box"]) for i in items] == [
        ("vg:1382", "the clock is green in colour", [421, 57, 82, 139]),
        ("vg:1383", "shade is along the street", [600, 550, 400, 100]),
        ("vg:2001", "a white car", [20, 10, 100, 50])]
    assert items[2].images == [str(vg["images"][1] / "2.jpg")]


def test_grit_refs_from_noun_chunks_grouped_by_span_without_overlaps():
    chunks = [[10, 15, 0.5, 0.3, 0.9, 0.9, 0.6], [0, 5, 0.1, 0.2, 0.5, 0.9, 0.7], [0, 5, 0.0, 0.0, 0.2, 0.2, 0.9],
              [2, 12, 0, 0, 1, 1, 0.9], [20, 25, 0, 0, 1, 1, 0.1]]
    assert grit.grit_refs(chunks, min_score=0.5) == [
        {"span": [0, 5], "boxes": [[0.1, 0.2, 0.5, 0.9], [0.0, 0.0, 0.2, 0.2]]},
        {"span": [10, 15], "boxes": [[0.5, 0.3, 0.9, 0.9]]}]


def test_grit_reads_img2dataset_shards_with_saved_columns(fx):
    items = _scan(grit, grit.Options(adapter="grit", paths=[str(fx["grit"])]), "grounding")
    assert [i.uid for i in items] == ["grit:1000", "grit:1001"]
    assert items[0].record["caption"] == "a dog and a cat on a sofa"
    assert items[0].record["refs"][1] == {"span": [10, 15], "boxes": [[0.5, 0.3, 0.95, 0.95]]}
    assert items[0].frame == (1.0, 1.0)
    assert items[0].images == [ShardMember(str(fx["grit"]), "000000000.jpg")]
    refs = _scan(grit, grit.Options(adapter="grit", paths=[str(fx["grit"])], spans="ref_exps"), "grounding")
    assert refs[0].record["refs"] == [{"span": [0, 15], "boxes": [[0.1, 0.2, 0.95, 0.95]]}]


def test_grit_ref_exps_one_referring_sample_per_expression(fx):
    items = _scan(grit, grit.Options(adapter="grit", paths=[str(fx["grit"])]), "ref_grounding")
    assert [(i.uid, i.record["expression"], i.record["box"], i.reject) for i in items] == [
        ("grit:1000:0", "a dog and a cat", [0.1, 0.2, 0.95, 0.95], None),
        ("grit:1001:0", "the red car", [0.25, 0.5, 1.2, 0.75], None)]
    assert items[0].frame == (1.0, 1.0) and items[0].images == [ShardMember(str(fx["grit"]), "000000000.jpg")]
    captions = _scan(grit, grit.Options(adapter="grit", paths=[str(fx["grit"])], spans="noun_chunks"),
                     "grounded_caption")
    assert [(i.record["caption"], i.record["box"]) for i in captions][:2] == [
        ("a dog", [0.1, 0.2, 0.5, 0.9]), ("a cat", [0.5, 0.3, 0.95, 0.95])]


def test_grit_expression_with_several_boxes_is_rejected_with_a_reason(tmp_path):
    meta = {"id": 7, "caption": "two dogs", "ref_exps": [[0, 8, 0, 0, 0.4, 0.4, 0.9], [0, 8, 0.5, 0.5, 1, 1, 0.9]]}
    with ShardWriter(tmp_path / "grit", "grit-0") as w:
        w.write("000000007", {"jpg": mix_layouts.photo(7), "json": meta}, {"uid": "7"})
    [item] = _scan(grit, grit.Options(adapter="grit", paths=[str(tmp_path / "grit")]), "ref_grounding")
    assert (item.uid, item.reject) == ("grit:7:0", "ambiguous_span")
    [low] = _scan(grit, grit.Options(adapter="grit", paths=[str(tmp_path / "grit")], min_score=0.95), "grounding")
    assert low.record["refs"] == []


def test_ai2d_questions_with_lettered_options_skipping_test_ids(fx):
    a = fx["ai2d"]
    options = ai2d.Options(adapter="ai2d", questions=a["questions"], images=a["images"], exclude_ids=a["test_ids"])
    items = _scan(ai2d, options, "vqa")
    assert [(i.uid, i.record["answer"]) for i in items] == [("ai2d:4.png-0", "A"), ("ai2d:4.png-1", "D")]
    assert items[0].record["question"] == ("Which stage comes after the egg?\n"
                                           "Options: A. larva\nB. pupa\nC. adult\nD. egg")
    assert items[0].images == [str(a["images"] / "4.png")]
    every = _scan(ai2d, ai2d.Options(adapter="ai2d", questions=a["questions"], images=a["images"], answer="text"),
                  "vqa")
    assert [(i.uid, i.record["answer"]) for i in every] == [
        ("ai2d:4.png-0", "larva"), ("ai2d:4.png-1", "pupa"), ("ai2d:9.png-0", "grass")]


def test_ai2d_bad_answer_index_is_left_for_the_renderer_and_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "q").mkdir()
    (tmp_path / "images").mkdir()
    options = ai2d.Options(adapter="ai2d", questions=tmp_path / "q", images=tmp_path / "images")
    with pytest.raises(SourceError, match=r"no question files"):
        _scan(ai2d, options, "vqa")
    (tmp_path / "q" / "1.png.json").write_text(json.dumps({"imageName": "1.png", "questions": {
        "Q?": {"abcLabel": False, "answerTexts": ["a", "b"], "correctAnswer": 5, "questionId": "1.png-0"}}}))
    [item] = _scan(ai2d, options, "vqa")
    assert item.record["answer"] is None  # dropped as bad_field:answer when the mix renders it


def test_text_lines_files_and_jsonl(fx, tmp_path):
    items = _scan(text, text.Options(adapter="text", paths=fx["text"]), "text")
    assert [i.record["text"] for i in items] == ["The first line of plain text.",
                                                 "A second, longer line of plain text.", "Pure text from JSONL."]
    whole = _scan(text, text.Options(adapter="text", paths=fx["text"][:1], per="file"), "text")
    assert len(whole) == 1 and whole[0].record["text"].count("\n") == 3


def test_canonical_jsonl_chat_keeps_every_image_in_order(fx):
    [item] = _scan(jsonl, jsonl.Options(adapter="jsonl", path=fx["chat"]), "chat")
    assert item.images == [str(fx["chat"].parent / "images/a.jpg"), str(fx["chat"].parent / "images/b.jpg")]


def test_vlforge_clean_and_synthdog_shards(tmp_path):
    jpeg = mix_layouts.photo(1, (64, 48))
    with ShardWriter(tmp_path / "clean", "clean-0") as w:
        w.write("a", {"jpg": jpeg, "txt": "a red kite", "json": {"uid": "u1", "lang": "zh"}}, {"uid": "u1"})
    lines = [{"text": "HELLO", "quad": [[1, 2], [30, 2], [30, 10], [1, 10]]}]
    with ShardWriter(tmp_path / "ocr", "synthdog-en-0") as w:
        w.write("en_1", {"jpg": jpeg, "json": {"task": "ocr", "lines": lines, "lang": "en"}}, {"uid": "s1"})
    [cap] = _scan(shard_source, shard_source.Options(adapter="shards", kind="clean", paths=[str(tmp_path / "clean")]),
                              "caption")
    assert cap.record == {"image": "a.jpg", "caption": "a red kite", "lang": "zh"}
    assert cap.images[0].member == "a.jpg"
    with ShardWriter(tmp_path / "ocr", "synthdog-en-1") as w:
        w.write("en_2", {"jpg": jpeg, "json": b"{broken"}, {"uid": "s2"})
    options = shard_source.Options(adapter="shards", kind="synthdog", paths=[str(tmp_path / "ocr")])
    ocr, broken = _scan(shard_source, options, "ocr")
    assert ocr.record["lines"] == lines
    assert broken.record == {"image": "en_2.jpg", "lines": None}  # a bad member: dropped when rendered


@pytest.mark.parametrize(("writer", "message"), [
    (lambda p: p.write_text("{not json"), "is not valid JSON"),
    (lambda p: p.write_text(json.dumps({"questions": []})), "missing key 'images'"),
    (lambda p: p.write_text(json.dumps([1, 2])), "expected a JSON dict"),
])
def test_malformed_annotation_files_name_the_problem(fx, tmp_path, writer, message):
    bad = tmp_path / "captions.json"
    writer(bad)
    options = coco_captions.Options(adapter="coco_captions", annotations=bad, images=fx["coco"]["images2017"])
    with pytest.raises(SourceError, match=message):
        _scan(coco_captions, options, "caption")


def test_missing_files_and_folders_are_named(fx, tmp_path):
    with pytest.raises(SourceError, match="annotations: no such file"):
        _scan(coco_captions, coco_captions.Options(adapter="coco_captions", annotations=tmp_path / "x.json",
                                                 images=fx["coco"]["images2017"]), "caption")
    with pytest.raises(SourceError, match="images: no such directory"):
        _scan(gqa, gqa.Options(adapter="gqa", questions=fx["gqa"]["questions"], images=tmp_path / "nope"), "vqa")
    with pytest.raises(SourceError, match=r"no shards \(\*\.tar\) match"):
        _scan(grit, grit.Options(adapter="grit", paths=[str(tmp_path)]), "grounding")


def test_img2dataset_caption_shards(tmp_path):
    """img2dataset's output folder: NNNNN.tar (KEY.jpg, KEY.txt, KEY.json) beside NNNNN.parquet and _stats.json."""
    meta = {"url": "https://example.com/0.jpg", "caption": "from the json", "key": "000000000", "status": "success",
            "error_message": None, "width": 64, "height": 48, "original_width": 640, "original_height": 480,
            "exif": "{}", "sha256": ""}
    jpeg = mix_layouts.photo(2, (64, 48))
    mix_layouts._tar(tmp_path / "out" / "00000.tar", [
        ("000000000.jpg", jpeg), ("000000000.txt", b"a dog on a beach"), ("000000000.json", json.dumps(meta).encode()),
        ("000000001.jpg", jpeg), ("000000001.json", json.dumps({**meta, "key": "000000001"}).encode())])
    (tmp_path / "out" / "00000.parquet").write_bytes(b"PAR1")
    (tmp_path / "out" / "00000_stats.json").write_text("{}")
    options = shard_source.Options(adapter="shards", kind="img2dataset", paths=[str(tmp_path / "out")])
    first, second = _scan(shard_source, options, "caption")
    assert (first.uid, first.record) == ("00000/000000000", {"image": "000000000.jpg", "caption": "a dog on a beach"})
    assert second.record == {"image": "000000001.jpg", "caption": "from the json"}  # no .txt: the json's caption
    assert [m.member for m in first.images + second.images] == ["000000000.jpg", "000000001.jpg"]


def test_every_adapter_module_is_registered_under_its_recipe_name():
    """A module with `Options` is an adapter: forgetting its MODULES entry would make it unreachable."""
    found = {info.name for info in pkgutil.iter_modules(package.__path__)
             if hasattr(importlib.import_module(f"{package.__name__}.{info.name}"), "Options")}
    assert found == {m.__name__.rsplit(".", 1)[1] for m in ADAPTERS.values()}
    assert set(ADAPTERS) == {"coco_captions", "vqav2", "gqa", "simple_vqa", "ai2d", "jsonl", "refcoco",
                             "visual_genome", "grit", "shards", "text"}
    union = TypeAdapter(AdapterOptionsUnion)
    parsed = union.validate_python({"adapter": "jsonl", "path": "a.jsonl"})
    assert isinstance(parsed, jsonl.Options)
    with pytest.raises(ValueError, match="adapter"):
        union.validate_python({"adapter": "nope", "path": "a.jsonl"})
