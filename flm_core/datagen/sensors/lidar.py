"""2D and 3D lidar simulation by ray casting (walls, extruded furniture/shelves, floor/ceiling, people).

2D: beams spread over ``fov`` centred on the mount's x axis (angle_min = -fov/2), one revolution per scan; each beam
is cast from the pose at its own time (motion distortion), ranges get Gaussian noise; returns are lost on glass and
dark surfaces with the configured probabilities and at random (``missing_prob``). REP-117: no return or beyond
range_max -> +inf, below range_min -> -inf.
3D: ``rings`` elevations evenly over ``vfov``, ``beams`` azimuths per ring, per-point time relative to the stamp;
organised cloud (height = rings, width = beams) in the sensor frame, NaN where there is no return.
Realism (config.RealismConfig, scenario.py): on a tilted platform every ray is cast from base_link's full
orientation (a level 2D lidar tilted down sees the floor far away); with glass see-through a beam lost on glass goes
on to what is behind it (2D lidar: ``glass_miss_prob`` of them; the rest return from the glass); a keyframe log keeps
only the scans at the given keyframe times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import LaserScan2D, PointCloud
from ..buildings import LIDAR_DARK, LIDAR_GLASS
from ..config import Lidar2DConfig, Lidar3DConfig
from ..dynamics import People
from ..motion import Trajectory
from ..raycast import Raycaster, cast_cylinders
from ..platform import Tilt
from .common import SensorTiming, draw, keyframe_mask, mount_pose, sensor_timing, subset_timing

_GLASS, _DARK = LIDAR_GLASS, LIDAR_DARK


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


@dataclass
class GlassPass:
    """Beams that hit glass pass it with probability ``prob`` and are cast on in ``through`` (glass as air)."""

    through: Raycaster
    prob: float
    rng: np.random.Generator


def _tilted_rays(gt, a: int, b: int, dt: np.ndarray, dirs_sensor: np.ndarray, mount, tilt: Tilt, t: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Origins and directions (C, D, 3) of scans a..b on a platform with roll/pitch ``tilt`` (the tilt at the
    scan's time, the yaw and position at each beam's time)."""
    Rt = tilt.matrix(t[a:b])                                              # (C, 3, 3) Ry(pitch) Rx(roll)
    cm, sm = np.cos(mount.yaw), np.sin(mount.yaw)
    d_base = np.stack([cm * dirs_sensor[:, 0] - sm * dirs_sensor[:, 1],
                       sm * dirs_sensor[:, 0] + cm * dirs_sensor[:, 1], dirs_sensor[:, 2]], -1)
    d_lvl = np.einsum('cij,dj->cdi', Rt, d_base)                          # (C, D, 3) in the yaw-aligned frame
    off = Rt @ np.array([mount.x, mount.y, mount.z])                      # (C, 3)
    yaw = gt.pose[a:b, 2:3] + gt.yaw_rate[a:b, None] * dt                 # (C, D)
    c, s = np.cos(yaw), np.sin(yaw)
    d = np.stack([c * d_lvl[..., 0] - s * d_lvl[..., 1], s * d_lvl[..., 0] + c * d_lvl[..., 1], d_lvl[..., 2]], -1)
    c0, s0 = np.cos(gt.pose[a:b, 2]), np.sin(gt.pose[a:b, 2])
    ox = gt.pose[a:b, 0] + c0 * off[:, 0] - s0 * off[:, 1]
    oy = gt.pose[a:b, 1] + s0 * off[:, 0] + c0 * off[:, 1]
    x = ox[:, None] + gt.vel[a:b, 0:1] * dt
    y = oy[:, None] + gt.vel[a:b, 1:2] * dt
    o = np.stack([x, y, np.broadcast_to(off[:, 2:3], x.shape)], -1)
    return o, d


