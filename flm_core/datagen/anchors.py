"""UWB infrastructure: anchor layouts (3 to 16+ anchors) with per-anchor range biases.

Layouts (drawn uniformly from ``AnchorConfig.layouts``):
- ``corners``: the building's corners first, then evenly along the perimeter, wall-mounted heights.
- ``ceiling``: a regular grid on the ceiling (z = ceiling - 0.1 m).
- ``poor``: nearly collinear along one long wall (bad geometry, large dilution of precision).
- ``clustered``: all within ~2.5 m of one random point.
- ``random``: uniform over the building, wall-mounted heights.
Every position is snapped to the nearest inside cell at least 0.15 m from any obstacle. Biases ~ N(0, bias_sigma).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..site import Anchor
from .buildings import Building
from .config import AnchorConfig


@dataclass
class AnchorSet:
    """ids (A,), positions (A, 3) m in map, bias (A,) true range biases m, layout name."""

    ids: tuple[str, ...]
    positions: np.ndarray
    bias: np.ndarray
    layout: str

    def site_anchors(self, known_bias: bool) -> tuple[Anchor, ...]:
        return tuple(Anchor(id=i, position=p.copy(), bias=float(b) if known_bias else 0.0)
                     for i, p, b in zip(self.ids, self.positions, self.bias))


def _snap(b: Building, xy: np.ndarray) -> np.ndarray:
    ok = b.free_space(0.15)
    if not ok.any():
        ok = b.inside
    _, (ri, ci) = ndimage.distance_transform_edt(~ok, return_indices=True)
    cr = b.map.world_to_cell(xy)
    H, W = ok.shape
    c = np.clip(cr[:, 0], 0, W - 1)
    r = np.clip(cr[:, 1], 0, H - 1)
    rr, cc = ri[r, c], ci[r, c]
    snapped = b.map.cell_to_world(np.stack([cc, rr], -1))
    return np.where(ok[r, c][:, None], xy, snapped)


def generate_anchors(cfg: AnchorConfig, b: Building, rng: np.random.Generator) -> AnchorSet:
    n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
    layout = str(cfg.layouts[int(rng.integers(len(cfg.layouts)))])
    sx, sy = b.size
    m = 0.6
    zwall = lambda k: np.minimum(rng.uniform(cfg.wall_height[0], cfg.wall_height[1], k), b.ceiling - 0.05)  # noqa
    if layout == 'corners':
        per = 2 * (sx + sy - 4 * m)
        s = np.arange(n) * per / n
        # start at the four corners when possible
        if n >= 4:
            corners = np.array([0.0, sx - 2 * m, sx + sy - 4 * m, 2 * sx + sy - 6 * m])
            extra = (np.arange(n - 4) + 0.5) * per / max(n - 4, 1)
            s = np.concatenate([corners, extra])[:n]
        x = np.empty(n)
        y = np.empty(n)
        for i, si in enumerate(s % per):
            if si < sx - 2 * m:
                x[i], y[i] = m + si, m
            elif si < sx + sy - 4 * m:
                x[i], y[i] = sx - m, m + si - (sx - 2 * m)
            elif si < 2 * sx + sy - 6 * m:
                x[i], y[i] = sx - m - (si - (sx + sy - 4 * m)), sy - m
            else:
                x[i], y[i] = m, sy - m - (si - (2 * sx + sy - 6 * m))
        z = zwall(n)
    elif layout == 'ceiling':
        nx = max(1, int(round(math.sqrt(n * sx / sy))))
        ny = int(math.ceil(n / nx))
        gx, gy = np.meshgrid((np.arange(nx) + 0.5) * sx / nx, (np.arange(ny) + 0.5) * sy / ny)
        x, y = gx.ravel()[:n], gy.ravel()[:n]
        z = np.full(n, b.ceiling - 0.1)
    elif layout == 'poor':
        along_x = sx >= sy
        L = sx if along_x else sy
        a = rng.uniform(0.2, 0.8, n) * L
        c = m + rng.uniform(0.0, 0.3, n)
        x, y = (a, c) if along_x else (c, a)
        z = zwall(n)
    elif layout == 'clustered':
        cx, cy = rng.uniform(0.2, 0.8) * sx, rng.uniform(0.2, 0.8) * sy
        r = 2.5 * np.sqrt(rng.uniform(0, 1, n))
        th = rng.uniform(0, 2 * math.pi, n)
        x, y = cx + r * np.cos(th), cy + r * np.sin(th)
        z = zwall(n)
    else:  # random
        x, y = rng.uniform(m, sx - m, n), rng.uniform(m, sy - m, n)
        z = zwall(n)
    xy = _snap(b, np.stack([x, y], -1))
    pos = np.column_stack([xy, z]).astype(np.float64)
    bias = rng.normal(0.0, cfg.bias_sigma, n) if cfg.bias_sigma > 0 else np.zeros(n)
    return AnchorSet(ids=tuple(f'uwb_a{i:02d}' for i in range(n)), positions=pos, bias=bias, layout=layout)
