"""Content checks on measurements before they reach the time buffer or the model.

:func:`rejection_reason` returns None for a usable measurement, or a short reason (a stable string, used as a
counter key in diagnostics) for one that must be dropped. Partially bad data that is still usable (a scan with
some NaN beams, a cloud with NaN points) is not rejected: those elements are masked downstream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flm_core.measurements import (
    Image,
    ImuSample,
    LaserScan2D,
    OdometrySample,
    PointCloud,
    RangeSample,
)

MAX_POINTS = 500_000        # clouds larger than this are decimated by the caller, never rejected
MAX_IMAGE_PIXELS = 4_000_000


@dataclass(frozen=True)
class Expectations:
    """What the node expects of its inputs: odometry frames, the known UWB anchor ids, and the fastest the robot
    moves (max_speed m/s, max_yaw_rate rad/s: odometry twists and pose increments beyond them are implausible)."""

    odom_frame: str = 'odom'
    base_frame: str = 'base_link'
    anchor_ids: frozenset[str] = frozenset()
    max_speed: float = 5.0
    max_yaw_rate: float = 6.0


def _finite(*arrays: np.ndarray) -> bool:
    # small arrays (vectors, covariances: the per-IMU-sample checks) through Python floats: ~5x cheaper than numpy
    for a in arrays:
        a = np.asarray(a)
        if a.size <= 64:
            if not all(map(math.isfinite, a.ravel().tolist())):
                return False
        elif not np.isfinite(a).all():
            return False
    return True


def _norm(q: np.ndarray) -> float:
    return math.hypot(*np.asarray(q, dtype=np.float64).ravel().tolist())


def rejection_reason(m: object, exp: Expectations) -> str | None:
    """None if ``m`` is usable, else why not ('no_frame_id', 'nonfinite', 'bad_quaternion', 'wrong_frame',
    'unknown_anchor', 'invalid_range', 'empty', 'nonfinite_covariance', 'too_large', 'bad_shape',
    'implausible_twist' (odometry faster than ``Expectations.max_speed`` / ``max_yaw_rate``),
    'no_valid_ranges' (a scan without one usable beam: every range NaN, negative or out of limits; +inf 'no return'
    beams count as usable, REP-117), 'no_finite_points' (a cloud whose points are all NaN/inf))."""
    if isinstance(m, RangeSample):
        if not m.anchor_id:
            return 'no_frame_id'
        if m.anchor_id not in exp.anchor_ids:
            return 'unknown_anchor'
        return None if m.valid() else 'invalid_range'
    frame = getattr(m, 'frame_id', None)
    if frame is not None and not frame:
        return 'no_frame_id'
    if isinstance(m, LaserScan2D):
        if m.ranges.size == 0:
            return 'empty'
        if m.angles.shape != m.ranges.shape:
            return 'bad_shape'
        if not (np.isfinite(m.range_max) and m.range_max > 0 and np.isfinite(m.range_min)):
            return 'invalid_range'
        r = m.ranges
        if not bool(np.any(((r >= m.range_min) & (r <= m.range_max)) | np.isposinf(r))):
            return 'no_valid_ranges'
        return None
    if isinstance(m, PointCloud):
        if m.xyz.shape[0] == 0:
            return 'empty'
        if not bool(np.any(np.all(np.isfinite(m.xyz), axis=-1))):
            return 'no_finite_points'
        return None
    if isinstance(m, Image):
        if m.data.size == 0:
            return 'empty'
        if m.data.shape[0] * m.data.shape[1] > MAX_IMAGE_PIXELS:
            return 'too_large'
        return None
    if isinstance(m, ImuSample):
        if not _finite(m.angular_velocity, m.linear_acceleration):
            return 'nonfinite'
        if m.orientation is not None:
            n = _norm(m.orientation) if _finite(m.orientation) else 0.0
            if abs(n - 1.0) > 0.1:
                return 'bad_quaternion'
        if not _finite(m.angular_velocity_covariance, m.linear_acceleration_covariance):
            return 'nonfinite_covariance'
        return None
    if isinstance(m, OdometrySample):
        if m.frame_id.lstrip('/') != exp.odom_frame or m.child_frame_id.lstrip('/') != exp.base_frame:
            return 'wrong_frame'
        if not _finite(m.position, m.orientation, m.linear_velocity, m.angular_velocity):
            return 'nonfinite'
        if abs(_norm(m.orientation) - 1.0) > 0.1:
            return 'bad_quaternion'
        if not _finite(m.pose_covariance, m.twist_covariance):
            return 'nonfinite_covariance'
        if math.hypot(float(m.linear_velocity[0]), float(m.linear_velocity[1])) > exp.max_speed \
                or abs(float(m.angular_velocity[2])) > exp.max_yaw_rate:
            return 'implausible_twist'
        return None
    return None
