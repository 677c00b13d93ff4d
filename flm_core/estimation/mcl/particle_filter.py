"""The particle set of nav2_amcl (pf.c's algorithm): Gaussian initialisation, weighting, KLD-adaptive resampling
with optional random-pose recovery, and the cluster statistics the node publishes.

* Poses (N, 3) x y yaw (m, rad; yaw unwrapped, as nav2 keeps it), weights (N,) summing to 1.
* Resampling draws independently from the weights (nav2's "naive discrete event sampler", not low-variance) and
  stops at the first count n with ``n > limit(k)``, k the number of occupied histogram bins (0.5 m x 0.5 m x 10 deg)
  among the n drawn, ``limit`` the KLD bound of Fox (2003) with nav2's ``pf_err`` and ``pf_z`` (nav2 uses ``pf_z``
  directly as the normal quantile), clamped to [min_particles, max_particles].
* With recovery_alpha_slow/fast > 0 each draw is, with probability max(0, 1 - w_fast / w_slow), a uniform pose on a
  free cell instead (Augmented MCL); both alphas 0 (Nav2's default) disables it.
* Clusters: connected groups of occupied bins (26-neighbourhood). The estimate is the mean of the heaviest cluster
  (yaw as a circular mean); the covariance is the whole set's (x-y block and the circular yaw variance
  -2 ln |mean of e^{i yaw}|, no x/y-yaw terms), as nav2 publishes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Histogram bin of the KLD sampler and the clustering: m, m, rad.
BIN = np.array([0.5, 0.5, math.radians(10.0)])
_NEIGHBOURS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                        if (i, j, k) != (0, 0, 0)], dtype=np.int64)


def kld_limit(k: np.ndarray | int, pf_err: float, pf_z: float, min_particles: int, max_particles: int) -> np.ndarray:
    """Samples needed (int array, shape of ``k``) with k occupied bins: max_particles for k <= 1, else
    ceil((k - 1) / (2 pf_err) * (1 - b + sqrt(b) pf_z)^3) with b = 2 / (9 (k - 1)), clamped to [min, max]."""
    k = np.asarray(k, dtype=np.float64)
    km1 = np.maximum(k - 1.0, 1.0)
    b = 2.0 / (9.0 * km1)
    x = 1.0 - b + np.sqrt(b) * pf_z
    n = np.ceil(km1 / (2.0 * pf_err) * x * x * x)
    n = np.clip(n, min_particles, max_particles)
    return np.where(k <= 1, max_particles, n).astype(np.int64)


def bin_keys(poses: np.ndarray) -> np.ndarray:
    """(N, 3) poses -> (N, 3) int64 histogram bin indices (floor of pose / :data:`BIN`)."""
    return np.floor(np.asarray(poses, dtype=np.float64) / BIN).astype(np.int64)


def _scalar_keys(keys: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    k = keys - lo
    return (k[..., 0] * span[1] + k[..., 1]) * span[2] + k[..., 2]


def cluster_labels(poses: np.ndarray) -> np.ndarray:
    """(N,) int cluster label of each particle: connected components of the occupied bins (26-neighbourhood)."""
    keys = bin_keys(poses)
    lo = keys.min(axis=0) - 1
    span = keys.max(axis=0) - lo + 2
    flat = _scalar_keys(keys, lo, span)
    uniq, inverse = np.unique(flat, return_inverse=True)
    ukeys = keys[np.unique(inverse, return_index=True)[1]]              # (K, 3) one key per bin, order of uniq
    nb = _scalar_keys(ukeys[:, None, :] + _NEIGHBOURS[None], lo, span)  # (K, 26)
    pos = np.searchsorted(uniq, nb)
    hit = (pos < len(uniq)) & (uniq[np.minimum(pos, len(uniq) - 1)] == nb)
    rows = np.repeat(np.arange(len(uniq)), _NEIGHBOURS.shape[0])[hit.ravel()]
    graph = coo_matrix((np.ones(len(rows)), (rows, pos.ravel()[hit.ravel()])), shape=(len(uniq), len(uniq)))
    _, labels = connected_components(graph, directed=False)
    return labels[inverse]


@dataclass
class SetStats:
    """pose (3,) mean of the heaviest cluster (yaw wrapped); cov (3, 3) of the whole set; clusters: how many;
    weight: the heaviest cluster's share of the weight; count: particles."""

    pose: np.ndarray
    cov: np.ndarray
    clusters: int
    weight: float
    count: int


