"""Depth camera (RGB-D depth channel, low resolution): pinhole rays cast in 3D, z-depth with noise std
``coeff * z^2``, 32FC1 metres, NaN where invalid (out of [range_min, range_max] or missing). Frame: REP-103 optical
frame (z forward, x right, y down) of a camera whose body is at the mount pose."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import CameraIntrinsics, Image
from ..config import DepthConfig
from ..dynamics import People
from ..motion import Trajectory
from ..platform import Tilt
from ..raycast import Raycaster
from .common import SensorTiming, draw, sensor_timing
from .lidar import _cast_scans


@dataclass
class DepthStream:
    """depth (S, H, W) float32 m (NaN invalid) and the intrinsics."""

    timing: SensorTiming
    frame_id: str
    intrinsics: CameraIntrinsics
    depth: np.ndarray
    params: dict

    def measurements(self) -> Iterator[Image]:
        for i in range(len(self.timing.t)):
            yield Image(stamp=float(self.timing.stamp[i]), frame_id=self.frame_id, encoding='32FC1',
                        data=self.depth[i])


def intrinsics(cfg: DepthConfig) -> CameraIntrinsics:
    f = (cfg.width / 2.0) / math.tan(cfg.hfov / 2.0)
    K = np.array([[f, 0.0, cfg.width / 2.0 - 0.5], [0.0, f, cfg.height / 2.0 - 0.5], [0.0, 0.0, 1.0]])
    return CameraIntrinsics(width=cfg.width, height=cfg.height, K=K, frame_id=cfg.frame_id)


def simulate_depth(cfg: DepthConfig, traj: Trajectory, rc: Raycaster, people: People | None, duration: float,
                   rng: np.random.Generator, tilt: Tilt | None = None) -> DepthStream:
    timing = sensor_timing(cfg, duration, rng)
    coeff = draw(cfg.noise_coeff, rng)
    K = intrinsics(cfg)
    ray_opt = K.rays().reshape(-1, 3).astype(np.float64)          # (x/z, y/z, 1) optical
    norm = np.linalg.norm(ray_opt, axis=1)
    body = np.stack([ray_opt[:, 2], -ray_opt[:, 0], -ray_opt[:, 1]], -1) / norm[:, None]
    r, _ = _cast_scans(rc, traj, people, timing.t, np.zeros(len(body)), body, cfg.mount, cfg.range_max * 2.0,
                       tilt=tilt)
    z = r / norm[None, :]
    z = z + rng.normal(0.0, 1.0, z.shape) * coeff * np.where(np.isfinite(z), z, 0.0) ** 2
    bad = ~np.isfinite(z) | (z < cfg.range_min) | (z > cfg.range_max) | (rng.random(z.shape) < cfg.missing_prob)
    z = np.where(bad, np.nan, z).astype(np.float32).reshape(-1, cfg.height, cfg.width)
    return DepthStream(timing=timing, frame_id=cfg.frame_id, intrinsics=K, depth=z,
                       params={'noise_coeff': coeff, **timing.to_dict()})
