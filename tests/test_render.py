import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES
from PIL import Image

from vlforge.cli import main
from vlforge.formats.tasks import TASKS
from vlforge.pipelines.executor import SessionOptions, UnitFailure
from vlforge.pipelines.export import export_qwenvl_json
from vlforge.pipelines.render import RenderOptions, load_render_recipe, run_render
from vlforge.shards.manifest import MANIFEST_DIR, read_manifests
from vlforge.shards.reader import iter_samples
from vlforge.shards.verify import verify_dir
from vlforge.shards.writer import ShardWriter

pytestmark = pytest.mark.usefixtures("ray_local")


def render(tmp_path: Path, task: str, lines: list, on_error: str = "raise", **kw) -> Path:
    src = tmp_path / "in"
    if not src.exists():
        shutil.copytree(EXAMPLES / "images", src / "images")
    jsonl = src / f"{task}.jsonl"
    texts = [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines]
    jsonl.write_text("".join(text + "\n" for text in texts))
    out = tmp_path / "out"
    run_render([jsonl], out, RenderOptions(task=task, on_error=on_error, **kw))
    return out


def test_every_bundled_task_renders_verifies_and_reads_back(tmp_path):
    out = tmp_path / "out"
    inputs = sorted(EXAMPLES.glob("*.jsonl"))
    assert {p.stem for p in inputs} == set(TASKS)
    for path in inputs:
        run_render([path], out, RenderOptions(task=path.stem))
    report = verify_dir(out)
    assert report.ok, report.problems
    samples = {json.loads(s["json"])["task"]: s for s in iter_samples(str(out))}
    assert set(samples) == set(TASKS)
    grounding = json.loads(samples["grounding"]["json"])
    assert "".join(s["text"] for s in grounding["segments"]) == (
        "<img></img>Generate the caption in English with grounding:<ref> Woman</ref>"
        "<box>(52,20),(734,999)</box> in an orange suit next to<ref> her helmet</ref>"
        "<box>(533,664),(999,999)</box> and<ref> a shuttle model</ref><box>(682,0),(911,559)</box>")
    # JPEG kept as is
    assert samples["grounding"]["0.jpg"] == (EXAMPLES / "images/astronaut.jpg").read_bytes()
    assert "0.jpg" not in samples["text"]
    assert json.loads(samples["grounding"]["json"])["meta"]["sizes"] == [[384, 384]]


def test_multi_image_chat_keeps_image_order(tmp_path):
    record = {"conversations": [
        {"from": "user", "value": "Picture 1: <img>images/chelsea.jpg</img>\n"
                                  "Picture 2: <img>images/rocket.jpg</img>\nWhich one flies?"},
        {"from": "assistant", "value": "The second."}]}
    out = render(tmp_path, "chat", [record])
    (sample,) = iter_samples(str(out))
    assert Image.open(EXAMPLES / "images/chelsea.jpg").tobytes() == Image.open(
        __import__("io").BytesIO(sample["0.jpg"])).tobytes()
    assert sample["1.jpg"] == (EXAMPLES / "images/rocket.jpg").read_bytes()
    text = "".join(s["text"] for s in json.loads(sample["json"])["segments"])
    assert "Picture 1: <img></img>\nPicture 2: <img></img>\nWhich one flies?" in text
    assert "images/" not in text


def test_png_with_alpha_is_stored_as_jpeg_on_white(tmp_path):
    (tmp_path / "in/images").mkdir(parents=True)
    Image.new("RGBA", (40, 20), (255, 0, 0, 0)).save(tmp_path / "in/images/clear.png")
    out = render(tmp_path, "caption", [{"image": "images/clear.png", "caption": "nothing"}])
    (sample,) = iter_samples(str(out))
    im = Image.open(__import__("io").BytesIO(sample["0.jpg"]))
    assert (im.format, im.size) == ("JPEG", (40, 20))
    assert min(im.getpixel((20, 10))) > 245  # transparent pixels became white, not black


BAD_LINES = [
    ("{not json", "line"),
    ({"caption": "no image"}, "image"),
    ({"image": "images/missing.jpg", "caption": "x"}, "image"),
    ({"image": "images/not-an-image.jpg", "caption": "x"}, "image"),
    ({"image": "images/chelsea.jpg", "caption": 7}, "caption"),
    ({"image": "images/chelsea.jpg", "caption": "x", "lang": "fr"}, "lang"),
]