def set_stats(poses: np.ndarray, weights: np.ndarray) -> SetStats:
    """Cluster statistics of a weighted set (see the module docstring)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    labels = cluster_labels(poses)
    n = int(labels.max()) + 1
    cw = np.bincount(labels, weights=w, minlength=n)
    best = int(np.argmax(cw))
    m = labels == best
    wb = w[m] / cw[best]
    pb = poses[m]
    yaw = math.atan2(float(np.sum(wb * np.sin(pb[:, 2]))), float(np.sum(wb * np.cos(pb[:, 2]))))
    pose = np.array([float(np.sum(wb * pb[:, 0])), float(np.sum(wb * pb[:, 1])), yaw])
    cov = np.zeros((3, 3))
    mu = w @ poses[:, :2]
    d = poses[:, :2] - mu
    cov[:2, :2] = (d * w[:, None]).T @ d
    R = math.hypot(float(w @ np.cos(poses[:, 2])), float(w @ np.sin(poses[:, 2])))
    cov[2, 2] = -2.0 * math.log(max(R, 1e-300))
    return SetStats(pose=pose, cov=cov, clusters=n, weight=float(cw[best]), count=len(poses))


class ParticleSet:
    """The particles and nav2's operations on them. rng: the only source of randomness (seeded by the caller);
    random_pose: ``f(n, rng) -> (n, 3)`` uniform free-space poses for recovery (None: recovery unavailable)."""

    def __init__(self, min_particles: int, max_particles: int, pf_err: float, pf_z: float,
                 alpha_slow: float, alpha_fast: float, rng: np.random.Generator,
                 random_pose: Callable[[int, np.random.Generator], np.ndarray] | None = None) -> None:
        self.min_particles, self.max_particles = int(min_particles), int(max_particles)
        self.pf_err, self.pf_z = float(pf_err), float(pf_z)
        self.alpha_slow, self.alpha_fast = float(alpha_slow), float(alpha_fast)
        self.rng = rng
        self.random_pose = random_pose
        self.poses = np.zeros((0, 3))
        self.weights = np.zeros(0)
        self.w_slow = self.w_fast = 0.0

    def init_gaussian(self, mean: np.ndarray, cov: np.ndarray) -> None:
        """max_particles poses drawn from N(mean (3,), cov (3, 3)), equal weights (nav2's pf_init)."""
        cov = np.asarray(cov, dtype=np.float64)
        cov = 0.5 * (cov + cov.T)
        val, vec = np.linalg.eigh(cov)
        e = self.rng.standard_normal((self.max_particles, 3)) * np.sqrt(np.maximum(val, 0.0))
        self.poses = np.asarray(mean, dtype=np.float64)[None, :] + e @ vec.T
        self.weights = np.full(self.max_particles, 1.0 / self.max_particles)
        self.w_slow = self.w_fast = 0.0

    def weigh(self, factors: np.ndarray) -> None:
        """Multiply the weights by the sensor model's factors (N,) and normalise; update the recovery averages."""
        w = self.weights * np.asarray(factors, dtype=np.float64)
        total = float(w.sum())
        if not total > 0.0 or not math.isfinite(total):
            self.weights = np.full(len(self.poses), 1.0 / len(self.poses))
            return
        w_avg = total / len(w)
        self.weights = w / total
        self.w_slow = w_avg if self.w_slow == 0.0 else self.w_slow + self.alpha_slow * (w_avg - self.w_slow)
        self.w_fast = w_avg if self.w_fast == 0.0 else self.w_fast + self.alpha_fast * (w_avg - self.w_fast)

    def resample(self) -> int:
        """KLD-adaptive resampling (see the module docstring); returns the new particle count."""
        M = self.max_particles
        w_diff = max(0.0, 1.0 - self.w_fast / self.w_slow) if self.w_slow > 0 else 0.0
        c = np.cumsum(self.weights)
        idx = np.minimum(np.searchsorted(c, self.rng.random(M) * c[-1], side='right'), len(c) - 1)
        new = self.poses[idx]
        if w_diff > 0.0 and self.random_pose is not None:
            rnd = self.rng.random(M) < w_diff
            if rnd.any():
                new[rnd] = self.random_pose(int(rnd.sum()), self.rng)
        keys = bin_keys(new)
        lo = keys.min(axis=0)
        flat = _scalar_keys(keys, lo, keys.max(axis=0) - lo + 1)
        first = np.zeros(M, dtype=bool)
        first[np.unique(flat, return_index=True)[1]] = True
        k = np.cumsum(first)                                   # occupied bins after each draw
        over = np.nonzero(np.arange(1, M + 1) > kld_limit(k, self.pf_err, self.pf_z, self.min_particles, M))[0]
        n = int(over[0]) + 1 if len(over) else M
        if w_diff > 0.0:
            self.w_slow = self.w_fast = 0.0
        self.poses = new[:n].copy()
        self.weights = np.full(n, 1.0 / n)
        return n

    def stats(self) -> SetStats:
        return set_stats(self.poses, self.weights)
