"""CLIP-score filters: thresholds per source on a score that came with the dump, or on one computed here.

Qwen-VL keeps web pairs whose image-text CLIP similarity passes a dataset-specific bound; DataComp's
recipe keeps the top 30% by ViT-L/14 score. `ClipScoreFilter` applies thresholds to a precomputed column, and
ranks by it (`ranks_by`), so the clean plan turns a top fraction into a threshold per source (`ScoreHistogram`);
`ComputedClipScoreFilter` computes the cosine with an open_clip model from a local checkpoint (never
downloads, never invents a score when the checkpoint is absent). torch and open_clip load only when a
score is computed, so importing this module stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from vlforge.filters.base import (
    Filter,
    FilterResult,
    checked_params,
    float_column,
    image_values,
    set_column,
    string_values,
)

if TYPE_CHECKING:
    from PIL import Image

Thresholds = float | Mapping[str, float]


def _per_row_thresholds(sources: pa.ChunkedArray | pa.Array, thresholds: Thresholds,
                        default: float | None) -> np.ndarray:
    """Threshold of every row's source; NaN where the source has none (the row is not judged)."""
    if not isinstance(thresholds, Mapping):
        return np.full(len(sources), float(thresholds))
    fallback = np.nan if default is None else float(default)
    encoded = pc.dictionary_encode(sources).combine_chunks() if isinstance(sources, pa.ChunkedArray) \
        else pc.dictionary_encode(sources)
    per_value = np.array([thresholds.get(s, fallback) for s in encoded.dictionary.to_pylist()] + [fallback],
                         dtype=np.float64)
    indices = encoded.indices.fill_null(len(per_value) - 1).to_numpy(zero_copy_only=False)
    return per_value[indices]


def _threshold_reasons(scores: np.ndarray, limits: np.ndarray, missing: str) -> np.ndarray:
    """'clip_score<T' where a judged row scores below its threshold; 'clip_score_missing' per `missing`."""
    reasons = np.full(scores.shape, None, dtype=object)
    judged = ~np.isnan(limits)
    absent = judged & np.isnan(scores)
    if missing == "drop":
        reasons[absent] = "clip_score_missing"
    low = judged & ~absent & (np.nan_to_num(scores, nan=np.inf) < limits)
    for limit in np.unique(limits[low]):
        reasons[low & (limits == limit)] = f"clip_score<{limit:g}"
    return reasons


class ClipScoreFilter(Filter):
    """Keep rows whose precomputed score reaches the threshold of their source.

    `thresholds` is one number for every source or a mapping source -> threshold; sources absent from the
    mapping use `default`, and with `default=None` they are not judged. A judged row without a score (null,
    NaN, or `clip_model` other than `model` when `model` is given) is dropped as 'clip_score_missing', or
    kept with `missing="keep"`.
    """

    op = "clip_score"
    ranks_by = "clip_score"

    @checked_params
    def __init__(self, thresholds: Thresholds = 0.28, *, default: float | None = None,
                 column: str = "clip_score", model: str | None = None, missing: Literal["drop", "keep"] = "drop",
                 name: str = "clip_score") -> None:
        self.thresholds = dict(thresholds) if isinstance(thresholds, Mapping) else float(thresholds)
        self.default = default
        self.column, self.model = column, model
        self.missing = missing
        self.name = name

    def _scores(self, batch: pa.Table) -> np.ndarray:
        scores = float_column(batch, self.column)
        if self.model is not None:
            models = batch["clip_model"] if "clip_model" in batch.column_names \
                else pa.nulls(batch.num_rows, pa.string())
            same = pc.fill_null(pc.equal(models, self.model), False).to_numpy(zero_copy_only=False)
            scores[~same] = np.nan
        return scores

    def apply(self, batch: pa.Table) -> FilterResult:
        sources = batch["source"] if "source" in batch.column_names else pa.nulls(batch.num_rows, pa.string())
        limits = _per_row_thresholds(sources, self.thresholds, self.default)
        reasons = _threshold_reasons(self._scores(batch), limits, self.missing)
        out = set_column(batch, "clip_threshold", pa.array(limits, pa.float64(), from_pandas=True))
        return FilterResult.from_reasons(out, reasons)


