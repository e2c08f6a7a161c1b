"""Small fixtures of the public annotation releases, in their real layouts and field names.

Used by `scripts/demo_mix.py` and the mix tests. Images are seeded noise at release-like sizes, so each
has its own bytes and perceptual hash; `photo(seed)` gives the same image for the same seed.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size: tuple[int, int] = (640, 480), fmt: str = "JPEG") -> bytes:
    """A seeded blocky noise image (blocks survive resizing, so its pHash does too)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _write(path: Path, data: bytes | dict | list | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def coco(root: Path) -> dict:
    """COCO 2017 captions and 2014 instances; train2014 images also serve VQAv2 and RefCOCO."""
    _write(root / "train2017/000000000009.jpg", photo(9))
    _write(root / "train2017/000000000025.jpg", photo(25, (500, 375)))
    _write(root / "annotations/captions_train2017.json", {
        "info": {}, "licenses": [],
        "images": [{"id": 9, "file_name": "000000000009.jpg", "width": 640, "height": 480},
                   {"id": 25, "file_name": "000000000025.jpg", "width": 500, "height": 375},
                   {"id": 30, "file_name": "000000000030.jpg", "width": 640, "height": 428}],  # image not on disk
        "annotations": [{"image_id": 9, "id": 661611, "caption": "Closeup of bins of food that include broccoli."},
                        {"image_id": 9, "id": 661612, "caption": "A meal is presented in brightly colored trays."},
                        {"image_id": 25, "id": 122312, "caption": "A giraffe eating food from the top of a tree."},
                        {"image_id": 30, "id": 122313, "caption": "A flower vase sitting on a porch stand."}]})
    for image_id in (139, 285):
        _write(root / f"train2014/COCO_train2014_{image_id:012d}.jpg", photo(image_id))
    _write(root / "annotations/instances_train2014.json", {
        "images": [{"id": 139, "file_name": "COCO_train2014_000000000139.jpg", "width": 640, "height": 480},
                   {"id": 285, "file_name": "COCO_train2014_000000000285.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1001, "image_id": 139, "category_id": 1, "bbox": [64.0, 48.0, 128.0, 96.0],
                         "area": 12288.0, "iscrowd": 0},
                        {"id": 1002, "image_id": 285, "category_id": 23, "bbox": [580.0, 400.0, 80.0, 100.0],
                         "area": 8000.0, "iscrowd": 0},
                        {"id": 1003, "image_id": 285, "category_id": 23, "bbox": [620.0, 0.0, 200.0, 50.0],
                         "area": 10000.0, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 23, "name": "bear", "supercategory": "animal"}]})
    return {"captions": root / "annotations/captions_train2017.json", "images2017": root / "train2017",
            "instances": root / "annotations/instances_train2014.json", "images2014": root / "train2014"}


def vqav2(root: Path) -> dict:
    _write(root / "v2_OpenEnded_mscoco_train2014_questions.json", {
        "info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "train2014", "license": {},
        "questions": [{"image_id": 139, "question": "How many people are there?", "question_id": 139000},
                      {"image_id": 285, "question": "What animal is this?", "question_id": 285000}]})
    answers = [["2", "2", "2", "3", "3", "3", "3", "2", "2", "two"], ["bear"] * 9 + ["brown bear"]]
    _write(root / "v2_mscoco_train2014_annotations.json", {
        "info": {}, "license": {}, "data_subtype": "train2014",
        "annotations": [{"question_id": qid, "image_id": image_id, "question_type": "what",
                         "answer_type": "other", "multiple_choice_answer": given[0],
                         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                     for k, a in enumerate(given)]}
                        for (qid, image_id), given in zip([(139000, 139), (285000, 285)], answers, strict=True)]})
    return {"questions": root / "v2_OpenEnded_mscoco_train2014_questions.json",
            "annotations": root / "v2_mscoco_train2014_annotations.json"}