@pytest.mark.parametrize(("line", "field"), BAD_LINES)
def test_bad_line_raises_with_line_number_and_field(tmp_path, line, field):
    (tmp_path / "in/images").mkdir(parents=True)
    shutil.copy(EXAMPLES / "images/chelsea.jpg", tmp_path / "in/images")
    (tmp_path / "in/images/not-an-image.jpg").write_text("<html>404</html>")
    good = {"image": "images/chelsea.jpg", "caption": "a cat"}
    with pytest.raises(UnitFailure) as info:
        render(tmp_path, "caption", [good, line])
    assert f"caption.jsonl:2: field {field}:" in str(info.value)
    assert read_manifests(tmp_path / "out").num_rows == 0  # the failed unit committed nothing


def test_on_error_skip_records_rejected_lines(tmp_path):
    (tmp_path / "in/images").mkdir(parents=True)
    shutil.copy(EXAMPLES / "images/chelsea.jpg", tmp_path / "in/images")
    (tmp_path / "in/images/not-an-image.jpg").write_text("<html>404</html>")
    good = {"image": "images/chelsea.jpg", "caption": "a cat"}
    lines = [good] + [line for line, _ in BAD_LINES] + [good]
    out = render(tmp_path, "caption", lines, on_error="skip", lines_per_unit=3)
    rows = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [r["line"] for r in rows] == list(range(1, 9))
    assert [r["status"] for r in rows] == ["kept"] + ["dropped"] * 6 + ["kept"]
    assert [r["reason"] for r in rows[1:7]] == [f"bad_field:{field}" for _, field in BAD_LINES]
    assert "no such image file" in rows[3]["error"]
    assert verify_dir(out).ok


CHELSEA = "images/chelsea.jpg"
GOOD = {
    "grounding": {"image": CHELSEA, "caption": "a cat", "refs": [{"span": [2, 5], "boxes": [[0, 0, 9, 9]]}]},
    "ref_grounding": {"image": CHELSEA, "expression": "the cat", "box": [0, 0, 9, 9]},
    "chat": {"conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello"}]},
}
BAD_RECORDS = [
    ("grounding", {**GOOD["grounding"], "refs": [{"span": [2, 9], "boxes": [[0, 0, 9, 9]]}]}, "refs[0].span"),
    ("ref_grounding", '{"image": "images/chelsea.jpg", "expression": "c", "box": [0, 0, NaN, 9]}', "box[2]"),
    ("ref_grounding", {**GOOD["ref_grounding"], "box": [50, 0, 10, 9]}, "box"),
    ("chat", {"conversations": [{"from": "user", "value": "Hi"}, {"from": "bot", "value": "Hello"}]},
     "conversations[1].from"),
    ("chat", {"conversations": [{"from": "user", "value": "Picture 1: <img>images/gone.jpg</img>\nHi"},
                                {"from": "assistant", "value": "Hello"}]}, "image"),
]


@pytest.mark.parametrize(("task", "line", "field"), BAD_RECORDS)
def test_bad_record_names_line_and_field_or_is_recorded_as_rejected(tmp_path, task, line, field):
    with pytest.raises(UnitFailure) as info:
        render(tmp_path, task, [GOOD[task], line, GOOD[task]])
    assert f"{task}.jsonl:2: field {field}:" in str(info.value)
    out = tmp_path / "skipped"
    run_render([tmp_path / f"in/{task}.jsonl"], out, RenderOptions(task=task, on_error="skip"))
    rows = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [(r["line"], r["status"], r["reason"]) for r in rows] == [
        (1, "kept", None), (2, "dropped", f"bad_field:{field}"), (3, "kept", None)]


def test_bad_flags_and_clashing_inputs_stop_before_work(tmp_path):
    with pytest.raises(ValueError, match=r"^shard_samples: Input should be greater than or equal to 1$"):
        RenderOptions(task="text", shard_samples=0)
    with pytest.raises(ValueError, match=r"^max_bytes: Input should be greater than or equal to 1$"):
        RenderOptions(task="text", max_bytes=-1)
    with pytest.raises(ValueError, match=r"^task: unknown task 'captions'"):
        RenderOptions("captions")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "text.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="--input: file names must differ"):
        run_render([tmp_path / "a/text.jsonl", tmp_path / "b/text.jsonl"], tmp_path / "out",
                   RenderOptions("text"))
    assert not (tmp_path / "out").exists()


