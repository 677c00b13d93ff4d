"""Robust UWB multilateration: position (and covariance) of a tag from ranges to known anchors.

Model: ``r_i = ||p - a_i|| + b_i + e_i`` with anchor positions a_i (A, 3), known biases b_i (subtracted by the
caller or through ``bias``), Gaussian noise e_i ~ N(0, sigma_i^2) for line-of-sight ranges. Non-line-of-sight (NLOS)
ranges and multipath are positively biased outliers.

Solver (:func:`multilaterate`):

1. linear least squares (differences of squared ranges) for a starting point;
2. when there is redundancy (A >= d + 2), RANSAC over all minimal anchor subsets (d + 1 anchors; a random sample
   of ``max_subsets`` when there are more), each solved by Gauss-Newton, scored by the number of ranges within
   ``inlier_threshold`` sigmas (ties by the robust cost) - a few NLOS anchors cannot pull the answer;
3. iteratively reweighted Gauss-Newton (Huber weights) on the best consensus set, then the worst range beyond the
   threshold is dropped and the solve repeated while more than d + 1 ranges remain;
4. covariance = (J^T W J)^-1 over the inliers, inflated by the reduced chi-square of their residuals when it
   exceeds 1 (residual NLOS bias that survived the rejection shows up as a larger covariance).

d = 2 with a known tag height ``fixed_z`` (the usual planar robot: anchors at 2-3 m make z poorly observable),
else d = 3. Units are metres.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MultilaterationConfig:
    """sigma: m, range std used when the caller gives none; inlier_threshold: residual / sigma beyond which a range
    is an outlier; huber: Huber threshold in sigmas for the reweighting; max_iterations / tol (m): Gauss-Newton
    stopping; max_subsets: cap on RANSAC subsets; min_inliers: fewest inliers for a valid answer (d + 1 at least);
    prior_tie: hypotheses with as many inliers and a robust cost within this much (squared sigmas) of the best
    count as tied, and the one nearest the prior ``x0`` wins (0, the default, disables it: a wrong prior then
    keeps choosing the wrong mirror image)."""

    sigma: float = 0.1
    inlier_threshold: float = 3.0
    huber: float = 1.5
    max_iterations: int = 15
    tol: float = 1e-6
    max_subsets: int = 120
    min_inliers: int = 3
    prior_tie: float = 0.0


@dataclass
class MultilaterationResult:
    """position (d,) m; cov (d, d) m^2; inliers (A,) bool; residuals (A,) m = measured - predicted at the
    answer; ok: a solution with at least ``min_inliers`` inliers was found; rms: inlier residual RMS in sigmas."""

    position: np.ndarray
    cov: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray
    ok: bool
    rms: float
    iterations: int


def _linear_init(anc: np.ndarray, rho2: np.ndarray) -> np.ndarray:
    """Least-squares position (d,) from ||p - a_i||^2 = rho2_i by differencing with the mean equation."""
    d = anc.shape[1]
    A = 2.0 * (anc[1:] - anc[0])
    b = rho2[0] - rho2[1:] + np.sum(anc[1:] ** 2, axis=1) - np.sum(anc[0] ** 2)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    return sol.reshape(d)


def _batch_gn(x: np.ndarray, anc: np.ndarray, rho: np.ndarray, w: np.ndarray, iters: int) -> np.ndarray:
    """Gauss-Newton for S problems at once: x (S, d), anc (S, K, d), rho (S, K) target distances, w (S, K)
    weights -> (S, d)."""
    d = x.shape[1]
    for _ in range(iters):
        diff = x[:, None, :] - anc                          # (S, K, d)
        dist = np.maximum(np.linalg.norm(diff, axis=2), 1e-9)
        J = diff / dist[..., None]
        r = rho - dist
        JW = J * w[..., None]
        H = np.einsum('ski,skj->sij', JW, J) + 1e-9 * np.eye(d)
        g = np.einsum('ski,sk->si', JW, r)
        try:
            step = np.linalg.solve(H, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        x = x + step
        if np.max(np.abs(step)) < 1e-7:
            break
    return x


def multilaterate(anchors: np.ndarray, ranges: np.ndarray, sigma: float | np.ndarray | None = None,
                  fixed_z: float | None = None, bias: np.ndarray | None = None, x0: np.ndarray | None = None,
                  config: MultilaterationConfig | None = None, rng: np.random.Generator | None = None
                  ) -> MultilaterationResult:
    """Robust position of a tag from ranges (see the module docstring).

    anchors (A, 3) m; ranges (A,) m (non-finite ranges are ignored); sigma: scalar or (A,) m (default
    ``config.sigma``); fixed_z: known tag height (solve x, y) or None (solve x, y, z); bias (A,) m subtracted from
    the ranges; x0 (d,): optional prior position, tried as an extra hypothesis and used to break near-ties
    between hypotheses (mirror images across a line of anchors fit the ranges equally well).
    """
    cfg = config or MultilaterationConfig()
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 3)
    r = np.asarray(ranges, dtype=np.float64).reshape(-1)
    A = len(r)
    if anchors.shape[0] != A:
        raise ValueError(f'anchors ({anchors.shape[0]}) and ranges ({A}) differ in length')
    if bias is not None:
        r = r - np.asarray(bias, dtype=np.float64).reshape(A)
    sig = np.broadcast_to(np.asarray(cfg.sigma if sigma is None else sigma, dtype=np.float64), (A,)).copy()
    d = 2 if fixed_z is not None else 3
    valid = np.isfinite(r) & (r >= 0) & np.isfinite(sig) & (sig > 0)
    if fixed_z is not None:
        dz2 = (anchors[:, 2] - fixed_z) ** 2
        rho2 = r ** 2 - dz2
        anc = anchors[:, :2]
    else:
        dz2 = np.zeros(A)
        rho2 = r ** 2
        anc = anchors
    # horizontal distance targets (a range shorter than the height difference means 0 horizontal distance)
    rho = np.sqrt(np.maximum(np.where(valid, rho2, 0.0), 0.0))
    min_in = max(cfg.min_inliers, d + 1)
    idx = np.nonzero(valid)[0]
    nan = np.full(d, np.nan)
    fail = MultilaterationResult(position=nan, cov=np.full((d, d), np.nan), inliers=np.zeros(A, bool),
                                 residuals=np.full(A, np.nan), ok=False, rms=float('nan'), iterations=0)
    if len(idx) < min(min_in, d + 1):
        return fail

    def residuals_of(x: np.ndarray) -> np.ndarray:
        """(S, A) measured - predicted ranges (3D distance) for positions x (S, d)."""
        hd = np.linalg.norm(x[:, None, :] - anc[None, :, :], axis=2)
        pred = np.sqrt(hd ** 2 + dz2[None, :])
        return r[None, :] - pred

    # --- hypotheses: the all-anchor linear solution, the prior, and minimal subsets
    hyps = [_linear_init(anc[idx], rho2[idx])]
    if x0 is not None and np.all(np.isfinite(x0)):
        hyps.append(np.asarray(x0, dtype=np.float64).reshape(-1)[:d])
    X = np.stack(hyps)
    n_h, n_i = len(X), len(idx)
    X = _batch_gn(X, np.broadcast_to(anc[idx], (n_h,) + anc[idx].shape), np.broadcast_to(rho[idx], (n_h, n_i)),
                  np.broadcast_to(1.0 / sig[idx] ** 2, (n_h, n_i)), cfg.max_iterations)
    if len(idx) >= d + 2:
        k = d + 1
        n_sub = math.comb(len(idx), k)
        if n_sub <= cfg.max_subsets:
            subs = np.array(list(itertools.combinations(idx, k)))
        else:
            g = rng or np.random.default_rng(0)
            subs = np.stack([g.choice(idx, k, replace=False) for _ in range(cfg.max_subsets)])
        X0 = np.stack([_linear_init(anc[s], rho2[s]) for s in subs])
        Xs = _batch_gn(X0, anc[subs], rho[subs], 1.0 / sig[subs] ** 2, 6)
        X = np.concatenate([X, Xs])
    X = X[np.all(np.isfinite(X), axis=1)]
    if not len(X):
        return fail
    res = residuals_of(X)[:, idx] / sig[idx]
    thr = cfg.inlier_threshold
    n_in = np.sum(np.abs(res) <= thr, axis=1)
    cost = np.sum(np.minimum(res ** 2, thr ** 2), axis=1)
    best = int(np.lexsort((cost, -n_in))[0])
    if x0 is not None and np.all(np.isfinite(x0)) and cfg.prior_tie > 0:
        # near-ties (mirror images across a line of anchors fit equally well): take the one nearest the prior
        near = np.nonzero((n_in == n_in[best]) & (cost <= cost[best] + cfg.prior_tie))[0]
        prior = np.asarray(x0, dtype=np.float64).reshape(-1)[:d]
        best = int(near[np.argmin(np.linalg.norm(X[near] - prior, axis=1))])
    x = X[best]
    inl = np.zeros(A, bool)
    inl[idx[np.abs(res[best]) <= thr]] = True
    if inl.sum() < d + 1:
        inl[idx] = True

    # --- IRLS on the consensus set, dropping the worst outlier while redundancy remains
    iters = 0
    readmitted = np.zeros(A, bool)
    for _ in range(2 * A + 2):           # each range can be dropped and re-admitted at most once: no oscillation
        sel = np.nonzero(inl)[0]
        for _ in range(cfg.max_iterations):
            iters += 1
            e = residuals_of(x[None])[0, sel] / sig[sel]
            u = np.abs(e)
            w = np.where(u <= cfg.huber, 1.0, cfg.huber / np.maximum(u, 1e-12)) / sig[sel] ** 2
            xn = _batch_gn(x[None], anc[sel][None], rho[sel][None], w[None], 1)[0]
            step = np.linalg.norm(xn - x)
            x = xn
            if step < cfg.tol:
                break
        e_all = residuals_of(x[None])[0]
        z = np.where(valid, np.abs(e_all) / sig, np.inf)
        out = np.nonzero(inl & (z > thr))[0]
        if len(out) and inl.sum() > d + 1:
            inl[out[np.argmax(z[out])]] = False
            continue
        # ranges left out earlier that now agree come back (once each)
        back = valid & ~inl & ~readmitted & (z <= thr)
        if back.any():
            inl |= back
            readmitted |= back
            continue
        break

    sel = np.nonzero(inl)[0]
    diff = x[None, :] - anc[sel]
    hd = np.linalg.norm(diff, axis=1)
    pred = np.maximum(np.sqrt(hd ** 2 + dz2[sel]), 1e-9)
    J = diff / pred[:, None]              # d(range)/d(p): horizontal part of the unit vector
    W = 1.0 / sig[sel] ** 2
    H = (J * W[:, None]).T @ J
    e = (r[sel] - pred) / sig[sel]
    dof = len(sel) - d
    chi2_red = float(np.sum(e ** 2) / dof) if dof > 0 else 1.0
    try:
        cov = np.linalg.inv(H) * max(1.0, chi2_red)
    except np.linalg.LinAlgError:
        cov = np.full((d, d), np.inf)
    ok = bool(len(sel) >= min_in and np.all(np.isfinite(cov)) and np.all(np.isfinite(x)))
    return MultilaterationResult(position=x, cov=0.5 * (cov + cov.T), inliers=inl, residuals=e_all, ok=ok,
                                 rms=float(np.sqrt(np.mean(e ** 2))) if len(e) else float('nan'), iterations=iters)


def naive_fix(anchors: np.ndarray, ranges: np.ndarray, z: float, iterations: int = 10) -> np.ndarray | None:
    """The naive reference: plain 2D least squares of one ranging frame, with no bias model, no outlier rejection
    and no filter. anchors (A, 3) m, ranges (A,) m, z: the tag's known height (m) -> (2,) tag position, or None with
    fewer than 3 usable ranges (a range shorter than the height difference). Gauss-Newton from the anchors' mean."""
    anc = np.asarray(anchors, dtype=np.float64)
    rho2 = np.asarray(ranges, dtype=np.float64) ** 2 - (anc[:, 2] - z) ** 2
    ok = rho2 > 0
    if ok.sum() < 3:
        return None
    a, rho = anc[ok, :2], np.sqrt(rho2[ok])
    p = a.mean(axis=0)
    for _ in range(iterations):
        diff = p - a
        dist = np.maximum(np.linalg.norm(diff, axis=1), 1e-9)
        step, *_ = np.linalg.lstsq(diff / dist[:, None], rho - dist, rcond=None)
        p = p + step
        if float(np.linalg.norm(step)) < 1e-9:
            break
    return p
