"""Timing (rate, latency, clock offset/jitter, dropouts) and mounting helpers shared by the sensor simulators."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Mount, SensorConfig
from ..motion import TrajectorySample
from ..platform import Tilt


@dataclass
class SensorTiming:
    """Message times of one sensor: t (N,) true acquisition time; stamp (N,) header stamp; arrival (N,) receive
    time; clock_offset and latency are the drawn constants (s)."""

    t: np.ndarray
    stamp: np.ndarray
    arrival: np.ndarray
    clock_offset: float
    latency: float

    def to_dict(self) -> dict:
        return {'clock_offset': float(self.clock_offset), 'latency': float(self.latency)}


def sensor_timing(cfg: SensorConfig, duration: float, rng: np.random.Generator, rate: float | None = None
                  ) -> SensorTiming:
    """Regular acquisition at ``rate`` (default cfg.rate) with a random phase, minus dropped messages."""
    rate = float(cfg.rate if rate is None else rate)
    phase = float(rng.uniform(0.0, 1.0 / rate))
    n = int(np.floor((duration - phase) * rate)) + 1
    t = phase + np.arange(max(n, 0)) / rate
    t = t[t < duration]
    offset = float(rng.normal(0.0, cfg.clock_offset_sigma)) if cfg.clock_offset_sigma > 0 else 0.0
    latency = float(rng.uniform(cfg.latency[0], cfg.latency[1]))
    jit = rng.normal(0.0, cfg.stamp_jitter, t.shape) if cfg.stamp_jitter > 0 else np.zeros(t.shape)
    lat = np.abs(rng.normal(0.0, cfg.latency_jitter, t.shape)) if cfg.latency_jitter > 0 else np.zeros(t.shape)
    keep = rng.random(t.shape) >= cfg.dropout
    return SensorTiming(t=t[keep], stamp=(t + offset + jit)[keep], arrival=(t + latency + lat)[keep],
                        clock_offset=offset, latency=latency)


def mount_pose(gt: TrajectorySample, m: Mount) -> np.ndarray:
    """(N, 4) sensor x, y, z, yaw in the map for robot poses gt.pose and mount m."""
    c, s = np.cos(gt.pose[:, 2]), np.sin(gt.pose[:, 2])
    return np.stack([gt.pose[:, 0] + c * m.x - s * m.y, gt.pose[:, 1] + s * m.x + c * m.y,
                     np.full(len(c), m.z), gt.pose[:, 2] + m.yaw], axis=-1)


def draw(r: tuple[float, float], rng: np.random.Generator) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def subset_timing(timing: SensorTiming, keep: np.ndarray) -> SensorTiming:
    """The same sensor timing with only the messages ``keep`` (bool mask or indices)."""
    return SensorTiming(t=timing.t[keep], stamp=timing.stamp[keep], arrival=timing.arrival[keep],
                        clock_offset=timing.clock_offset, latency=timing.latency)


def keyframe_times(duration: float, interval: float, gap_prob: float, gap: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """Times at which a keyframe logger keeps a scan: spaced U(0.5, 1.5) * interval apart, and after each with
    probability gap_prob a longer gap U(gap) (s)."""
    out: list[float] = []
    t = float(rng.uniform(0.0, interval))
    while t < duration:
        out.append(t)
        t += float(rng.uniform(0.5, 1.5)) * interval
        if rng.random() < gap_prob:
            t += float(rng.uniform(gap[0], gap[1]))
    return np.asarray(out)


def keyframe_mask(t: np.ndarray, key_t: np.ndarray) -> np.ndarray:
    """(N,) bool: for each keyframe time the first message at or after it (each message at most once)."""
    keep = np.zeros(len(t), dtype=bool)
    if len(t) == 0 or len(key_t) == 0:
        return keep
    idx = np.searchsorted(t, key_t, side='left')
    keep[idx[idx < len(t)]] = True
    return keep


def mount_position(gt: TrajectorySample, m: Mount, tilt: Tilt | None = None, z: np.ndarray | None = None
                   ) -> np.ndarray:
    """(N, 3) map position of a sensor at mount m on a platform with roll/pitch ``tilt`` (None: level), with the
    mount's height replaced by ``z`` (N,) where given (a tag moving up and down)."""
    n = len(gt.t)
    off = np.column_stack([np.full(n, m.x), np.full(n, m.y), np.full(n, m.z) if z is None else z])
    if tilt is not None:
        off = np.einsum('nij,nj->ni', tilt.matrix(gt.t), off)
    c, s = np.cos(gt.pose[:, 2]), np.sin(gt.pose[:, 2])
    return np.column_stack([gt.pose[:, 0] + c * off[:, 0] - s * off[:, 1],
                            gt.pose[:, 1] + s * off[:, 0] + c * off[:, 1], off[:, 2]])