def test_oversized_and_non_utf8_lines_are_rejected_without_losing_neighbours(tmp_path):
    (tmp_path / "in").mkdir()
    jsonl = tmp_path / "in/text.jsonl"
    jsonl.write_bytes(b'{"text": "first"}\n{"text": "' + b"x" * 1000 + b'"}\n{"text": "\xff\xfe"}\r\n'
                      b'{"text": "carriage\rreturn"}\n\n{"text": "last"}')
    out = tmp_path / "out"
    options = RenderOptions(task="text", on_error="skip", lines_per_unit=2, max_line_bytes=200)
    run_render([jsonl], out, options)
    rows = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [(r["line"], r["status"], r["reason"]) for r in rows] == [
        (1, "kept", None), (2, "dropped", "bad_field:line"), (3, "dropped", "bad_field:line"),
        (4, "dropped", "bad_field:line"), (6, "kept", None)]  # a bare CR ends no line; JSON rejects it
    assert "longer than 200 bytes" in rows[1]["error"] and rows[2]["error"] == "not valid UTF-8"
    assert rows[3]["error"].startswith("invalid JSON")


def test_rerun_resumes_only_uncommitted_units(tmp_path):
    lines = [{"text": f"line {i}"} for i in range(10)]
    out = render(tmp_path, "text", lines, lines_per_unit=4)
    manifests = sorted((out / MANIFEST_DIR).iterdir())
    assert len(manifests) == 3
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    manifests[1].unlink()  # as if killed between its tars and its manifest
    report = run_render([tmp_path / "in/text.jsonl"], out, RenderOptions(task="text", lines_per_unit=4))
    assert report.skipped == ["text-00000", "text-00002"]
    assert [s.unit for s in report.stats] == ["text-00001"]
    assert report.removed == ["text-00001-000000.tar"]
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert after["text-00000-000000.tar"] == before["text-00000-000000.tar"]
    texts = sorted(json.loads(s["json"])["segments"][0]["text"] for s in iter_samples(str(out)))
    assert texts == sorted(f"line {i}" for i in range(10))


def test_executor_processes_renders_the_same_bytes_as_ray(tmp_path):
    shutil.copytree(EXAMPLES / "images", tmp_path / "images")
    jsonl = tmp_path / "caption.jsonl"
    jsonl.write_text((EXAMPLES / "caption.jsonl").read_text() * 3)
    digests = {}
    for executor in ("ray", "processes"):
        out = tmp_path / executor
        report = run_render([jsonl], out, RenderOptions(task="caption", lines_per_unit=1),
                            SessionOptions(executor=executor, num_cpus=2))
        assert len(report.stats) > 1
        digests[executor] = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    assert digests["ray"] == digests["processes"] and digests["ray"]


def test_export_qwenvl_json_round_trips_chat(tmp_path):
    chat = [json.loads(line) for line in (EXAMPLES / "chat.jsonl").read_text().splitlines()]
    out = render(tmp_path, "chat", chat[:1])
    args = ["export", "--format", "qwenvl-json", "--input", str(out), "--out", str(tmp_path / "qwen")]
    assert main(args) == 0
    (record,) = json.loads((tmp_path / "qwen/data.json").read_text())
    image = Path(record["conversations"][0]["value"].split("<img>")[1].split("</img>")[0])
    assert image.is_absolute() and image.read_bytes() == (EXAMPLES / "images/coffee.jpg").read_bytes()
    expected = chat[0]["conversations"]
    assert [t["from"] for t in record["conversations"]] == [t["from"] for t in expected]
    first = expected[0]["value"].replace("images/coffee.jpg", str(image))
    assert record["conversations"][0]["value"] == first
    assert [t["value"] for t in record["conversations"][1:]] == [t["value"] for t in expected[1:]]


