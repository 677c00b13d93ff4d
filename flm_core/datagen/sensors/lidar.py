"""2D and 3D lidar simulation by ray casting (walls, extruded furniture/shelves, floor/ceiling, people).

2D: beams spread over ``fov`` centred on the mount's x axis (angle_min = -fov/2), one revolution per scan; each beam
is cast from the pose at its own time (motion distortion), ranges get Gaussian noise; returns are lost on glass and
dark surfaces with the configured probabilities and at random (``missing_prob``). REP-117: no return or beyond
range_max -> +inf, below range_min -> -inf.
3D: ``rings`` elevations evenly over ``vfov``, ``beams`` azimuths per ring, per-point time relative to the stamp;
organised cloud (height = rings, width = beams) in the sensor frame, NaN where there is no return.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import LaserScan2D, PointCloud
from ..buildings import MATERIALS
from ..config import Lidar2DConfig, Lidar3DConfig
from ..dynamics import People
from ..motion import Trajectory
from ..raycast import Raycaster, cast_cylinders
from .common import SensorTiming, draw, mount_pose, sensor_timing

_GLASS = np.array([m.lidar == 'glass' for m in MATERIALS] + [False] * (256 - len(MATERIALS)))
_DARK = np.array([m.lidar == 'dark' for m in MATERIALS] + [False] * (256 - len(MATERIALS)))


@dataclass
class ScanStream:
    """2D scans: ranges (S, B) float32 m; angles (B,) float32 rad."""

    timing: SensorTiming
    frame_id: str
    angles: np.ndarray
    ranges: np.ndarray
    range_min: float
    range_max: float
    time_increment: float
    scan_time: float
    params: dict

    def measurements(self) -> Iterator[LaserScan2D]:
        for i in range(len(self.timing.t)):
            yield LaserScan2D(stamp=float(self.timing.stamp[i]), frame_id=self.frame_id, angles=self.angles,
                              ranges=self.ranges[i], range_min=self.range_min, range_max=self.range_max,
                              time_increment=self.time_increment, scan_time=self.scan_time)


@dataclass
class Lidar3DStream:
    """3D scans: ranges (S, R*B) float32 m (NaN = no return), unit directions (R*B, 3) in the sensor frame,
    ring (R*B,) uint16, time (R*B,) float32 s after the stamp."""

    timing: SensorTiming
    frame_id: str
    rings: int
    beams: int
    ranges: np.ndarray
    directions: np.ndarray
    ring: np.ndarray
    time: np.ndarray
    params: dict

    def cloud(self, i: int) -> PointCloud:
        xyz = (self.ranges[i][:, None] * self.directions).astype(np.float32)
        return PointCloud(stamp=float(self.timing.stamp[i]), frame_id=self.frame_id, xyz=xyz, ring=self.ring,
                          time=self.time, height=self.rings, width=self.beams)

    def measurements(self) -> Iterator[PointCloud]:
        for i in range(len(self.timing.t)):
            yield self.cloud(i)


def _cast_scans(rc: Raycaster, traj: Trajectory, people: People | None, t: np.ndarray, beam_dt: np.ndarray,
                dirs_sensor: np.ndarray, mount, max_range: float, chunk_rays: int = 150_000
                ) -> tuple[np.ndarray, np.ndarray]:
    """Cast D sensor-frame directions (D, 3) for S scans at times t (S,), direction d at t + beam_dt[d].
    Returns (ranges (S, D) float64 inf = nothing, material (S, D) uint8)."""
    S, D = len(t), dirs_sensor.shape[0]
    out = np.full((S, D), np.inf)
    mat = np.zeros((S, D), dtype=np.uint8)
    gt = traj.sample(t)
    sp = mount_pose(gt, mount)
    per = max(1, chunk_rays // max(D, 1))
    for a in range(0, S, per):
        b = min(S, a + per)
        # pose of the sensor at each beam's time: extrapolate with the current velocity (motion distortion)
        dt = beam_dt[None, :]
        x = sp[a:b, 0:1] + gt.vel[a:b, 0:1] * dt
        y = sp[a:b, 1:2] + gt.vel[a:b, 1:2] * dt
        yaw = sp[a:b, 3:4] + gt.yaw_rate[a:b, None] * dt
        c, s = np.cos(yaw), np.sin(yaw)
        dx = c * dirs_sensor[None, :, 0] - s * dirs_sensor[None, :, 1]
        dy = s * dirs_sensor[None, :, 0] + c * dirs_sensor[None, :, 1]
        dz = np.broadcast_to(dirs_sensor[None, :, 2], dx.shape)
        o = np.stack([x + 0 * dx, y + 0 * dx, np.broadcast_to(sp[a:b, 2:3], dx.shape)], -1)
        d = np.stack([dx, dy, dz], -1)
        r, m = rc.cast(o.reshape(-1, 3), d.reshape(-1, 3), max_range)
        r = r.reshape(b - a, D)
        m = m.reshape(b - a, D)
        if people is not None and people.count:
            centers = people.positions(t[a:b])[:, None, :, :]  # (C, 1, P, 2)
            rp = cast_cylinders(o, d, centers, people.radius, people.height)
            closer = rp < r
            r = np.where(closer, rp, r)
            m = np.where(closer, 5, m).astype(np.uint8)  # people reflect like wood
        out[a:b], mat[a:b] = r, m
    return out, mat


def simulate_lidar2d(cfg: Lidar2DConfig, traj: Trajectory, rc: Raycaster, people: People | None, duration: float,
                     rng: np.random.Generator) -> ScanStream:
    timing = sensor_timing(cfg, duration, rng)
    sigma = draw(cfg.range_noise, rng)
    B = int(cfg.beams)
    full = cfg.fov >= 2 * math.pi - 1e-9
    inc = cfg.fov / B if full else cfg.fov / (B - 1)
    angles = (-cfg.fov / 2 + inc * np.arange(B)).astype(np.float32)
    scan_time = 1.0 / cfg.rate
    time_inc = scan_time * (inc / (2 * math.pi))
    dirs = np.stack([np.cos(angles.astype(np.float64)), np.sin(angles.astype(np.float64)), np.zeros(B)], -1)
    r, m = _cast_scans(rc, traj, people, timing.t, np.arange(B) * time_inc, dirs, cfg.mount, cfg.range_max)
    S = len(timing.t)
    noisy = r + rng.normal(0.0, sigma, r.shape) if sigma > 0 else r.copy()
    u = rng.random((S, B))
    lost = (u < cfg.missing_prob) | (_GLASS[m] & (rng.random((S, B)) < cfg.glass_miss_prob)) \
        | (_DARK[m] & (rng.random((S, B)) < cfg.dark_miss_prob))
    noisy = np.where(lost | ~np.isfinite(r) | (noisy > cfg.range_max), np.inf, noisy)
    noisy = np.where(np.isfinite(noisy) & (noisy < cfg.range_min), -np.inf, noisy)
    return ScanStream(timing=timing, frame_id=cfg.frame_id, angles=angles, ranges=noisy.astype(np.float32),
                      range_min=float(cfg.range_min), range_max=float(cfg.range_max), time_increment=float(time_inc),
                      scan_time=float(scan_time), params={'range_noise': sigma, **timing.to_dict()})


def simulate_lidar3d(cfg: Lidar3DConfig, traj: Trajectory, rc: Raycaster, people: People | None, duration: float,
                     rng: np.random.Generator) -> Lidar3DStream:
    timing = sensor_timing(cfg, duration, rng)
    sigma = draw(cfg.range_noise, rng)
    R, B = int(cfg.rings), int(cfg.beams)
    elev = np.linspace(cfg.vfov[0], cfg.vfov[1], R) if R > 1 else np.array([0.5 * (cfg.vfov[0] + cfg.vfov[1])])
    az = -math.pi + 2 * math.pi * np.arange(B) / B
    E, A = np.meshgrid(elev, az, indexing='ij')  # (R, B): row = ring
    dirs = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    ptime = np.broadcast_to((np.arange(B) / B / cfg.rate)[None, :], (R, B)).reshape(-1)
    r, _ = _cast_scans(rc, traj, people, timing.t, ptime, dirs, cfg.mount, cfg.range_max)
    noisy = r + rng.normal(0.0, sigma, r.shape) if sigma > 0 else r
    lost = rng.random(r.shape) < cfg.missing_prob
    noisy = np.where(lost | ~np.isfinite(r) | (noisy > cfg.range_max) | (noisy < cfg.range_min), np.nan, noisy)
    ring = np.broadcast_to(np.arange(R, dtype=np.uint16)[:, None], (R, B)).reshape(-1).copy()
    return Lidar3DStream(timing=timing, frame_id=cfg.frame_id, rings=R, beams=B, ranges=noisy.astype(np.float32),
                         directions=dirs.astype(np.float32), ring=ring, time=ptime.astype(np.float32),
                         params={'range_noise': sigma, **timing.to_dict()})
