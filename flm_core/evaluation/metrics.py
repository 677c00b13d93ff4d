"""Trajectory metrics for planar localization (map frame, no alignment: the map is known, so the absolute error is
what a user sees). Poses are (N, 3) x, y, yaw in metres/radians; covariances (N, 3, 3) in the same order.

* :func:`absolute_errors` - per-sample position error (m) and wrapped yaw error (rad);
* :func:`ate_rmse`, :func:`yaw_rmse` - RMS of those; :func:`failure_rate` - fraction beyond a threshold;
* :func:`rpe` - relative pose error over a fixed time delta (drift, independent of the global offset);
* :func:`nees` - normalised estimation error squared per sample, and :func:`chi2_bounds` for its average.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..geometry import se2_compose, se2_inverse, wrap_angle


@dataclass(frozen=True)
class TrajectoryErrors:
    """Per-sample errors of an estimated trajectory against ground truth: pos (N,) m, yaw (N,) rad (signed, wrapped)."""

    pos: np.ndarray
    yaw: np.ndarray


def absolute_errors(est: np.ndarray, gt: np.ndarray) -> TrajectoryErrors:
    """Errors of est (N, 3) against gt (N, 3), both x y yaw in the map frame, sample by sample."""
    est = np.asarray(est, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    if est.shape != gt.shape:
        raise ValueError(f'est and gt must have the same shape, got {est.shape} and {gt.shape}')
    return TrajectoryErrors(pos=np.hypot(est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1]),
                            yaw=np.asarray(wrap_angle(est[:, 2] - gt[:, 2])))


def ate_rmse(est: np.ndarray, gt: np.ndarray) -> float:
    """Absolute trajectory error: RMS of the position error (m), no alignment."""
    e = absolute_errors(est, gt).pos
    return float(np.sqrt(np.mean(e ** 2))) if len(e) else float('nan')


def yaw_rmse(est: np.ndarray, gt: np.ndarray) -> float:
    """RMS of the wrapped yaw error (rad)."""
    e = absolute_errors(est, gt).yaw
    return float(np.sqrt(np.mean(e ** 2))) if len(e) else float('nan')


def failure_rate(est: np.ndarray, gt: np.ndarray, threshold: float = 1.0) -> float:
    """Fraction of samples whose position error exceeds ``threshold`` metres (NaN estimates count as failures)."""
    est = np.asarray(est, dtype=np.float64).reshape(-1, 3)
    e = absolute_errors(est, gt).pos
    if not len(e):
        return float('nan')
    bad = ~np.isfinite(e) | (np.nan_to_num(e, nan=np.inf) > threshold)
    return float(np.mean(bad))


def rpe(t: np.ndarray, est: np.ndarray, gt: np.ndarray, delta: float = 1.0) -> tuple[float, float]:
    """Relative pose error over ``delta`` seconds: (translation RMS m, yaw RMS rad) of
    inv(gt_i) gt_j versus inv(est_i) est_j for all pairs with t_j - t_i closest to delta (t (N,) sorted)."""
    t = np.asarray(t, dtype=np.float64)
    j = np.searchsorted(t, t + delta)
    ok = j < len(t)
    i, j = np.nonzero(ok)[0], j[ok]
    if not len(i):
        return float('nan'), float('nan')
    dg = se2_compose(se2_inverse(gt[i]), gt[j])
    de = se2_compose(se2_inverse(est[i]), est[j])
    err = se2_compose(se2_inverse(dg), de)
    return float(np.sqrt(np.mean(err[:, 0] ** 2 + err[:, 1] ** 2))), float(np.sqrt(np.mean(err[:, 2] ** 2)))


def nees(err: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Normalised estimation error squared e^T P^-1 e for err (N, n) and cov (N, n, n) -> (N,).
    Angles in err must already be wrapped. Singular covariances give NaN."""
    err = np.asarray(err, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    single = err.ndim == 1
    err = err.reshape(-1, err.shape[-1])
    cov = cov.reshape(-1, err.shape[-1], err.shape[-1])
    out = np.full(len(err), np.nan)
    for k in range(len(err)):
        try:
            out[k] = float(err[k] @ np.linalg.solve(cov[k], err[k]))
        except np.linalg.LinAlgError:
            pass
    return out[0:1] if single else out


def pose_nees(est: np.ndarray, cov: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """NEES (N,) of planar poses est (N, 3) with cov (N, 3, 3) against gt (N, 3)."""
    est = np.asarray(est, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    e = np.concatenate([est[:, :2] - gt[:, :2], np.asarray(wrap_angle(est[:, 2] - gt[:, 2]))[:, None]], axis=1)
    return nees(e, cov)


def chi2_bounds(dof: int, runs: int, prob: float = 0.99) -> tuple[float, float]:
    """Two-sided ``prob`` bounds of the average of ``runs`` independent NEES values of a ``dof``-dimensional
    consistent estimator (runs * mean ~ chi2(runs * dof))."""
    a = (1.0 - prob) / 2.0
    n = dof * runs
    return float(stats.chi2.ppf(a, n) / runs), float(stats.chi2.ppf(1.0 - a, n) / runs)


def summarize(est: np.ndarray, gt: np.ndarray, cov: np.ndarray | None = None, threshold: float = 1.0
              ) -> dict[str, float]:
    """ATE RMSE (m), yaw RMSE (deg), failure rate (> threshold m) and, with cov, the mean pose NEES (3 dof) over the
    finite samples. NaN estimates (no output yet) count as failures and are left out of the RMS values."""
    est = np.asarray(est, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    ok = np.all(np.isfinite(est), axis=1)
    out = {'ate_rmse': ate_rmse(est[ok], gt[ok]), 'yaw_rmse_deg': float(np.degrees(yaw_rmse(est[ok], gt[ok]))),
           'failure_rate': failure_rate(est, gt, threshold), 'coverage': float(np.mean(ok)) if len(ok) else 0.0}
    if cov is not None:
        cov = np.asarray(cov, dtype=np.float64).reshape(-1, 3, 3)
        v = pose_nees(est[ok], cov[ok], gt[ok])
        out['nees'] = float(np.nanmean(v)) if np.isfinite(v).any() else float('nan')
    return out
