"""Motion of the platform beyond the planar trajectory: roll and pitch of base_link over time (a tilted platform) and
the height of a hand-held or flying UWB tag, as smooth, bounded, analytic functions of time; plus the rotation
helpers the sensor simulators and the bag writer share (R = Rz(yaw) Ry(pitch) Rx(roll), REP-103, quaternions as
(x, y, z, w) like ROS).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Wave:
    """``mid + sum_k amp_k sin(2 pi freq_k t + phase_k)``: smooth and bounded by ``mid +- sum(amp)``."""

    mid: float
    amp: np.ndarray      # (K,)
    freq: np.ndarray     # (K,) Hz
    phase: np.ndarray    # (K,) rad

    @classmethod
    def draw(cls, rng: np.random.Generator, lo: float, hi: float, max_hz: float, k: int = 4) -> Wave:
        """A wave that stays within [lo, hi], with k components of frequency U(max_hz / 10, max_hz)."""
        w = rng.uniform(0.5, 1.0, k)
        amp = 0.5 * (hi - lo) * w / w.sum()
        return cls(mid=0.5 * (lo + hi), amp=amp, freq=rng.uniform(max_hz / 10.0, max_hz, k),
                   phase=rng.uniform(0.0, 2.0 * math.pi, k))

    def value(self, t: np.ndarray, order: int = 0) -> np.ndarray:
        """The ``order``-th time derivative (0, 1, 2) at times t (...,)."""
        t = np.asarray(t, dtype=np.float64)[..., None]
        w = 2.0 * math.pi * self.freq
        arg = w * t + self.phase
        if order == 0:
            return self.mid + (self.amp * np.sin(arg)).sum(-1)
        if order == 1:
            return (self.amp * w * np.cos(arg)).sum(-1)
        return -(self.amp * w * w * np.sin(arg)).sum(-1)


@dataclass(frozen=True)
class Tilt:
    """Roll and pitch of base_link (rad) over time."""

    roll: Wave
    pitch: Wave

    @classmethod
    def draw(cls, rng: np.random.Generator, max_angle: float, max_hz: float) -> Tilt:
        return cls(roll=Wave.draw(rng, -max_angle, max_angle, max_hz),
                   pitch=Wave.draw(rng, -max_angle, max_angle, max_hz))

    def angles(self, t: np.ndarray, order: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(roll, pitch) or their derivatives at times t."""
        return self.roll.value(t, order), self.pitch.value(t, order)

    def matrix(self, t: np.ndarray) -> np.ndarray:
        """(..., 3, 3) Ry(pitch) Rx(roll): the tilt part of base_link's orientation."""
        r, p = self.angles(t)
        return rot_ypr(np.zeros_like(r), p, r)


def rot_ypr(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """(..., 3, 3) rotation matrices Rz(yaw) Ry(pitch) Rx(roll)."""
    y, p, r = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (yaw, pitch, roll)))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    R = np.empty(y.shape + (3, 3))
    R[..., 0, 0] = cy * cp
    R[..., 0, 1] = cy * sp * sr - sy * cr
    R[..., 0, 2] = cy * sp * cr + sy * sr
    R[..., 1, 0] = sy * cp
    R[..., 1, 1] = sy * sp * sr + cy * cr
    R[..., 1, 2] = sy * sp * cr - cy * sr
    R[..., 2, 0] = -sp
    R[..., 2, 1] = cp * sr
    R[..., 2, 2] = cp * cr
    return R


def ypr_to_quat(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) of Rz(yaw) Ry(pitch) Rx(roll)."""
    y, p, r = np.broadcast_arrays(*(0.5 * np.asarray(v, dtype=np.float64) for v in (yaw, pitch, roll)))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    return np.stack([sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
                     cr * cp * cy + sr * sp * sy], axis=-1)


def body_rates(yaw_rate: np.ndarray, roll: np.ndarray, pitch: np.ndarray, roll_rate: np.ndarray,
               pitch_rate: np.ndarray) -> np.ndarray:
    """(N, 3) angular velocity in base_link from ZYX Euler angles and their rates (rad, rad/s)."""
    sr, cr, sp, cp = np.sin(roll), np.cos(roll), np.sin(pitch), np.cos(pitch)
    return np.stack([roll_rate - yaw_rate * sp, pitch_rate * cr + yaw_rate * sr * cp,
                     -pitch_rate * sr + yaw_rate * cr * cp], -1)
