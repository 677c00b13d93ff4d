"""Cramer-Rao lower bound of the 2D position from UWB ranges.

Model: ranges r_i = ||p - a_i|| + b_i + e_i, tag height known (robots drive on the floor), p = (x, y), the e_i
independent: Gaussian N(0, sigma_i^2), plus for a non-line-of-sight link an exponential delay of scale tau_i (the
generator's NLOS bias, sensors/uwb.py: a fixed part and an Exp(1) part, both scaled by the walls crossed), an
exponentially modified Gaussian. The Fisher information is J = sum_i f_i g_i g_i^T with g_i = (p_xy - a_i,xy) /
||p - a_i|| (the gradient of the 3D range w.r.t. x, y) and f_i the Fisher information of the noise's location
(1 / sigma_i^2 for a Gaussian; :func:`emg_information` with the delay); the bound is cov >= J^-1. The biases' means
b_i (anchor offsets, the fixed part of an NLOS delay) are treated as known: the bound is the physical limit given
the geometry and the random part of the noise. Multipath and a body on the line of sight (rare, uniform) are left
out. For N anchors evenly spaced on a circle at the tag's height with Gaussian noise, J = N / (2 sigma^2) I, so
cov = 2 sigma^2 / N I.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import erfcx
from scipy.stats import exponnorm


@functools.lru_cache(maxsize=1)
def _emg_table() -> tuple[np.ndarray, np.ndarray]:
    """(K (n,), sigma^2 * Fisher information (n,)) of an exponentially modified Gaussian's location for ratios
    K = tau / sigma from 1e-3 to 1e3 (numerical integration of the squared score; 1 at K -> 0)."""
    ks = np.geomspace(1e-3, 1e3, 61)
    out = np.empty_like(ks)
    for j, k in enumerate(ks):
        z = np.concatenate([np.linspace(-12.0, 12.0, 4001), 12.0 + np.geomspace(1e-3, 40.0 * k + 12.0, 4000)])
        f = exponnorm.pdf(z, k)
        u = (1.0 / k - z) / np.sqrt(2.0)                     # the erfc argument of the density (sigma = 1)
        score = -1.0 / k + np.sqrt(2.0 / np.pi) / erfcx(u)     # d/dz log f
        out[j] = np.trapezoid(f * score * score, z)
    return ks, out


def emg_information(sigma: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Fisher information (m^-2) of the location of N(0, sigma^2) + Exp(scale tau) noise, elementwise; tau = 0: the
    Gaussian's 1 / sigma^2. Between 1 / (sigma^2 + tau^2) (a Gaussian of the same variance) and 1 / sigma^2."""
    sigma = np.maximum(np.asarray(sigma, np.float64), 1e-12)
    tau = np.maximum(np.asarray(tau, np.float64), 0.0)
    ks, g = _emg_table()
    k = np.clip(tau / sigma, ks[0], ks[-1])
    gk = np.exp(np.interp(np.log(k), np.log(ks), np.log(g)))
    return np.where(tau / sigma < ks[0], 1.0, gk) / sigma ** 2


def range_crlb(tag: np.ndarray, anchors: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None = None,
               tau: np.ndarray | None = None) -> np.ndarray:
    """tag: (E, 3) m; anchors: (A, 3) m; sigma: (E, A) or (A,) Gaussian range std m; mask: (E, A) bool anchors that
    measured; tau: (E, A) or (A,) m, scale of an exponential delay (non-line-of-sight; default none).

    Returns (E, 2, 2) covariance bounds; epochs whose geometry is singular (fewer than 2 useful anchors, collinear)
    get ``inf`` entries."""
    tag = np.asarray(tag, dtype=np.float64).reshape(-1, 3)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 3)
    shape = (tag.shape[0], anchors.shape[0])
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), shape)
    w = 1.0 / np.maximum(sig, 1e-12) ** 2 if tau is None \
        else emg_information(sig, np.broadcast_to(np.asarray(tau, dtype=np.float64), shape))
    if mask is not None:
        w = np.where(mask, w, 0.0)
    diff = tag[:, None, :] - anchors[None, :, :]
    d = np.maximum(np.linalg.norm(diff, axis=-1), 1e-9)
    g = diff[..., :2] / d[..., None]
    J = np.einsum('ea,eai,eaj->eij', w, g, g)
    det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
    scale = np.maximum(np.abs(J).max(axis=(1, 2)), 1e-300)
    ok = det > 1e-9 * scale * scale
    out = np.full(J.shape, np.inf)
    sd = np.where(ok, det, 1.0)
    out[:, 0, 0] = J[:, 1, 1] / sd
    out[:, 1, 1] = J[:, 0, 0] / sd
    out[:, 0, 1] = -J[:, 0, 1] / sd
    out[:, 1, 0] = -J[:, 1, 0] / sd
    out[~ok] = np.inf
    return out


def crlb_rmse(cov: np.ndarray) -> np.ndarray:
    """(E,) sqrt(trace(cov)): the bound on the 2D position RMSE, metres."""
    return np.sqrt(cov[:, 0, 0] + cov[:, 1, 1])
