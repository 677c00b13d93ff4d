"""IMU: specific force and angular rate of the mounted IMU from the analytic trajectory (flat floor, REP-145:
at rest the accelerometer reads +g on z), with per-axis scale errors, white noise (density * sqrt(rate)) and
random-walk biases (initial bias ~ N(0, bias_sigma), increments ~ N(0, rw * sqrt(dt))). Orientation is not provided.

On a tilted platform (platform.Tilt) or with a rolled/pitched mount (e.g. z-down: roll = pi) the measurement is
the full 3D one: angular velocity w_b of base_link from the ZYX Euler rates, specific force
f_b = R^T (a + g z) + alpha_b x r + w_b x (w_b x r) at the lever arm r, both rotated into the IMU frame by the
mount's rotation (R_mount^T); a z-down IMU at rest reads -g on its z axis (REP-145)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import ImuSample
from ..config import ImuConfig
from ..motion import Trajectory
from ..platform import Tilt, body_rates, rot_ypr
from .common import SensorTiming, draw, sensor_timing


@dataclass
class ImuStream:
    """gyro (N, 3) rad/s and accel (N, 3) m/s^2 in the IMU frame; true biases (N, 3) each."""

    timing: SensorTiming
    frame_id: str
    gyro: np.ndarray
    accel: np.ndarray
    gyro_bias: np.ndarray
    accel_bias: np.ndarray
    gyro_sigma: float
    accel_sigma: float
    params: dict

    def measurements(self) -> Iterator[ImuSample]:
        gc = np.eye(3) * self.gyro_sigma ** 2
        ac = np.eye(3) * self.accel_sigma ** 2
        oc = np.zeros((3, 3))
        oc[0, 0] = -1.0
        for i in range(len(self.timing.t)):
            yield ImuSample(stamp=float(self.timing.stamp[i]), frame_id=self.frame_id,
                            angular_velocity=self.gyro[i], linear_acceleration=self.accel[i], orientation=None,
                            orientation_covariance=oc, angular_velocity_covariance=gc,
                            linear_acceleration_covariance=ac)


def _body_omega(traj: Trajectory, t: np.ndarray, tilt: Tilt | None) -> tuple[np.ndarray, np.ndarray]:
    """(angular velocity of base_link in base_link (N, 3), orientation Rz Ry Rx (N, 3, 3)) at times t."""
    gt = traj.sample(t)
    if tilt is None:
        z = np.zeros(len(t))
        return body_rates(gt.yaw_rate, z, z, z, z), rot_ypr(gt.pose[:, 2], z, z)
    (r, p), (rd, pd) = tilt.angles(t), tilt.angles(t, 1)
    return body_rates(gt.yaw_rate, r, p, rd, pd), rot_ypr(gt.pose[:, 2], p, r)


def true_imu_3d(traj: Trajectory, t: np.ndarray, mount, gravity: float, tilt: Tilt | None,
                h: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free (gyro (N, 3), accel (N, 3)) in the IMU frame of an IMU at ``mount`` (any rotation) on a platform
    with roll/pitch ``tilt`` (None: level). Angular acceleration by central differences (step h s)."""
    t = np.asarray(t, dtype=np.float64)
    gt = traj.sample(t)
    w, R = _body_omega(traj, t, tilt)
    alpha = (_body_omega(traj, t + h, tilt)[0] - _body_omega(traj, t - h, tilt)[0]) / (2.0 * h)
    a_w = np.column_stack([gt.acc, np.full(len(t), gravity)])          # world acceleration + g (m/s^2)
    r = np.array([mount.x, mount.y, mount.z])
    f_b = np.einsum('nji,nj->ni', R, a_w) + np.cross(alpha, r) + np.cross(w, np.cross(w, r))
    Rm = rot_ypr(mount.yaw, getattr(mount, 'pitch', 0.0), getattr(mount, 'roll', 0.0))
    return w @ Rm, f_b @ Rm                                            # R_m^T v for row vectors v


def true_imu(traj: Trajectory, t: np.ndarray, mount, gravity: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free (gyro (N, 3), accel (N, 3)) of an IMU at ``mount`` on the robot at times t (level platform,
    mount turned about z only)."""
    gt = traj.sample(t)
    c, s = np.cos(gt.pose[:, 2]), np.sin(gt.pose[:, 2])
    ab = np.stack([c * gt.acc[:, 0] + s * gt.acc[:, 1], -s * gt.acc[:, 0] + c * gt.acc[:, 1]], -1)
    w, al = gt.yaw_rate, gt.yaw_acc
    # lever arm: a + alpha x r + w x (w x r), rotation about z only
    ax = ab[:, 0] - al * mount.y - w * w * mount.x
    ay = ab[:, 1] + al * mount.x - w * w * mount.y
    cm, sm = np.cos(mount.yaw), np.sin(mount.yaw)
    acc = np.stack([cm * ax + sm * ay, -sm * ax + cm * ay, np.full(len(t), gravity)], -1)
    gyro = np.stack([np.zeros(len(t)), np.zeros(len(t)), w], -1)
    return gyro, acc


def simulate_imu(cfg: ImuConfig, traj: Trajectory, duration: float, rng: np.random.Generator,
                 tilt: Tilt | None = None) -> ImuStream:
    timing = sensor_timing(cfg, duration, rng)
    n = len(timing.t)
    gnd, and_ = draw(cfg.gyro_noise_density, rng), draw(cfg.accel_noise_density, rng)
    g_scale = rng.normal(0.0, cfg.scale_sigma, 3)
    a_scale = rng.normal(0.0, cfg.scale_sigma, 3)
    bg0 = rng.normal(0.0, cfg.gyro_bias_sigma, 3)
    ba0 = rng.normal(0.0, cfg.accel_bias_sigma, 3)
    dt = 1.0 / cfg.rate
    bg = bg0 + np.cumsum(rng.normal(0.0, cfg.gyro_bias_rw * np.sqrt(dt), (n, 3)), axis=0)
    ba = ba0 + np.cumsum(rng.normal(0.0, cfg.accel_bias_rw * np.sqrt(dt), (n, 3)), axis=0)
    gs, as_ = gnd * np.sqrt(cfg.rate), and_ * np.sqrt(cfg.rate)
    if tilt is None and cfg.mount.roll == 0 and cfg.mount.pitch == 0:
        gyro, acc = true_imu(traj, timing.t, cfg.mount, cfg.gravity)
    else:
        gyro, acc = true_imu_3d(traj, timing.t, cfg.mount, cfg.gravity, tilt)
    gyro = gyro * (1.0 + g_scale) + bg + rng.normal(0.0, gs, (n, 3))
    acc = acc * (1.0 + a_scale) + ba + rng.normal(0.0, as_, (n, 3))
    return ImuStream(timing=timing, frame_id=cfg.frame_id, gyro=gyro, accel=acc, gyro_bias=bg, accel_bias=ba,
                     gyro_sigma=float(gs), accel_sigma=float(as_),
                     params={'gyro_noise_density': gnd, 'accel_noise_density': and_,
                             'gyro_scale': g_scale.tolist(), 'accel_scale': a_scale.tolist(),
                             'gyro_bias0': bg0.tolist(), 'accel_bias0': ba0.tolist(), **timing.to_dict()})
