"""Cleaning operators for raw image-text rows: one operator per module, all sharing the `Filter` contract.

Importing this package loads pyarrow, numpy, ftfy, Pillow and xxhash; langdetect's profiles load on first
use, torch and open_clip only when a CLIP score is computed.
"""

from vlforge.filters.base import Filter, FilterResult, FilterStats, StageCounts, run_filters
from vlforge.filters.caption import CaptionFilter
from vlforge.filters.clip_score import ClipScoreFilter, ComputedClipScoreFilter, quantile_thresholds
from vlforge.filters.dedup import DuplicateFilter
from vlforge.filters.image import ImageFilter
from vlforge.filters.language import LanguageFilter
from vlforge.filters.metadata import AspectRatioFilter, ImageSizeFilter

__all__ = [
    "AspectRatioFilter",
    "CaptionFilter",
    "ClipScoreFilter",
    "ComputedClipScoreFilter",
    "DuplicateFilter",
    "Filter",
    "FilterResult",
    "FilterStats",
    "ImageFilter",
    "ImageSizeFilter",
    "LanguageFilter",
    "StageCounts",
    "quantile_thresholds",
    "run_filters",
]