def test_export_keeps_samples_of_same_named_shards_apart(tmp_path):
    for name, image in [("a", "chelsea"), ("b", "rocket")]:
        (tmp_path / name / "images").mkdir(parents=True)
        shutil.copy(EXAMPLES / f"images/{image}.jpg", tmp_path / name / "images/x.jpg")
        record = {"image": "images/x.jpg", "caption": image}
        (tmp_path / name / "caption.jsonl").write_text(json.dumps(record))
        run_render([tmp_path / name / "caption.jsonl"], tmp_path / name / "out", RenderOptions("caption"))
    export_qwenvl_json([str(tmp_path / "a/out"), str(tmp_path / "b/out")], tmp_path / "qwen")
    records = json.loads((tmp_path / "qwen/data.json").read_text())
    assert [r["conversations"][1]["value"] for r in records] == ["chelsea", "rocket"]
    for record, image in zip(records, ["chelsea", "rocket"], strict=True):
        path = Path(record["conversations"][0]["value"].split("<img>")[1].split("</img>")[0])
        assert path.read_bytes() == (EXAMPLES / f"images/{image}.jpg").read_bytes()


def test_export_rejects_a_caption_without_its_image(tmp_path):
    with ShardWriter(tmp_path / "clean", "u") as w:
        w.write("s0", {"txt": "a caption"}, {"uid": "0", "source": "t"})
    with pytest.raises(ValueError, match=r"u-000000.tar: sample s0: cannot export \(sample has 1 image slots but 0"):
        export_qwenvl_json(str(tmp_path / "clean"), tmp_path / "qwen")
    assert sorted(p.name for p in (tmp_path / "qwen").iterdir()) == ["__vlforge"]  # no data.json, images or temp file


def test_cli_render_verify_ls(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["render", "--task", "vqa", "--input", str(EXAMPLES / "vqa.jsonl"), "--out", str(out)]) == 0
    assert main(["shards", "verify", str(out)]) == 0
    assert main(["shards", "ls", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 samples" in printed and "vqa=2" in printed
    next(out.glob("*.tar")).write_bytes(b"garbage")
    assert main(["shards", "verify", str(out)]) == 1


def test_cli_unknown_task_fails_before_work(tmp_path):
    with pytest.raises(SystemExit):
        main(["render", "--task", "captions", "--input", str(EXAMPLES / "vqa.jsonl"),
              "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_cli_render_from_a_recipe_with_flags_on_top(tmp_path, capsys):
    recipe = tmp_path / "render.yaml"
    recipe.write_text(f"task: vqa\ninput: [{EXAMPLES / 'vqa.jsonl'}]\nout: {tmp_path / 'ignored'}\n"
                      "shard_samples: 1\nsource: from_recipe\n")
    out = tmp_path / "out"
    assert main(["render", "--recipe", str(recipe), "--out", str(out)]) == 0
    assert not (tmp_path / "ignored").exists()
    assert len(list(out.glob("*.tar"))) == 2  # shard_samples: 1 from the recipe, two samples
    assert set(read_manifests(out).column("source").to_pylist()) == {"from_recipe"}
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == f"read 2, kept 2 (100.0%), dropped 0  ->  {out}"


def test_cli_render_recipe_errors_name_the_file_and_key(tmp_path, capsys):
    recipe = tmp_path / "render.yaml"
    recipe.write_text("task: vqa\nlines_per_unit: 0\nmax_images: many\n")
    assert main(["render", "--recipe", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlforge render: error: {recipe}: ")
    for part in ("lines_per_unit: Input should be greater than or equal to 1", "max_images: Input should be a valid "
                 "integer", "input: Field required", "out: Field required"):
        assert part in err
    assert main(["render", "--task", "vqa", "--input", str(EXAMPLES / "vqa.jsonl")]) == 2
    assert capsys.readouterr().err == "vlforge render: error: out: Field required\n"


def test_bundled_render_recipe_is_valid_and_names_the_bundled_example():
    recipe = load_render_recipe(Path(__file__).parents[1] / "recipes/render-vqa.yaml", {"out": "o"})
    assert (recipe.task, recipe.on_error, recipe.options().max_samples) == ("vqa", "skip", 1000)
    assert [Path(__file__).parents[1] / p for p in recipe.input] == [EXAMPLES / "vqa.jsonl"]
