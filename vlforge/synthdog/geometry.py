"""Homographies (3x3 matrices acting on [x, y, 1]) and the SynthDoG perspective quad.

Every geometric step from the document layer to the output (perspective, rotation, fit, placement) is
one composed matrix, so the image is resampled once and each text line's quad is its box corners
pushed through the same matrix. Coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1),
which is also how PIL samples in `Image.transform`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Quad = np.ndarray  # (4, 2): TL, TR, BR, BL


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=np.float64)


def rotation(degrees: float, cx: float, cy: float) -> np.ndarray:
    """Counter-clockwise on screen (y points down) about (cx, cy)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    turn = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)
    return translation(cx, cy) @ turn @ translation(-cx, -cy)


def box_corners(x0: float, y0: float, x1: float, y1: float) -> Quad:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def quad_to_quad(src: Quad, dst: Quad) -> np.ndarray:
    """The homography taking the 4 points of src onto those of dst."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.c_[pts, np.ones(len(pts))] @ matrix.T
    return out[:, :2] / out[:, 2:3]


def pil_coefficients(matrix: np.ndarray) -> tuple[float, ...]:
    """Image.transform(PERSPECTIVE) data: the output-to-input map, normalised so its last entry is 1."""
    inverse = np.linalg.inv(matrix)
    inverse /= inverse[2, 2]
    return tuple(float(v) for v in inverse.flatten()[:8])


def bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    pts = np.asarray(points).reshape(-1, 2)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def perspective_quad(width: float, height: float, percents: Sequence[float], aligns: Sequence[float]) -> Quad:
    """SynthDoG's Perspective: the top, right, bottom and left sides shrink to `percents` of their length,
    each slid along itself by `aligns` (in [-1, 1]) times the room it freed."""
    sizes = np.array([width, height, width, height], dtype=np.float64)
    values = (sizes - sizes * np.asarray(percents, dtype=np.float64)) / 2
    shift = np.asarray(aligns, dtype=np.float64) * np.abs(values)
    offsets = np.array([
        [values[0] + shift[0], values[3] + shift[3]],
        [-values[0] + shift[0], values[1] + shift[1]],
        [-values[2] + shift[2], -values[1] + shift[1]],
        [values[2] + shift[2], -values[3] + shift[3]],
    ])
    return box_corners(0, 0, width, height) + offsets
