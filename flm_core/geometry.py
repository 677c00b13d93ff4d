"""Small rigid-body helpers (REP-103: x forward, y left, z up; quaternions as (x, y, z, w) like ROS).

All angles in radians, positions in metres. Arrays broadcast over leading dimensions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap angle(s) to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def wrap_angle_float(a: float) -> float:
    """:func:`wrap_angle` of one Python float (no numpy call: for per-sample hot paths)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def quat_to_yaw_float(q: Sequence[float]) -> float:
    """:func:`quat_to_yaw` of one quaternion (x, y, z, w) as Python floats (no numpy call: per-sample hot paths)."""
    x, y, z, w = (float(v) for v in q)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def yaw_to_quat(yaw: np.ndarray | float) -> np.ndarray:
    """Yaw (...,) -> quaternion (..., 4) as (x, y, z, w) about +z."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.zeros(yaw.shape + (4,))
    q[..., 2] = np.sin(0.5 * yaw)
    q[..., 3] = np.cos(0.5 * yaw)
    return q


def quat_to_yaw(q: np.ndarray) -> np.ndarray:
    """Quaternion (..., 4) as (x, y, z, w) -> yaw (...,) of its rotation (ZYX convention)."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_normalized(q: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Normalise quaternion(s) (..., 4); raises ValueError for zero or non-finite ones."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.all(np.isfinite(q)) or np.any(n < eps):
        raise ValueError('quaternion is zero or not finite')
    return q / n


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of (..., 4) (x, y, z, w) quaternions."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) v (..., 3) by unit quaternion(s) q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = q[..., :3]
    w = q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_slerp(q0: np.ndarray, q1: np.ndarray, s: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (..., 4) at fraction s in [0, 1]."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    small = sin_t < 1e-6
    w0 = np.where(small, 1.0 - s, np.sin((1.0 - s) * theta) / np.where(small, 1.0, sin_t))
    w1 = np.where(small, s, np.sin(s * theta) / np.where(small, 1.0, sin_t))
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def se2_compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Compose planar poses (..., 3) = (x, y, yaw): returns a (+) b (b expressed in a's frame)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack([
        a[..., 0] + c * b[..., 0] - s * b[..., 1],
        a[..., 1] + s * b[..., 0] + c * b[..., 1],
        wrap_angle(a[..., 2] + b[..., 2]),
    ], axis=-1)


def pose_offset(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3,) planar pose a minus pose b in the common frame: x, y (m) and the heading wrapped to (-pi, pi]."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d[2] = wrap_angle(d[2])
    return d


def mixture_cov(pose: np.ndarray, poses: Sequence[np.ndarray], covs: Sequence[np.ndarray],
                weights: Sequence[float]) -> np.ndarray:
    """(3, 3) second moment about ``pose`` (3,) of a mixture of Gaussians over planar poses: means ``poses``,
    covariances ``covs`` (3, 3) and ``weights`` (not necessarily normalised): sum w (C + d d^T) / sum w, d = mean -
    pose (:func:`pose_offset`)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    out = np.zeros((3, 3))
    for wi, p, c in zip(w, poses, covs):
        d = pose_offset(p, pose)
        out = out + wi * (np.asarray(c, dtype=np.float64) + np.outer(d, d))
    return out


def se2_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of planar pose(s) (..., 3)."""
    a = np.asarray(a, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    return np.stack([
        -c * a[..., 0] - s * a[..., 1],
        s * a[..., 0] - c * a[..., 1],
        wrap_angle(-a[..., 2]),
    ], axis=-1)
