"""Consistency metrics for planar localization: does the covariance an estimator publishes tell the truth?
Poses are (N, 3) x, y, yaw in metres/radians; covariances (N, 3, 3) in the same order. (The error statistics
themselves, APE, RPE and yaw, evo-compatible, are in :mod:`flm_core.evaluation.trajectory`.)

* :func:`nees` - normalised estimation error squared per sample, and :func:`chi2_bounds` for its average;
  :func:`pose_nees` (3 dof) and :func:`position_nees` (2 dof, x y), :func:`within_sigma` - the fraction of position
  errors inside the k-sigma ellipse;
* :func:`position_sigma` - an estimate's largest position std; :func:`confidently_wrong` - the time during which an
  estimate was wrong (beyond a distance) and claimed not to be (beyond n of its own sigmas).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..geometry import wrap_angle
from .trajectory import runs


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


def position_sigma(cov: np.ndarray) -> np.ndarray:
    """Largest position standard deviation (m) of each pose covariance cov (N, 3, 3) (x, y first) -> (N,); inf
    where the covariance is not finite."""
    c = np.asarray(cov, dtype=np.float64).reshape(-1, *np.shape(cov)[-2:])[:, :2, :2]
    out = np.full(len(c), np.inf)
    ok = np.all(np.isfinite(c), axis=(1, 2))
    if ok.any():
        sym = 0.5 * (c[ok] + np.transpose(c[ok], (0, 2, 1)))
        out[ok] = np.sqrt(np.maximum(np.linalg.eigvalsh(sym)[:, -1], 0.0))
    return out


def position_nees(est: np.ndarray, cov: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """NEES (N,) of the position alone (2 dof: x, y with the covariance's (2, 2) block) of est (N, 3) with
    cov (N, 3, 3) against gt (N, 3)."""
    est = np.asarray(est, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    return nees(est[:, :2] - gt[:, :2], np.asarray(cov, dtype=np.float64).reshape(-1, 3, 3)[:, :2, :2])


#: Fraction of position errors inside the k-sigma ellipse (Mahalanobis distance <= k, 2 dof) of a consistent
#: estimator: 1 - exp(-k^2 / 2).
CONSISTENT_WITHIN = {1: float(1.0 - np.exp(-0.5)), 2: float(1.0 - np.exp(-2.0))}


def within_sigma(nees_position: np.ndarray, k: float) -> float:
    """Fraction of the finite 2-dof position NEES values (N,) inside the k-sigma ellipse (NEES <= k^2); NaN if
    none is finite. A consistent estimator gives :data:`CONSISTENT_WITHIN` (0.39 at 1 sigma, 0.86 at 2)."""
    v = np.asarray(nees_position, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.mean(v <= k * k)) if len(v) else float('nan')


@dataclass(frozen=True)
class WrongStretches:
    """Time during which an estimate was wrong and claimed not to be (see :func:`confidently_wrong`)."""

    total_s: float                           # s, summed over all stretches
    longest_s: float                         # s, the longest stretch (0 when none)
    longest: tuple[float, float] | None      # (start, end) stamps of the longest stretch, None when none


def confidently_wrong(t: np.ndarray, err: np.ndarray, sigma: np.ndarray, min_error: float = 0.5,
                      n_sigma: float = 3.0, max_hold: float = 1.0) -> WrongStretches:
    """Time (s) during which the position error err (N,) m exceeded both ``min_error`` m and ``n_sigma`` times the
    estimate's own standard deviation sigma (N,) m (e.g. :func:`position_sigma`): a pose a user would trust and
    that is wrong. Estimates at stamps t (N,) s, sorted; each one stands for the time until the next (as a published
    pose does until it is replaced), at most ``max_hold`` s (a gap in the output is not counted), the last one for
    the median interval. NaN errors (no ground truth there) count as not wrong and end a stretch."""
    t = np.asarray(t, dtype=np.float64)
    e = np.nan_to_num(np.asarray(err, dtype=np.float64), nan=-np.inf)
    s = np.asarray(sigma, dtype=np.float64)
    bad = (e > min_error) & (e > n_sigma * np.nan_to_num(s, nan=np.inf))
    if not bad.any():
        return WrongStretches(0.0, 0.0, None)
    dt = np.diff(t)
    hold = np.minimum(np.append(dt, np.median(dt) if len(dt) else 0.0), max_hold)
    best, total = (0.0, None), 0.0
    for start, k in runs(bad):
        length = float(np.sum(hold[start:k + 1]))
        total += length
        if best[1] is None or length > best[0]:
            best = (length, (float(t[start]), float(t[k] + hold[k])))
    return WrongStretches(total, best[0], best[1])
