"""Issue 8, items 5, 6 and 13: malformed and oversized input becomes a manifest row with a reason (or a clear
error naming the file), memory stays bounded whatever the input claims, and recipes order their image steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_clean_support import write_recipe

from vlforge.pipelines.clean_recipe import RecipeError, load_recipe

CLIP = {"model_name": "ViT-B-32", "checkpoint_path": None, "on_missing": "skip"}  # validated, never loaded


def test_computed_clip_before_the_image_step_is_refused_naming_both(tmp_path: Path) -> None:
    steps = [{"op": "clip_score_computed", "name": "clip_real", **CLIP}, {"op": "image", "name": "decode"}]
    with pytest.raises(RecipeError, match=r"step clip_real \(clip_score_computed\) comes before step decode "
                                          r"\(image\) for source web; put `image` first"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=steps))


def test_a_source_override_that_disables_the_first_image_step_is_checked_too(tmp_path: Path) -> None:
    steps = [{"op": "image", "name": "early"}, {"op": "clip_score_computed", "name": "clip_real", **CLIP},
             {"op": "image", "name": "late"}]
    sources = {"web": {"schema": "auto", "filters": {"early": {"enabled": False}}}}
    with pytest.raises(RecipeError, match=r"clip_real \(clip_score_computed\) comes before step late"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=steps, sources=sources))