def _cast_scans(rc: Raycaster, traj: Trajectory, people: People | None, t: np.ndarray, beam_dt: np.ndarray,
                dirs_sensor: np.ndarray, mount, max_range: float, chunk_rays: int = 150_000,
                tilt: Tilt | None = None, glass: GlassPass | None = None) -> tuple[np.ndarray, np.ndarray]:
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
        if tilt is None:
            x = sp[a:b, 0:1] + gt.vel[a:b, 0:1] * dt
            y = sp[a:b, 1:2] + gt.vel[a:b, 1:2] * dt
            yaw = sp[a:b, 3:4] + gt.yaw_rate[a:b, None] * dt
            c, s = np.cos(yaw), np.sin(yaw)
            dx = c * dirs_sensor[None, :, 0] - s * dirs_sensor[None, :, 1]
            dy = s * dirs_sensor[None, :, 0] + c * dirs_sensor[None, :, 1]
            dz = np.broadcast_to(dirs_sensor[None, :, 2], dx.shape)
            o = np.stack([x + 0 * dx, y + 0 * dx, np.broadcast_to(sp[a:b, 2:3], dx.shape)], -1)
            d = np.stack([dx, dy, dz], -1)
        else:
            o, d = _tilted_rays(gt, a, b, dt, dirs_sensor, mount, tilt, t)
        o, d = o.reshape(-1, 3), d.reshape(-1, 3)
        r, m = rc.cast(o, d, max_range)
        if glass is not None:
            through = _GLASS[m] & (glass.rng.random(len(m)) < glass.prob)
            if through.any():
                r[through], m[through] = glass.through.cast(o[through], d[through], max_range)
        o, d = o.reshape(b - a, D, 3), d.reshape(b - a, D, 3)
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
                     rng: np.random.Generator, tilt: Tilt | None = None, glass_through: Raycaster | None = None,
                     keyframes: np.ndarray | None = None) -> ScanStream:
    """``glass_through``: the world with glass as air (see-through glass); ``keyframes``: keep only the first scan
    at or after each of these times."""
    timing = sensor_timing(cfg, duration, rng)
    if keyframes is not None:
        timing = subset_timing(timing, keyframe_mask(timing.t, keyframes))
    sigma = draw(cfg.range_noise, rng)
    B = int(cfg.beams)
    full = cfg.fov >= 2 * math.pi - 1e-9
    inc = cfg.fov / B if full else cfg.fov / (B - 1)
    angles = (-cfg.fov / 2 + inc * np.arange(B)).astype(np.float32)
    scan_time = 1.0 / cfg.rate
    time_inc = scan_time * (inc / (2 * math.pi))
    dirs = np.stack([np.cos(angles.astype(np.float64)), np.sin(angles.astype(np.float64)), np.zeros(B)], -1)
    gp = GlassPass(glass_through, cfg.glass_miss_prob, rng) if glass_through is not None else None
    r, m = _cast_scans(rc, traj, people, timing.t, np.arange(B) * time_inc, dirs, cfg.mount, cfg.range_max,
                       tilt=tilt, glass=gp)
    S = len(timing.t)
    noisy = r + rng.normal(0.0, sigma, r.shape) if sigma > 0 else r.copy()
    u = rng.random((S, B))
    # with see-through glass the beams lost on glass already went on (GlassPass): the rest return from the glass
    glass_lost = _GLASS[m] & (rng.random((S, B)) < cfg.glass_miss_prob) if gp is None else np.zeros((S, B), bool)
    lost = (u < cfg.missing_prob) | glass_lost | (_DARK[m] & (rng.random((S, B)) < cfg.dark_miss_prob))
    noisy = np.where(lost | ~np.isfinite(r) | (noisy > cfg.range_max), np.inf, noisy)
    noisy = np.where(np.isfinite(noisy) & (noisy < cfg.range_min), -np.inf, noisy)
    return ScanStream(timing=timing, frame_id=cfg.frame_id, angles=angles, ranges=noisy.astype(np.float32),
                      range_min=float(cfg.range_min), range_max=float(cfg.range_max), time_increment=float(time_inc),
                      scan_time=float(scan_time), params={'range_noise': sigma, **timing.to_dict()})


def simulate_lidar3d(cfg: Lidar3DConfig, traj: Trajectory, rc: Raycaster, people: People | None, duration: float,
                     rng: np.random.Generator, tilt: Tilt | None = None, keyframes: np.ndarray | None = None
                     ) -> Lidar3DStream:
    timing = sensor_timing(cfg, duration, rng)
    if keyframes is not None:
        timing = subset_timing(timing, keyframe_mask(timing.t, keyframes))
    sigma = draw(cfg.range_noise, rng)
    R, B = int(cfg.rings), int(cfg.beams)
    elev = np.linspace(cfg.vfov[0], cfg.vfov[1], R) if R > 1 else np.array([0.5 * (cfg.vfov[0] + cfg.vfov[1])])
    az = -math.pi + 2 * math.pi * np.arange(B) / B
    E, A = np.meshgrid(elev, az, indexing='ij')  # (R, B): row = ring
    dirs = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    ptime = np.broadcast_to((np.arange(B) / B / cfg.rate)[None, :], (R, B)).reshape(-1)
    r, _ = _cast_scans(rc, traj, people, timing.t, ptime, dirs, cfg.mount, cfg.range_max, tilt=tilt)
    noisy = r + rng.normal(0.0, sigma, r.shape) if sigma > 0 else r
    lost = rng.random(r.shape) < cfg.missing_prob
    noisy = np.where(lost | ~np.isfinite(r) | (noisy > cfg.range_max) | (noisy < cfg.range_min), np.nan, noisy)
    ring = np.broadcast_to(np.arange(R, dtype=np.uint16)[:, None], (R, B)).reshape(-1).copy()
    return Lidar3DStream(timing=timing, frame_id=cfg.frame_id, rings=R, beams=B, ranges=noisy.astype(np.float32),
                         directions=dirs.astype(np.float32), ring=ring, time=ptime.astype(np.float32),
                         params={'range_noise': sigma, **timing.to_dict()})
