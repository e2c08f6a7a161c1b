"""The out-of-image rule and each adapter's box convention, against hand-computed grid values."""

import pytest

from vlforge.formats.tasks import render
from vlforge.sources.annotations.boxes import BoxOutside, fit_box, fit_record


def test_a_box_inside_is_unchanged():
    assert fit_box([10, 20, 30, 40], 100, 100) == ([10, 20, 30, 40], False)


def test_coco_xywh_becomes_xyxy():
    assert fit_box([10, 20, 30, 40], 100, 100, "xywh") == ([10, 20, 40, 60], False)


def test_a_box_mostly_inside_is_clipped():
    # x 80..120 on a 100-wide image: 20/40 = 50% inside, exactly the limit
    assert fit_box([80, 0, 120, 10], 100, 100) == ([80, 0, 100, 10], True)


def test_a_box_mostly_outside_is_rejected():
    with pytest.raises(BoxOutside, match="49% of the box"):
        fit_box([80.4, 0, 120, 10], 100, 100)  # 19.6/39.6 = 49.5% inside
    with pytest.raises(BoxOutside):
        fit_box([-50, -50, -10, -10], 100, 100)


def test_a_zero_area_box_counts_by_its_corner():
    assert fit_box([5, 5, 5, 5], 10, 10) == ([5, 5, 5, 5], False)
    with pytest.raises(BoxOutside):
        fit_box([11, 5, 11, 5], 10, 10)


def test_grounding_refs_are_fitted_box_by_box_and_counted():
    record = {"caption": "a dog", "refs": [{"span": [0, 5], "boxes": [[0.1, 0.2, 0.5, 0.9], [0.5, 0.5, 1.5, 0.9]]}]}
    fitted, clipped = fit_record("grounding", record, 1.0, 1.0)
    assert clipped == 1 and fitted["refs"][0]["boxes"][1] == [0.5, 0.5, 1.0, 0.9]


def test_rendered_boxes_per_convention():
    # COCO xywh [64, 48, 128, 96] on 640x480: (64/640, 48/480), (192/640, 144/480) -> (100,100),(300,300)
    coco, _ = fit_record("ref_grounding", {"image": "x", "expression": "man", "box": [64, 48, 128, 96],
                                           "box_format": "xywh"}, 640, 480)
    assert render("ref_grounding", coco, [(640, 480)])[2]["text"] == "<box>(100,100),(300,300)</box>"
    # VG x/y/w/h [421, 57, 82, 139] on 800x600: 526.25, 95, 628.75, 326.7 -> truncated
    vg, _ = fit_record("grounded_caption", {"image": "x", "caption": "clock", "box": [421, 57, 82, 139],
                                            "box_format": "xywh"}, 800, 600)
    assert render("grounded_caption", vg, [(800, 600)])[1]["text"] == "<ref>This</ref><box>(526,95),(628,326)</box> is"
    # GRIT normalised xyxy in a 1x1 frame; x2 1.2 is clipped to 1.0 -> 999
    grit, _ = fit_record("grounding", {"image": "x", "caption": "the red car",
                                       "refs": [{"span": [0, 11], "boxes": [[0.25, 0.5, 1.2, 0.75]]}]}, 1.0, 1.0)
    assert render("grounding", grit, [(1, 1)])[2]["text"] == "<ref> the red car</ref><box>(250,500),(999,750)</box>"