def refcoco(root: Path) -> Path:
    """refs(unc) as JSON (what scripts/refcoco_refs_to_json.py writes from the release's pickle)."""
    refs = [{"ref_id": 0, "ann_id": 1001, "image_id": 139, "split": "train", "category_id": 1,
             "file_name": "COCO_train2014_000000000139_1001.jpg", "sent_ids": [0, 1],
             "sentences": [{"sent": "man on the left", "raw": "Man on the left", "tokens": ["man", "on", "the",
                                                                                            "left"], "sent_id": 0},
                           {"sent": "guy in red", "raw": "guy in red", "tokens": ["guy", "in", "red"],
                            "sent_id": 1}]},
            {"ref_id": 1, "ann_id": 1002, "image_id": 285, "split": "train", "category_id": 23,
             "file_name": "COCO_train2014_000000000285_1002.jpg", "sent_ids": [2],
             "sentences": [{"sent": "bear in the corner", "raw": "bear in the corner",
                            "tokens": ["bear", "in", "the", "corner"], "sent_id": 2}]},
            {"ref_id": 2, "ann_id": 1003, "image_id": 285, "split": "train", "category_id": 23,
             "file_name": "COCO_train2014_000000000285_1003.jpg", "sent_ids": [3],
             "sentences": [{"sent": "bear mostly outside", "raw": "", "tokens": [], "sent_id": 3}]},
            {"ref_id": 3, "ann_id": 1001, "image_id": 139, "split": "testA", "category_id": 1,
             "file_name": "COCO_train2014_000000000139_1001.jpg", "sent_ids": [4],
             "sentences": [{"sent": "test sentence", "raw": "", "tokens": [], "sent_id": 4}]}]
    return _write(root / "refs(unc).json", refs)


def visual_genome(root: Path) -> dict:
    _write(root / "VG_100K/1.jpg", photo(1001, (800, 600)))
    _write(root / "VG_100K_2/2.jpg", photo(1002, (800, 600)))
    regions = [{"regions": [{"region_id": 1382, "width": 82, "height": 139, "image_id": 1,
                             "phrase": "the clock is green in colour", "y": 57, "x": 421},
                            {"region_id": 1383, "width": 400, "height": 100, "image_id": 1,
                             "phrase": "shade is along the street", "y": 550, "x": 600}], "id": 1},
               {"regions": [{"region_id": 2001, "width": 100, "height": 50, "image_id": 2,
                             "phrase": "a white car", "y": 10, "x": 20}], "id": 2}]
    _write(root / "region_descriptions.json", regions)
    return {"regions": root / "region_descriptions.json", "images": [root / "VG_100K", root / "VG_100K_2"]}


def gqa(root: Path) -> dict:
    _write(root / "images/2354786.jpg", photo(2354786, (500, 333)))
    _write(root / "questions/train_balanced_questions.json", {
        "02930152": {"semantic": [], "entailed": [], "equivalent": ["02930152"], "question": "Is the sky dark?",
                     "imageId": "2354786", "isBalanced": True, "groups": {"global": None, "local": "06-sky_dark"},
                     "answer": "yes", "semanticStr": "", "annotations": {}, "types": {}, "fullAnswer":
                     "Yes, the sky is dark."}})
    return {"questions": root / "questions/train_balanced_questions.json", "images": root / "images"}


