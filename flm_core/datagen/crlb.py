"""Cramer-Rao lower bound of the 2D position from UWB ranges.

Model: ranges r_i = ||p - a_i|| + e_i with e_i ~ N(0, sigma_i^2) independent, tag height known (robots drive on the
floor), p = (x, y). The Fisher information is J = sum_i g_i g_i^T / sigma_i^2 with g_i = (p_xy - a_i,xy) / ||p - a_i||
(the gradient of the 3D range w.r.t. x, y); the bound is cov >= J^-1. Biases are treated as known (LOS/NLOS means
are not part of the bound): the bound is the physical limit given the geometry and the random part of the noise.
For N anchors evenly spaced on a circle at the tag's height, J = N / (2 sigma^2) I, so cov = 2 sigma^2 / N I.
"""
from __future__ import annotations

import numpy as np


def range_crlb(tag: np.ndarray, anchors: np.ndarray, sigma: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """tag: (E, 3) m; anchors: (A, 3) m; sigma: (E, A) or (A,) range std m; mask: (E, A) bool anchors that measured.

    Returns (E, 2, 2) covariance bounds; epochs whose geometry is singular (fewer than 2 useful anchors, collinear)
    get ``inf`` entries."""
    tag = np.asarray(tag, dtype=np.float64).reshape(-1, 3)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 3)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (tag.shape[0], anchors.shape[0]))
    w = 1.0 / np.maximum(sig, 1e-12) ** 2
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
