"""Learning rate: linear warm-up to the peak, then cosine decay to the minimum (Qwen-VL, all stages)."""

from __future__ import annotations

import math


def lr_at(step: int, peak: float, minimum: float, warmup: int, total: int) -> float:
    """LR of optimizer step `step` (0-based): peak·(step+1)/warmup while warming up, then cosine to `minimum`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + (peak - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))
