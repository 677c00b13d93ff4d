"""A simulated mapping run: the site map a SLAM system would have made of the (mapping-time) world.

Keyframes cover the free space where the robot fits (one in every ``spacing`` x ``spacing`` block), each with a random
heading; from each, one 2D scan (``beams`` over 360 deg at the 2D lidar's height, ``range_max``, Gaussian noise;
returns lost on glass, dark surfaces and at random as the 2D lidar's config says, and with ``glass_see_through`` a
beam lost on glass goes on to what is behind it). Each scan is inserted at the pose the SLAM system believed:

    estimated = true + (wx(p), wy(p), wyaw(p)) + jitter

where wx, wy, wyaw are smooth random fields over the map (random Fourier features of a Gaussian process with
squared-exponential kernel, std ``drift_sigma`` / ``drift_yaw_sigma``, length scale ``drift_length``): the drift a
SLAM map keeps after loop closure, so the map is locally consistent and globally warped; jitter is white per keyframe.
Insertion counts, per cell, the returns ending in it (hits) and the beams passing through it before their return
(misses; beams without a return clear nothing). Hit counts are blurred by a Gaussian of ``blur`` cells, then each
cell is occupied (100) where hits >= 0.5 and hits / (hits + misses) >= ``occupied_thresh``, free (0) where it was
observed and that ratio <= ``free_thresh``, unknown (-1) elsewhere: a trinary map_server map on the same grid as the
world. With ``points`` the 3D map is the extruded mapping-time geometry (as the 3D baselines build it) moved by the
same warp field (translation only), for 3D scan matching.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..site import OccupancyMap
from .buildings import LIDAR_DARK, LIDAR_GLASS, Building
from .config import Lidar2DConfig, MappingConfig
from .raycast import Raycaster, glassless_raycaster

MIN_HITS = 0.5            # blurred hit count below which a cell is never called occupied


class WarpField:
    """A smooth random scalar field over the plane: ``sigma * sqrt(2/n) * sum_k z_k cos(w_k . p + b_k)`` with
    w_k ~ N(0, I / length^2), b_k ~ U(0, 2 pi), z_k ~ N(0, 1) (a squared-exponential Gaussian process, std sigma)."""

    def __init__(self, rng: np.random.Generator, sigma: float, length: float, n: int = 48) -> None:
        self.sigma = float(sigma)
        self.w = rng.normal(0.0, 1.0 / length, (n, 2))
        self.b = rng.uniform(0.0, 2.0 * math.pi, n)
        self.z = rng.normal(0.0, 1.0, n)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """(...,) field values at points xy (..., 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        n = len(self.z)
        return self.sigma * math.sqrt(2.0 / n) * (np.cos(xy @ self.w.T + self.b) @ self.z)


@dataclass
class MappedSite:
    """The outcome of a mapping run: ``map`` the occupancy grid, ``points`` (N, 3) float32 3D map or None,
    ``keyframes`` (K, 3) true and ``estimated`` (K, 3) believed keyframe poses (x, y, yaw)."""

    map: OccupancyMap
    points: np.ndarray | None
    keyframes: np.ndarray
    estimated: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def _keyframes(world: Building, spacing: float, clearance: float, rng: np.random.Generator) -> np.ndarray:
    """(K, 3) keyframe poses: one random free cell in every ``spacing`` x ``spacing`` block that has one (so narrow
    corridors are driven through too), each with a random heading."""
    free = world.free_space(clearance)
    if not free.any():
        free = world.inside
    step = max(1, int(round(spacing / world.resolution)))
    cells = np.argwhere(free)
    cells = cells[rng.permutation(len(cells))]
    block = (cells[:, 0] // step) * (free.shape[1] // step + 1) + cells[:, 1] // step
    _, first = np.unique(block, return_index=True)
    cells = cells[np.sort(first)]
    xy = world.map.cell_to_world(cells[:, ::-1])
    return np.column_stack([xy, rng.uniform(-math.pi, math.pi, len(xy))])


def _scan(world: Building, poses: np.ndarray, cfg: MappingConfig, lidar: Lidar2DConfig, see_through: bool,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ranges (K, B) (inf = no return) from the true keyframe poses, and the beam angles (B,)."""
    B = int(cfg.beams)
    ang = 2.0 * math.pi * np.arange(B) / B
    yaw = poses[:, 2:3] + ang[None, :]
    d = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], -1).reshape(-1, 3)
    o = np.repeat(np.column_stack([poses[:, :2], np.full(len(poses), lidar.mount.z)]), B, axis=0)
    rc = Raycaster.from_building(world)
    r, m = rc.cast(o, d, cfg.range_max)
    glass = LIDAR_GLASS[m] & (rng.random(len(r)) < lidar.glass_miss_prob)
    if see_through and glass.any():
        r[glass], m[glass] = glassless_raycaster(world).cast(o[glass], d[glass], cfg.range_max)
        glass[:] = False
    lost = glass | (LIDAR_DARK[m] & (rng.random(len(r)) < lidar.dark_miss_prob)) \
        | (rng.random(len(r)) < lidar.missing_prob)
    r = r + (rng.normal(0.0, cfg.range_noise, len(r)) if cfg.range_noise > 0 else 0.0)
    r = np.where(lost | ~np.isfinite(r) | (r > cfg.range_max) | (r < lidar.range_min), np.inf, r)
    return r.reshape(len(poses), B), ang


def _insert(shape: tuple[int, int], om: OccupancyMap, est: np.ndarray, ranges: np.ndarray, ang: np.ndarray,
            max_samples: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """(hits, misses) per cell (H, W) float64 of scans ``ranges`` (K, B) taken at poses ``est`` (K, 3); the map
    ``om`` has an axis-aligned origin (as generated buildings do)."""
    H, W = shape
    res = om.resolution
    k, j = np.nonzero(np.isfinite(ranges))
    r = ranges[k, j]
    yaw = est[k, 2] + ang[j]
    c, s = np.cos(yaw), np.sin(yaw)
    u0, v0 = (est[k, 0] - om.origin[0]) / res, (est[k, 1] - om.origin[1]) / res   # ray origins in cells

    def count(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        col, row = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        ok = (col >= 0) & (col < W) & (row >= 0) & (row < H)
        return np.bincount(row[ok] * W + col[ok], minlength=H * W).astype(np.float64)

    hits = count(u0 + c * (r / res), v0 + s * (r / res))
    misses = np.zeros(H * W)
    n = np.maximum(np.floor(r / res - 1.0), 0).astype(np.int64)   # samples every cell, stopping a cell short
    starts = np.concatenate([[0], np.cumsum(n)])
    a = 0
    while a < len(n):
        b = max(int(np.searchsorted(starts, starts[a] + max_samples, side='right')) - 1, a + 1)
        nn = n[a:b]
        idx = np.repeat(np.arange(a, b), nn)
        step = np.arange(len(idx)) - np.repeat(starts[a:b] - starts[a], nn) + 0.5   # cells along the ray
        misses += count(u0[idx] + step * c[idx], v0[idx] + step * s[idx])
        a = b
    return hits.reshape(H, W), misses.reshape(H, W)


def simulate_mapping(world: Building, cfg: MappingConfig, lidar: Lidar2DConfig, clearance: float,
                     rng: np.random.Generator, see_through: bool = True, points: bool = False) -> MappedSite:
    """Map ``world`` (the mapping-time building) as described in the module docstring."""
    poses = _keyframes(world, cfg.spacing, clearance, rng)
    ranges, ang = _scan(world, poses, cfg, lidar, see_through, rng)
    fields = [WarpField(rng, s, cfg.drift_length) for s in (cfg.drift_sigma, cfg.drift_sigma, cfg.drift_yaw_sigma)]
    K = len(poses)
    est = poses.copy()
    for i, f in enumerate(fields):
        est[:, i] += f(poses[:, :2])
    est[:, :2] += rng.normal(0.0, cfg.jitter, (K, 2)) if cfg.jitter > 0 else 0.0
    est[:, 2] += rng.normal(0.0, cfg.jitter_yaw, K) if cfg.jitter_yaw > 0 else 0.0
    om = world.map
    if om.origin[2] != 0:
        raise ValueError('simulate_mapping: the building grid must be axis-aligned (origin yaw 0)')
    hits, misses = _insert(om.shape, om, est, ranges, ang)
    if cfg.blur > 0:
        hits = ndimage.gaussian_filter(hits, cfg.blur, mode='constant')
    seen = hits + misses
    with np.errstate(invalid='ignore', divide='ignore'):
        p = np.where(seen > 0, hits / np.where(seen > 0, seen, 1.0), np.nan)
    grid = np.full(om.shape, -1, dtype=np.int8)
    grid[(seen > 0) & (p <= cfg.free_thresh)] = 0
    grid[(hits >= MIN_HITS) & (p >= cfg.occupied_thresh)] = 100
    pts = None
    if points:
        from ..estimation.icp import extrusion_point_map  # noqa: PLC0415 (only for sites with a 3D lidar)

        xyz, _ = extrusion_point_map(world.zlo, world.zhi, om, world.ceiling, inside=world.inside)
        xyz = xyz.copy()
        xyz[:, 0] += fields[0](xyz[:, :2])
        xyz[:, 1] += fields[1](xyz[:, :2])
        pts = xyz.astype(np.float32)
    drift = np.hypot(est[:, 0] - poses[:, 0], est[:, 1] - poses[:, 1])
    params = {'keyframes': K, 'rays': int(ranges.size), 'returns': int(np.isfinite(ranges).sum()),
              'drift_rms_m': float(np.sqrt(np.mean(drift ** 2))) if K else 0.0,
              'drift_yaw_rms_rad': float(np.sqrt(np.mean((est[:, 2] - poses[:, 2]) ** 2))) if K else 0.0,
              'occupied_cells': int((grid == 100).sum()), 'free_cells': int((grid == 0).sum()),
              'unknown_cells': int((grid == -1).sum())}
    return MappedSite(map=OccupancyMap(grid=grid, resolution=om.resolution, origin=np.array(om.origin, dtype=float)),
                      points=pts, keyframes=poses, estimated=est, params=params)
