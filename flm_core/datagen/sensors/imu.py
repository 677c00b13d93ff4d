"""IMU: specific force and angular rate of the mounted IMU from the analytic trajectory (flat floor, REP-145:
at rest the accelerometer reads +g on z), with per-axis scale errors, white noise (density * sqrt(rate)) and
random-walk biases (initial bias ~ N(0, bias_sigma), increments ~ N(0, rw * sqrt(dt))). Orientation is not provided."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import ImuSample
from ..config import ImuConfig
from ..motion import Trajectory
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


def true_imu(traj: Trajectory, t: np.ndarray, mount, gravity: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free (gyro (N, 3), accel (N, 3)) of an IMU at ``mount`` on the robot at times t."""
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


def simulate_imu(cfg: ImuConfig, traj: Trajectory, duration: float, rng: np.random.Generator) -> ImuStream:
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
    gyro, acc = true_imu(traj, timing.t, cfg.mount, cfg.gravity)
    gyro = gyro * (1.0 + g_scale) + bg + rng.normal(0.0, gs, (n, 3))
    acc = acc * (1.0 + a_scale) + ba + rng.normal(0.0, as_, (n, 3))
    return ImuStream(timing=timing, frame_id=cfg.frame_id, gyro=gyro, accel=acc, gyro_bias=bg, accel_bias=ba,
                     gyro_sigma=float(gs), accel_sigma=float(as_),
                     params={'gyro_noise_density': gnd, 'accel_noise_density': and_,
                             'gyro_scale': g_scale.tolist(), 'accel_scale': a_scale.tolist(),
                             'gyro_bias0': bg0.tolist(), 'accel_bias0': ba0.tolist(), **timing.to_dict()})
