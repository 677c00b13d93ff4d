"""Trajectories for evaluation: TUM files (evo-compatible), ground-truth association, evo-style statistics.

A trajectory is ``t`` (N,) seconds and ``poses`` (N, 3) x, y, yaw in the map frame (planar; TUM files carry
z = 0 and the yaw as a quaternion about z). Statistics follow evo's definitions, so ``evo_ape tum gt.tum
est.tum`` and ``evo_rpe tum gt.tum est.tum`` (no alignment, translation part, RPE delta 1 frame) print the same
numbers as :func:`ape_stats` and :func:`rpe_stats` on the same files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flm_core.geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle, yaw_to_quat


@dataclass
class Trajectory:
    t: np.ndarray        # (N,) s, strictly increasing
    poses: np.ndarray    # (N, 3) x, y, yaw
    cov: np.ndarray | None = None  # (N, 3, 3) or None

    def __len__(self) -> int:
        return len(self.t)


def write_tum(path: str | Path, traj: Trajectory) -> Path:
    """Write ``timestamp x y z qx qy qz qw`` lines (evo's TUM format)."""
    path = Path(path)
    q = yaw_to_quat(traj.poses[:, 2]) if len(traj) else np.zeros((0, 4))
    data = np.column_stack([traj.t, traj.poses[:, 0], traj.poses[:, 1], np.zeros(len(traj)), q])
    np.savetxt(path, data, fmt='%.9f', header='timestamp x y z qx qy qz qw', comments='# ')
    return path


def read_tum(path: str | Path) -> Trajectory:
    """Read a TUM trajectory (comments with '#'); raises ValueError naming the problem."""
    try:
        data = np.loadtxt(path, comments='#', ndmin=2)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: not a TUM trajectory: {e}') from None
    if data.size == 0:
        raise ValueError(f'{path}: empty trajectory')
    if data.shape[1] != 8:
        raise ValueError(f'{path}: expected 8 columns (timestamp x y z qx qy qz qw), got {data.shape[1]}')
    order = np.argsort(data[:, 0], kind='stable')
    data = data[order]
    return Trajectory(t=data[:, 0], poses=np.column_stack([data[:, 1], data[:, 2], quat_to_yaw(data[:, 4:8])]))


def interpolate(traj: Trajectory, t: np.ndarray, max_gap: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Poses of ``traj`` at stamps t (M,): linear in x/y, shortest-arc in yaw. Returns (poses (M, 3), ok (M,)):
    stamps outside the trajectory or in a gap longer than ``max_gap`` s are not ok (their poses are NaN)."""
    t = np.asarray(t, float)
    out = np.full((len(t), 3), np.nan)
    if len(traj) < 2:
        return out, np.zeros(len(t), bool)
    i = np.clip(np.searchsorted(traj.t, t, side='right') - 1, 0, len(traj) - 2)
    t0, t1 = traj.t[i], traj.t[i + 1]
    ok = (t >= traj.t[0]) & (t <= traj.t[-1]) & (t1 - t0 <= max_gap)
    f = np.where(t1 > t0, (t - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
    p0, p1 = traj.poses[i], traj.poses[i + 1]
    out[:, :2] = p0[:, :2] + f[:, None] * (p1[:, :2] - p0[:, :2])
    out[:, 2] = wrap_angle(p0[:, 2] + f * wrap_angle(p1[:, 2] - p0[:, 2]))
    out[~ok] = np.nan
    return out, ok


def largest_gap(traj: Trajectory) -> tuple[float, float]:
    """(length s, start stamp s) of the longest interval between consecutive stamps of ``traj``; (0, NaN) with fewer
    than two stamps."""
    if len(traj) < 2:
        return 0.0, float('nan')
    d = np.diff(traj.t)
    k = int(np.argmax(d))
    return float(d[k]), float(traj.t[k])


def _stats(e: np.ndarray) -> dict[str, float]:
    """evo's statistics of an error array."""
    if len(e) == 0:
        return {k: float('nan') for k in ('rmse', 'mean', 'median', 'std', 'min', 'max', 'sse')}
    return {'rmse': float(np.sqrt(np.mean(e ** 2))), 'mean': float(np.mean(e)), 'median': float(np.median(e)),
            'std': float(np.std(e)), 'min': float(np.min(e)), 'max': float(np.max(e)), 'sse': float(np.sum(e ** 2))}


def ape_stats(est: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Absolute position error statistics (m) of matched poses est, gt (N, 3): evo APE, translation part."""
    return _stats(np.hypot(est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1]))


def yaw_stats(est: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Absolute yaw error statistics (rad, absolute wrapped difference)."""
    return _stats(np.abs(np.asarray(wrap_angle(est[:, 2] - gt[:, 2]))))


def rpe_stats(est: np.ndarray, gt: np.ndarray, delta: int = 1) -> dict[str, float]:
    """Relative pose error statistics (m) between poses ``delta`` samples apart: evo RPE, translation part,
    ``--delta delta --delta_unit f``."""
    if len(est) <= delta:
        return _stats(np.zeros(0))
    i = np.arange(len(est) - delta)
    j = i + delta
    err = se2_compose(se2_inverse(se2_compose(se2_inverse(gt[i]), gt[j])),
                      se2_compose(se2_inverse(est[i]), est[j]))
    return _stats(np.hypot(err[:, 0], err[:, 1]))


def failure_segments(t: np.ndarray, err: np.ndarray, threshold: float = 1.0, min_duration: float = 0.0
                     ) -> list[tuple[float, float]]:
    """[(start, end)] stamps of maximal runs where the position error exceeds ``threshold`` m (or is NaN)."""
    bad = ~(np.nan_to_num(err, nan=np.inf) <= threshold)
    return [(float(t[s]), float(t[e])) for s, e in runs(bad) if t[e] - t[s] >= min_duration]


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last)] indices (inclusive) of the maximal runs of True in ``mask`` (N,) bool, in order."""
    out: list[tuple[int, int]] = []
    k = 0
    while k < len(mask):
        if mask[k]:
            s = k
            while k + 1 < len(mask) and mask[k + 1]:
                k += 1
            out.append((s, k))
        k += 1
    return out