def text_vqa_sets(root: Path) -> dict:
    """TextVQA, DocVQA, ChartQA and OCR-VQA, one question each."""
    _write(root / "textvqa/train_images/0054c91397f2fe05.jpg", photo(54, (1024, 768)))
    _write(root / "textvqa/TextVQA_0.5.1_train.json", {
        "dataset_type": "train", "dataset_name": "textvqa", "dataset_version": "0.5.1",
        "data": [{"question": "what is the brand of phone?", "image_id": "0054c91397f2fe05",
                  "image_classes": ["Mobile phone"], "image_width": 1024, "image_height": 768,
                  "answers": ["nokia"] * 7 + ["toshiba"] * 3, "question_tokens": ["what"], "question_id": 0,
                  "set_name": "train"}]})
    _write(root / "docvqa/train/documents/xnbl0037_1.png", photo(37, (600, 800), "PNG"))
    _write(root / "docvqa/train/train_v1.0.json", {
        "dataset_name": "docvqa", "dataset_split": "train", "dataset_version": "1.0",
        "data": [{"questionId": 337, "question": "what is the date mentioned in this letter?",
                  "question_types": ["handwritten"], "image": "documents/xnbl0037_1.png", "docId": 279,
                  "ucsf_document_id": "xnbl0037", "ucsf_document_page_no": "1", "answers": ["1/8/93"],
                  "data_split": "train"}]})
    _write(root / "chartqa/train/png/41699051005347.png", photo(41, (800, 557), "PNG"))
    _write(root / "chartqa/train/train_human.json",
           [{"imgname": "41699051005347.png", "query": "What is the highest value?", "label": "62"}])
    _write(root / "ocrvqa/images/1563050.jpg", photo(1563050, (300, 450)))
    _write(root / "ocrvqa/dataset.json", {"1563050": {
        "imageURL": "http://ecx.images-amazon.com/images/I/51o8r9rV5JL.jpg", "title": "A Field Guide",
        "authorName": "Someone", "genre": "Travel", "split": 1,
        "questions": ["Who wrote this book?", "What is the title of this book?"],
        "answers": ["Someone", "A Field Guide"]}})
    return {"textvqa": (root / "textvqa/TextVQA_0.5.1_train.json", root / "textvqa/train_images"),
            "docvqa": (root / "docvqa/train/train_v1.0.json", root / "docvqa/train"),
            "chartqa": (root / "chartqa/train/train_human.json", root / "chartqa/train/png"),
            "ocrvqa": (root / "ocrvqa/dataset.json", root / "ocrvqa/images")}


def ai2d(root: Path) -> dict:
    """AI2D as released: `questions/{imageName}.json` per diagram, `images/`, and the test split's image ids."""
    _write(root / "ai2d/images/4.png", photo(4004, (700, 500), "PNG"))
    _write(root / "ai2d/images/9.png", photo(4009, (700, 500), "PNG"))
    _write(root / "ai2d/questions/4.png.json", {"imageName": "4.png", "questions": {
        "Which stage comes after the egg?": {"abcLabel": False, "answerTexts": ["larva", "pupa", "adult", "egg"],
                                             "correctAnswer": 0, "questionId": "4.png-0"},
        "What does label B show?": {"abcLabel": True, "answerTexts": ["adult", "egg", "larva", "pupa"],
                                    "correctAnswer": 3, "questionId": "4.png-1"}}})
    _write(root / "ai2d/questions/9.png.json", {"imageName": "9.png", "questions": {
        "Which is a producer?": {"abcLabel": False, "answerTexts": ["grass", "fox", "owl", "hawk"],
                                 "correctAnswer": 0, "questionId": "9.png-0"}}})
    _write(root / "ai2d_test_ids.csv", "9\n")
    return {"questions": root / "ai2d/questions", "images": root / "ai2d/images",
            "test_ids": root / "ai2d_test_ids.csv"}


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def grit(root: Path) -> Path:
    """What img2dataset writes from GRIT's parquet with --save_additional_columns '["id","noun_chunks","ref_exps"]'."""
    caption = "a dog and a cat on a sofa"
    samples = [
        (caption, [[0, 5, 0.1, 0.2, 0.5, 0.9, 0.7], [10, 15, 0.5, 0.3, 0.95, 0.95, 0.6]],
         [[0, 15, 0.1, 0.2, 0.95, 0.95, 0.5]]),
        ("the red car", [[0, 11, 0.25, 0.5, 1.2, 0.75, 0.8]], [[0, 11, 0.25, 0.5, 1.2, 0.75, 0.8]]),
    ]
    members = []
    for k, (text, chunks, refs) in enumerate(samples):
        key = f"{k:09d}"
        meta = {"url": f"https://example.com/{k}.jpg", "caption": text, "key": key, "status": "success",
                "error_message": None, "width": 256, "height": 192, "original_width": 1024,
                "original_height": 768, "exif": "{}", "sha256": "", "id": 1000 + k,
                "noun_chunks": chunks, "ref_exps": refs}
        members += [(f"{key}.jpg", photo(7000 + k, (256, 192))), (f"{key}.txt", text.encode()),
                    (f"{key}.json", json.dumps(meta).encode())]
    return _tar(root / "00000.tar", members)