class ClipScorer:
    """Cosine similarity of L2-normalised open_clip image and text embeddings, as open_clip computes it.

    Any open_clip model name with weights from a local checkpoint file (loaded with weights_only=True).
    `model_name` may also be the path of an open_clip model config (`NAME.json`): it is registered in the
    process that builds the scorer, so a custom architecture works inside Ray workers too.
    """

    def __init__(self, model_name: str, checkpoint_path: str | os.PathLike, device: str | None = None,
                 batch_size: int = 64) -> None:
        import open_clip
        import torch

        path = os.path.abspath(os.fspath(checkpoint_path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint_path: no such file {path!r}")
        if model_name.endswith(".json"):
            if not os.path.isfile(model_name):
                raise FileNotFoundError(f"model_name: no such model config {model_name!r}")
            open_clip.add_model_config(model_name)
            model_name = os.path.basename(model_name)[: -len(".json")]
        self.model_name = model_name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=path, device=self.device, weights_only=True)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)

    def score(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        """One cosine per (image, text) pair, float32."""
        import torch

        if len(images) != len(texts):
            raise ValueError(f"score: {len(images)} images but {len(texts)} texts")
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = torch.stack([self.preprocess(im) for im in images[start:start + self.batch_size]])
                tokens = self.tokenizer(list(texts[start:start + self.batch_size]))
                image_features = self.model.encode_image(pixels.to(self.device), normalize=True)
                text_features = self.model.encode_text(tokens.to(self.device), normalize=True)
                out.append((image_features * text_features).sum(dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class ComputedClipScoreFilter(Filter):
    """Compute the CLIP score of (image bytes, caption) with `ClipScorer`, then threshold it per source.

    Adds `clip_score_computed`. Without a checkpoint file, `on_missing="fail"` stops at construction
    (before any work) and `on_missing="skip"` keeps every row with a null score. The model loads on first
    use, so the filter pickles cheaply into workers. Rows whose image does not decode are dropped as
    'image_unreadable'.
    """

    op = "clip_score_computed"
    needs_image = True
    needs_steps_before = ("image",)  # scores validated, upright RGB images
    score_columns = ("clip_score_computed",)

    @checked_params
    def __init__(self, model_name: str, checkpoint_path: str | os.PathLike | None,
                 thresholds: Thresholds = 0.28, *, default: float | None = None,
                 on_missing: Literal["skip", "fail"] = "fail",
                 device: str | None = None, batch_size: Annotated[int, Field(ge=1)] = 64, image_col: str = "image",
                 caption_col: str = "caption", name: str = "clip_score_computed") -> None:
        self.on_missing = on_missing
        self.available = checkpoint_path is not None and os.path.isfile(checkpoint_path)
        if not self.available and on_missing == "fail":
            raise FileNotFoundError(f"checkpoint_path: no CLIP checkpoint at {checkpoint_path!r} for "
                                    f"{model_name!r}; provide one or set on_missing: skip")
        self.model_name, self.checkpoint_path = model_name, checkpoint_path
        self.thresholds = dict(thresholds) if isinstance(thresholds, Mapping) else float(thresholds)
        self.default = default
        self.device, self.batch_size = device, batch_size
        self.image_col, self.caption_col = image_col, caption_col
        self.name = name
        self._scorer: ClipScorer | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_scorer": None}

    def _get_scorer(self) -> ClipScorer:
        if self._scorer is None:
            self._scorer = ClipScorer(self.model_name, self.checkpoint_path, self.device, self.batch_size)
        return self._scorer

    def apply(self, batch: pa.Table) -> FilterResult:
        from vlforge.shards.imageio import open_image, to_rgb

        scores = np.full(batch.num_rows, np.nan)
        reasons = np.full(batch.num_rows, None, dtype=object)
        if self.available and batch.num_rows:
            images, texts, rows = [], [], []
            for row, (data, text) in enumerate(zip(image_values(batch, self.image_col),
                                                   string_values(batch, self.caption_col), strict=True)):
                try:
                    with open_image(data or b"") as im:
                        images.append(to_rgb(im))
                except (OSError, ValueError, SyntaxError, EOFError):  # ImageRejected is a ValueError
                    reasons[row] = "image_unreadable"
                    continue
                texts.append(text or "")
                rows.append(row)
            scores[rows] = self._get_scorer().score(images, texts)
            sources = batch["source"] if "source" in batch.column_names \
                else pa.nulls(batch.num_rows, pa.string())
            limits = _per_row_thresholds(sources, self.thresholds, self.default)
            judged = reasons == None  # noqa: E711 (elementwise on an object array)
            reasons[judged] = _threshold_reasons(scores, limits, "drop")[judged]
        out = set_column(batch, "clip_score_computed", pa.array(scores, pa.float64(), from_pandas=True))
        return FilterResult.from_reasons(out, reasons)
