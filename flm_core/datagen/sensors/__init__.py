"""Sensor simulators. Each takes its seeded config, the ground-truth trajectory and the world, and returns a
columnar stream (arrays over messages, cheap to window and to store) that also yields the project's measurement
dataclasses (:mod:`flm_core.measurements`) through ``measurements()``.

Every stream has ``t`` (true acquisition time, s), ``stamp`` (header stamp: sensor clock = t + clock offset + jitter)
and ``arrival`` (receive time = t + latency + jitter, the bag record time).
"""
from .common import SensorTiming, sensor_timing
from .depth import DepthStream, simulate_depth
from .imu import ImuStream, simulate_imu
from .lidar import Lidar3DStream, ScanStream, simulate_lidar2d, simulate_lidar3d
from .odom import OdomStream, simulate_odom
from .uwb import UwbStream, simulate_uwb

__all__ = ['SensorTiming', 'sensor_timing', 'DepthStream', 'simulate_depth', 'ImuStream', 'simulate_imu',
           'Lidar3DStream', 'ScanStream', 'simulate_lidar2d', 'simulate_lidar3d', 'OdomStream', 'simulate_odom',
           'UwbStream', 'simulate_uwb']