def text(root: Path) -> list[Path]:
    return [_write(root / "corpus.txt", "The first line of plain text.\n\nA second, longer line of plain text.\n"),
            _write(root / "text.jsonl", json.dumps({"text": "Pure text from JSONL."}) + "\n")]


def chat(root: Path) -> Path:
    """Canonical JSONL: a stage-3 conversation over two images."""
    _write(root / "images/a.jpg", photo(501, (320, 240)))
    _write(root / "images/b.jpg", photo(502, (320, 240)))
    record = {"id": "two", "conversations": [
        {"from": "user", "value": "Picture 1: <img>images/a.jpg</img>\nPicture 2: <img>images/b.jpg</img>\n"
                                  "What differs?"},
        {"from": "assistant", "value": "The colours of the blocks."}]}
    return _write(root / "chat.jsonl", json.dumps(record) + "\n")


def write_all(root: Path) -> dict:
    """Every layout under `root`; returns the paths a recipe needs."""
    paths = {"coco": coco(root / "coco"), "vqav2": vqav2(root / "vqav2"), "refcoco": refcoco(root / "refcoco"),
             "vg": visual_genome(root / "vg"), "gqa": gqa(root / "gqa"), "grit": grit(root / "grit"),
             "ai2d": ai2d(root / "ai2d"),
             "text": text(root / "text"), "chat": chat(root / "chat")}
    paths.update(text_vqa_sets(root))
    return paths


def recipe(paths: dict, extra_sources: list[dict] = (), **top: object) -> dict:
    """A mix recipe over every fixture written by write_all (each source once; counts = what it holds)."""
    coco_paths, vqa, vg = paths["coco"], paths["vqav2"], paths["vg"]
    sources = [
        {"name": "coco", "task": "caption", "lang": "en", "weight": 4,
         "from": {"adapter": "coco_captions", "annotations": str(coco_paths["captions"]),
                  "images": str(coco_paths["images2017"])}},
        {"name": "vqav2", "task": "vqa", "weight": 2,
         "from": {"adapter": "vqav2", "questions": str(vqa["questions"]), "annotations": str(vqa["annotations"]),
                  "images": str(coco_paths["images2014"])}},
        {"name": "gqa", "task": "vqa", "weight": 1,
         "from": {"adapter": "gqa", "questions": str(paths["gqa"]["questions"]),
                  "images": str(paths["gqa"]["images"])}},
        *({"name": layout, "task": "vqa", "weight": 1,
           "from": {"adapter": "simple_vqa", "layout": layout, "annotations": str(paths[layout][0]),
                    "images": str(paths[layout][1])}} for layout in ("textvqa", "docvqa", "chartqa", "ocrvqa")),
        {"name": "ai2d", "task": "vqa", "count": 2,
         "from": {"adapter": "ai2d", "questions": str(paths["ai2d"]["questions"]),
                  "images": str(paths["ai2d"]["images"]), "exclude_ids": str(paths["ai2d"]["test_ids"])}},
        {"name": "refcoco", "task": "ref_grounding", "count": 4,
         "from": {"adapter": "refcoco", "refs": str(paths["refcoco"]), "instances": str(coco_paths["instances"]),
                  "images": str(coco_paths["images2014"])}},
        {"name": "vg", "task": "grounded_caption", "weight": 3,
         "from": {"adapter": "visual_genome", "regions": str(vg["regions"]), "images": [str(p) for p in vg["images"]]}},
        {"name": "grit", "task": "grounding", "weight": 2,
         "from": {"adapter": "grit", "paths": [str(paths["grit"])]}},
        {"name": "text", "task": "text", "weight": 3,
         "from": {"adapter": "text", "paths": [str(p) for p in paths["text"]]}},
        {"name": "chat", "task": "chat", "count": 1, "from": {"adapter": "jsonl", "path": str(paths["chat"])}},
        *extra_sources,
    ]
    return {"name": "fixtures", "seed": 0, "samples_per_unit": 8, "sources": sources, **top}
