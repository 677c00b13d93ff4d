"""Wheel odometry: wheel speeds from the true body twist, corrupted by per-wheel scale errors, a track-width error
(diff drive: the controller integrates with the nominal track width while the real one differs), relative noise and
slip events (a wheel over-spins by ``magnitude`` for ``duration``); integrated into a pose in the ``odom`` frame,
which starts at the identity (REP-105). Holonomic robots get per-axis scale errors on vx, vy and the yaw rate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...geometry import wrap_angle, yaw_to_quat
from ...measurements import OdometrySample
from ..config import OdomConfig
from ..motion import Trajectory
from .common import SensorTiming, sensor_timing


@dataclass
class OdomStream:
    """pose (N, 3) x y yaw in odom; twist (N, 3) vx vy wz in base_link."""

    timing: SensorTiming
    frame_id: str
    child_frame_id: str
    pose: np.ndarray
    twist: np.ndarray
    params: dict

    def measurements(self) -> Iterator[OdometrySample]:
        q = yaw_to_quat(self.pose[:, 2])
        pc = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2])
        tc = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2])
        for i in range(len(self.timing.t)):
            yield OdometrySample(stamp=float(self.timing.stamp[i]), frame_id=self.frame_id,
                                 child_frame_id=self.child_frame_id,
                                 position=np.array([self.pose[i, 0], self.pose[i, 1], 0.0]), orientation=q[i],
                                 linear_velocity=np.array([self.twist[i, 0], self.twist[i, 1], 0.0]),
                                 angular_velocity=np.array([0.0, 0.0, self.twist[i, 2]]),
                                 pose_covariance=pc, twist_covariance=tc)


def simulate_odom(cfg: OdomConfig, traj: Trajectory, robot: str, duration: float, rng: np.random.Generator,
                  child_frame_id: str = 'base_link') -> OdomStream:
    timing = sensor_timing(cfg, duration, rng)
    t = timing.t
    n = len(t)
    gt = traj.sample(t)
    vb = gt.body_velocity()
    w = gt.yaw_rate
    scale = rng.normal(0.0, cfg.scale_sigma, 3)
    track_err = float(rng.normal(0.0, cfg.track_sigma))
    # slip events (Poisson), each on one wheel/axis
    n_slip = int(rng.poisson(cfg.slip_rate * duration))
    s_t0 = rng.uniform(0.0, duration, n_slip)
    s_dur = rng.uniform(cfg.slip_duration[0], cfg.slip_duration[1], n_slip)
    s_mag = rng.uniform(cfg.slip_magnitude[0], cfg.slip_magnitude[1], n_slip)
    s_which = rng.integers(0, 2, n_slip)
    slip = np.zeros((n, 2))
    for a, d, m, k in zip(s_t0, s_dur, s_mag, s_which):
        i0, i1 = np.searchsorted(t, [a, a + d])
        slip[i0:i1, k] += m
    noise = rng.normal(0.0, cfg.wheel_noise, (n, 3))
    if robot == 'diff_drive':
        b_nom = cfg.track_width
        b_true = b_nom * (1.0 + track_err)
        vr = (vb[:, 0] + w * b_true / 2) * (1 + scale[0]) * (1 + slip[:, 0]) * (1 + noise[:, 0])
        vl = (vb[:, 0] - w * b_true / 2) * (1 + scale[1]) * (1 + slip[:, 1]) * (1 + noise[:, 1])
        vx, vy, wz = (vr + vl) / 2, np.zeros(n), (vr - vl) / b_nom
    else:
        vx = vb[:, 0] * (1 + scale[0]) * (1 + slip[:, 0]) * (1 + noise[:, 0])
        vy = vb[:, 1] * (1 + scale[1]) * (1 + slip[:, 1]) * (1 + noise[:, 1])
        wz = w * (1 + scale[2] + track_err) * (1 + noise[:, 2])
    # integrate (midpoint in yaw) from the identity
    dt = np.diff(t, prepend=t[0] if n else 0.0)
    yaw = np.cumsum(wz * dt)
    ym = yaw - 0.5 * wz * dt
    x = np.cumsum((np.cos(ym) * vx - np.sin(ym) * vy) * dt)
    y = np.cumsum((np.sin(ym) * vx + np.cos(ym) * vy) * dt)
    pose = np.stack([x, y, wrap_angle(yaw)], -1)
    return OdomStream(timing=timing, frame_id=cfg.frame_id, child_frame_id=child_frame_id, pose=pose,
                      twist=np.stack([vx, vy, wz], -1),
                      params={'scale': scale.tolist(), 'track_error': track_err, 'slips': n_slip,
                              **timing.to_dict()})
