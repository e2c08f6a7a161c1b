"""SynthDoG's grid-stack layout: blocks stacked top to bottom, each a grid of equal-height line boxes.

A block has its own text size, column count and alignment per column. Unlike SynthDoG (which lists a
grid column by column), cells come out row by row, the reading order of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlforge.synthdog.config import Layout
from vlforge.synthdog.sampling import chance, uniform


@dataclass(frozen=True)
class Cell:
    x: float
    y: float
    w: float
    h: float
    align: str


@dataclass(frozen=True)
class Block:
    cells: list[Cell]  # row by row, left to right


def grid(rng: np.random.Generator, box: tuple[float, float, float, float], text_size: float,
         cfg: Layout, fill: float) -> Block | None:
    """One grid of `text_size`-high rows inside box (left, top, width, height), or None if none fits."""
    left, top, width, height = box
    for choice in rng.permutation(cfg.max_row * cfg.max_col):
        rows, cols = int(choice) // cfg.max_col + 1, int(choice) % cfg.max_col + 1
        if text_size * (cols * 2 - 1) <= width and text_size * rows <= height:
            break
    else:
        return None

    bound = max(1 - text_size / width * (cols - 1), 0)
    fill = float(np.clip(fill, 0, bound))
    padding = int(rng.integers(4)) if cols > 1 else int(rng.integers(1, 4))
    pad_left, pad_right = bool(padding // 2), bool(padding % 2)

    # Alternating gaps and columns: weights[0], col, gap, col, ..., weights[-1] (fractions of width).
    weights = np.zeros(cols * 2 + 1)
    weights[1:-1] = text_size / width
    shares = 1 - rng.random(cols * 2 + 1)
    shares[0] = shares[0] if pad_left else 0
    shares[-1] = shares[-1] if pad_right else 0
    shares[1::2] *= max(fill - weights[1::2].sum(), 0) / shares[1::2].sum()
    gap_total = shares[::2].sum()
    shares[::2] *= max(1 - fill - weights[::2].sum(), 0) / gap_total if gap_total > 0 else 0
    xs = np.cumsum([0, *(width * (weights + shares))])
    aligns = [cfg.align[int(rng.integers(len(cfg.align)))] for _ in range(cols)]
    cells = [
        Cell(left + xs[c * 2 + 1], top + r * text_size, xs[c * 2 + 2] - xs[c * 2 + 1], text_size, aligns[c])
        for r in range(rows)
        for c in range(cols)
    ]
    return Block(cells)


def grid_stack(rng: np.random.Generator, box: tuple[float, float, float, float], cfg: Layout,
               min_text: float) -> list[Block]:
    """Blocks filling box from the top, then spread apart by random shares of the space left."""
    left, top, width, height = box
    if width <= 0 or height <= 0:
        return []
    spacing = uniform(rng, cfg.stack_spacing) * min(width, height)
    stack_full = chance(rng, cfg.stack_full)
    stack_fill = 1.0 if stack_full else uniform(rng, cfg.stack_fill)
    full = chance(rng, cfg.full)
    fill = 1.0 if full else uniform(rng, cfg.fill)

    blocks: list[Block] = []
    line = 0.0
    while True:
        text_size = max(uniform(rng, cfg.text_scale) * min(width, height), min_text)
        block = grid(rng, (left, top + line, width, height * stack_fill - line), text_size, cfg, fill)
        if block is None:
            break
        line = max(c.y + c.h - top for c in block.cells) + spacing
        blocks.append(block)

    space = max(height - max(line - spacing, 0), 0)
    shares = rng.random(len(blocks) + 1)
    shares *= space / shares.sum() if shares.sum() > 0 else 0
    offsets = np.cumsum(shares)
    return [
        Block([Cell(c.x, c.y + float(dy), c.w, c.h, c.align) for c in block.cells])
        for block, dy in zip(blocks, offsets, strict=False)
    ]
