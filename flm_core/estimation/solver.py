"""The pose is solved, not regressed: a robust weighted Gauss-Newton / Levenberg-Marquardt solve of the planar pose.

State: the pose (x, y, yaw) of base_link in the map frame (m, m, rad; REP-103) and, per residual block, extra
parameters with Gaussian priors (e.g. UWB range biases). Residual blocks (each measurement's residual in metres,
divided by its standard deviation ``sigma``; all vectorised over the block's measurements):

* :class:`ScanBlock` - 2D scan points (base_link) against the map's signed distance field (:class:`DistanceField`,
  bilinear with its gradient, zero on the surface of the occupied cells, truncated at ``truncation`` m so that far
  points do not dominate): a point-to-line residual wherever the wall is locally straight;
* :class:`PlaneBlock` - 3D points (base_link) against a point map with normals
  (:class:`flm_core.estimation.icp.PointMap`): point-to-plane residuals to the nearest map point, re-associated at
  every linearisation; only x, y, yaw are solved (the floor is flat);
* :class:`RangeBlock` - UWB ranges: ``range - bias - ||tag - anchor||`` with the tag at a lever arm and height in
  base_link (anchors in 3D), and the bias = the given per-anchor value + an estimated common offset + an estimated
  per-anchor offset (each estimated only when its prior std is > 0);
* a Gaussian pose prior (the filter's prediction; a caller without one that needs a bounded heading passes a wide
  one, e.g. a yaw std of pi/sqrt(3), the spread of a heading uniform on the circle).

Each measurement has a weight (default 1: its information is multiplied by it) and goes through a robust loss
(Huber or Cauchy, scale in sigmas; 'none' = plain weighted least squares). The solve is Levenberg-Marquardt on the
iteratively reweighted normal equations, re-linearised every iteration (the scan field is looked up again, plane
correspondences re-associated) until the step is below ``tol``.

Covariance: the inverse of the information matrix ``J^T W J`` (+ the prior's), marginalised over the extra
parameters, times ``clip(chi2_red, 1, max_inflation)`` where ``chi2_red`` is the reduced chi-square of the
measurement residuals (what the model's noise does not explain widens the answer; it never narrows it).
Unobservable directions: every eigenvalue of the information matrix is floored at ``1 / max_variance``, so a
direction the measurements do not constrain (yaw from one UWB tag, position along a featureless corridor) comes out
with a variance of up to ``max_variance`` - wide, never invented; only the prior regularises.
:attr:`Solution.cov` includes the prior; :attr:`Solution.cov_measurements` is the measurements' own (without the
pose prior), the one to hand a filter that already holds the prior.

Consistency statistics on the :class:`Solution`: ``rms`` (normalised residual RMS of the inliers, in sigmas),
``inlier_share``, ``chi2_red`` and ``prior_mahalanobis`` (the solved pose against the prior).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from scipy import ndimage

from ..geometry import wrap_angle
from ..site import OccupancyMap
from .icp import PointMap

LOSSES = ('huber', 'cauchy', 'none')


# ------------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class SolverConfig:
    """loss: 'huber', 'cauchy' or 'none' (plain weighted least squares); loss_scale: the loss's threshold in
    sigmas; outlier: |residual| / sigma above which a measurement is reported as an outlier (and not counted in the
    rms / chi-square; its robust weight already bounds its pull); max_iterations: re-linearisations; tol: step size
    (m and rad) that ends the solve; tol_gain: a step whose squared length in the information's metric
    (``step^T H step``, sigmas^2) is below it ends the solve too, once taken (a weakly observed direction, or
    points hopping between the map's cells, converge slowly, and the last digits are far inside the answer's
    uncertainty); lm_lambda: the initial Levenberg-Marquardt damping; max_inflation: bound of the
    chi-square inflation of the covariance; max_variance: m^2 / rad^2, the largest variance a direction gets (the
    information's eigenvalues are floored at its inverse)."""

    loss: str = 'huber'
    loss_scale: float = 3.0
    outlier: float = 5.0
    max_iterations: int = 20
    tol: float = 1e-8
    tol_gain: float = 1e-4
    lm_lambda: float = 1e-4
    max_inflation: float = 100.0
    max_variance: float = 1e4

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f'SolverConfig.loss must be one of {LOSSES}, got {self.loss!r}')
        if not self.loss_scale > 0 or not self.outlier > 0:
            raise ValueError('SolverConfig.loss_scale and outlier must be > 0 (sigmas)')
        if not self.max_inflation >= 1 or not self.max_variance > 0:
            raise ValueError('SolverConfig: max_inflation must be >= 1 and max_variance > 0')


def robust_weight(e: np.ndarray, loss: str, k: float) -> np.ndarray:
    """IRLS weight psi(e) / e of normalised residuals e (n,) (sigmas) for the loss with threshold k (sigmas)."""
    if loss == 'huber':
        a = np.abs(e)
        return np.where(a <= k, 1.0, k / np.maximum(a, 1e-300))
    if loss == 'cauchy':
        return 1.0 / (1.0 + (e / k) ** 2)
    return np.ones_like(e)


def robust_cost(e: np.ndarray, loss: str, k: float) -> np.ndarray:
    """rho(e) (n,) of normalised residuals (rho = e^2 / 2 near 0)."""
    if loss == 'huber':
        a = np.abs(e)
        return np.where(a <= k, 0.5 * e * e, k * a - 0.5 * k * k)
    if loss == 'cauchy':
        return 0.5 * k * k * np.log1p((e / k) ** 2)
    return 0.5 * e * e


# ------------------------------------------------------------------------------------------------ distance field
class DistanceField:
    """Signed distance (m) to the surface of the occupied cells of an occupancy grid, bilinear between cell centres.

    Zero on the surface of the occupied cells (see ``surface``), positive in free and unknown space (the Euclidean
    distance transform to the occupied cells), negative inside obstacles (depth below the surface); looked up
    in the grid's own cell coordinates, so it moves rigidly with the map's origin. Outside the grid the border value
    holds (gradient 0: no information). Build it once per map (:meth:`of` caches it on a
    :class:`flm_core.mapindex.MapIndex`)."""

    def __init__(self, occ: OccupancyMap, outside: np.ndarray | None = None, surface: float = 0.0) -> None:
        """occ: the grid; outside (H, W) m: the distance of every cell centre to the nearest occupied cell centre
        (``MapIndex.dist``; computed here when None); surface: where the surface lies in an occupied cell at the
        boundary, as a fraction of half a cell from its centre towards free space: 0 = the centre (a map ray-cast
        from scans, as SLAM builds them: a beam's end falls anywhere in its cell), 1 = the face (solid cells, as
        the project's generated buildings are)."""
        solid = occ.occupied()
        if not solid.any():
            raise ValueError('the occupancy map has no occupied cells: no distance field')
        res = float(occ.resolution)
        if outside is None:
            outside = ndimage.distance_transform_edt(~solid) * res
        inside = ndimage.distance_transform_edt(solid) * res      # occupied cell -> nearest non-occupied centre
        if not 0.0 <= surface <= 1.0:
            raise ValueError(f'surface must be in [0, 1] (centre to face), got {surface}')
        off = 0.5 * res * surface
        self.values = np.where(solid, res - inside - off, np.asarray(outside, np.float64) - off)   # (H, W) m
        self._flat = np.ascontiguousarray(self.values).ravel()
        self.surface = float(surface)
        self.resolution = res
        self.origin = np.asarray(occ.origin, np.float64).copy()
        self._c, self._s = math.cos(self.origin[2]), math.sin(self.origin[2])

    @classmethod
    def of(cls, index: object, surface: float = 0.0) -> DistanceField:
        """The field of a :class:`flm_core.mapindex.MapIndex` with a grid map (built once per ``surface``, kept
        in its ``cache``)."""
        cache = getattr(index, 'cache')
        key = f'solver.distance_field.{surface}'
        f = cache.get(key)
        if f is None:
            site = getattr(index, 'site')
            if site.map is None:
                raise ValueError(f'site {site.name!r} has no occupancy map: no distance field')
            f = cache[key] = cls(site.map, getattr(index, 'dist', None), surface)
        return f

    def lookup(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map-frame points xy (N, 2) m -> (distance (N,) m, gradient (N, 2) in the map frame)."""
        dx, dy = xy[:, 0] - self.origin[0], xy[:, 1] - self.origin[1]
        val, gu, gv = self.lookup_grid(self._c * dx + self._s * dy, -self._s * dx + self._c * dy)
        return val, np.stack([self._c * gu - self._s * gv, self._s * gu + self._c * gv], -1)

    def lookup_grid(self, gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points in the grid's own axes (m from the origin along its columns gx (N,) and rows gy (N,)) ->
        (distance (N,) m, d/dgx (N,), d/dgy (N,)); outside the grid the border value and a zero gradient."""
        H, W = self.values.shape
        u = gx * (1.0 / self.resolution) - 0.5          # cell-centre coordinates
        v = gy * (1.0 / self.resolution) - 0.5
        inside = (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        np.clip(u, 0.0, W - 1.0, out=u)
        np.clip(v, 0.0, H - 1.0, out=v)
        i0 = np.minimum(u.astype(np.int64), max(W - 2, 0))
        j0 = np.minimum(v.astype(np.int64), max(H - 2, 0))
        fu, fv = u - i0, v - j0
        k = j0 * W + i0
        f = self._flat
        f00, f10 = f.take(k), f.take(k + (W > 1))
        f01, f11 = f.take(k + W * (H > 1)), f.take(k + W * (H > 1) + (W > 1))
        a, b = f10 - f00, f11 - f01
        val = f00 + fu * a + fv * (f01 - f00 + fu * (b - a))
        scale = inside * (1.0 / self.resolution)
        gu = (a + fv * (b - a)) * scale
        gv = (f01 - f00 + fu * (f11 - f10 - f01 + f00)) * scale
        return val, gu, gv


# ------------------------------------------------------------------------------------------------ residual blocks
@dataclass
class Linearization:
    """A block at a state: r (n,) residuals in metres (measured - predicted, or the distance to the surface);
    e (n,) = r / sigma (normalised); J (n, 3 + E) de/d(pose, the block's extra parameters); active (n,) bool: the
    measurement constrains the state here (False: truncated, no correspondence, invalid; J is 0 there); valid (n,)
    bool: a usable measurement (finite; one that is valid but not active is an outlier here)."""

    r: np.ndarray
    e: np.ndarray
    J: np.ndarray
    active: np.ndarray
    valid: np.ndarray


class Block(Protocol):
    """A residual block. ``name``; ``weights`` (n,); ``extra_mean`` / ``extra_std`` (E,) Gaussian priors of its
    extra parameters (std > 0); ``linearize(pose (3,), extra (E,)) -> Linearization``."""

    name: str
    weights: np.ndarray
    extra_mean: np.ndarray
    extra_std: np.ndarray

    def linearize(self, pose: np.ndarray, extra: np.ndarray) -> Linearization: ...


def _weights(w: np.ndarray | float | None, n: int) -> np.ndarray:
    out = np.broadcast_to(np.asarray(1.0 if w is None else w, np.float64), (n,)).copy()
    if np.any(~np.isfinite(out)) or np.any(out < 0):
        raise ValueError('measurement weights must be finite and >= 0')
    return out


def _finite_points(points: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, dim) float64 with non-finite ones zeroed, finite (N,) bool mask)."""
    pts = np.asarray(points, np.float64).reshape(-1, dim)
    finite = np.all(np.isfinite(pts), 1)
    return np.where(finite[:, None], pts, 0.0), finite


def _sigmas(s: np.ndarray | float, n: int, what: str) -> np.ndarray:
    out = np.broadcast_to(np.asarray(s, np.float64), (n,)).copy()
    if np.any(~(out > 0)) or np.any(~np.isfinite(out)):
        raise ValueError(f'{what}: sigma must be finite and > 0')
    return out


def _rot_points(pose: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map-frame xy (n, 2), d(map xy)/d(yaw) (n, 2)) of base_link points p (n, 2) at pose (3,)."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    rx = c * p[:, 0] - s * p[:, 1]
    ry = s * p[:, 0] + c * p[:, 1]
    return np.stack([pose[0] + rx, pose[1] + ry], -1), np.stack([-ry, rx], -1)


@dataclass
class ScanBlock:
    """2D scan points (N, 2) m in base_link (already voxel-filtered) against a :class:`DistanceField`; sigma (m,
    scalar or (N,)); weights (N,); truncation: m, the field is clipped to +-truncation (beyond: no gradient)."""

    points: np.ndarray
    field: DistanceField
    sigma: np.ndarray | float = 0.05
    weights: np.ndarray | float | None = None
    truncation: float = 0.5
    name: str = 'scan'

    def __post_init__(self) -> None:
        self.points, self.finite = _finite_points(self.points, 2)
        n = len(self.points)
        self.sigma = _sigmas(self.sigma, n, self.name)
        self.weights = _weights(self.weights, n)
        self.extra_mean = np.zeros(0)
        self.extra_std = np.zeros(0)

    def linearize(self, pose: np.ndarray, extra: np.ndarray) -> Linearization:
        fld = self.field
        # in the grid's axes: gxy = R(-o)(t - origin) + R(yaw - o) p
        c0, s0 = fld._c, fld._s
        dx, dy = pose[0] - fld.origin[0], pose[1] - fld.origin[1]
        c, s = math.cos(pose[2] - fld.origin[2]), math.sin(pose[2] - fld.origin[2])
        px, py = self.points[:, 0], self.points[:, 1]
        rx, ry = c * px - s * py, s * px + c * py
        d, gu, gv = fld.lookup_grid(c0 * dx + s0 * dy + rx, -s0 * dx + c0 * dy + ry)
        active = (np.abs(d) < self.truncation) & self.finite
        r = np.clip(d, -self.truncation, self.truncation)
        w = active / np.asarray(self.sigma)
        gu, gv = gu * w, gv * w
        J = np.column_stack([c0 * gu - s0 * gv, s0 * gu + c0 * gv, gv * rx - gu * ry])
        return Linearization(r=r, e=r / self.sigma, J=J, active=active, valid=self.finite)


@dataclass
class PlaneBlock:
    """3D points (N, 3) m in base_link against a point map with normals (``PointMap``, 3D): residual n . (p - q) to
    the nearest map point q within ``truncation`` m (re-associated at every linearisation whose pose moved any point
    by more than ``reassociate`` m since the last association: the last iterations of a solve, and starts that
    converge where another went, keep their correspondences; beyond the truncation the residual is held there,
    inactive); sigma m; weights (N,)."""

    points: np.ndarray
    map: PointMap
    sigma: np.ndarray | float = 0.05
    weights: np.ndarray | float | None = None
    truncation: float = 0.5
    name: str = 'points'
    reassociate: float = 0.01

    def __post_init__(self) -> None:
        self.points, self.finite = _finite_points(self.points, 3)
        if self.map.dim != 3:
            raise ValueError('PlaneBlock needs a 3D PointMap')
        n = len(self.points)
        self.sigma = _sigmas(self.sigma, n, self.name)
        self.weights = _weights(self.weights, n)
        self.extra_mean = np.zeros(0)
        self.extra_std = np.zeros(0)
        self._reach = float(np.max(np.hypot(self.points[:, 0], self.points[:, 1]), initial=0.0))
        self._assoc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # (pose, j, found) of the last query
        self.queries = 0                                                         # nearest-neighbour searches run

    def _moved(self, pose: np.ndarray) -> float:
        """m, the most any point moved between the last association's pose and ``pose`` (inf before any)."""
        if self._assoc is None:
            return math.inf
        d = pose - self._assoc[0]
        return float(math.hypot(d[0], d[1]) + abs(float(wrap_angle(d[2]))) * self._reach)

    def linearize(self, pose: np.ndarray, extra: np.ndarray) -> Linearization:
        q, dq = _rot_points(pose, self.points[:, :2])
        p = np.concatenate([q, self.points[:, 2:3]], 1)
        if self._moved(pose) > self.reassociate:
            dist, j = self.map.tree.query(p, k=1, distance_upper_bound=self.truncation)
            found = np.isfinite(dist)
            self._assoc = (np.array(pose, np.float64, copy=True), np.where(found, j, 0), found)
            self.queries += 1
        _, j, found = self._assoc
        n = self.map.normals[j]
        r = np.einsum('ni,ni->n', n, p - self.map.points[j])
        active = found & (np.abs(r) < self.truncation) & self.finite
        r = np.where(active, r, self.truncation)
        J = np.zeros((len(p), 3))
        J[:, 0:2] = n[:, :2]
        J[:, 2] = np.einsum('ni,ni->n', n[:, :2], dq)
        J[~active] = 0.0
        sig = np.asarray(self.sigma)
        return Linearization(r=r, e=r / sig, J=J / sig[:, None], active=active, valid=self.finite.copy())


@dataclass
class RangeBlock:
    """UWB ranges. anchors (M, 3) m map frame; ranges (M,) m; tag (M, 3) or (3,) m: the tag in base_link (lever arm
    x, y and height z; per range when odometry moved it between stamps); anchor_index (M,) int: which anchor each
    range is of (default: each its own), into bias (B,) m, the known per-anchor bias subtracted; bias_std (B,) or
    scalar m: prior std of an estimated per-anchor offset around it (0: known exactly, not estimated);
    common_bias_std: m, prior std of an estimated offset shared by all anchors (0: none; inf: free, e.g. a clock
    offset); common_bias_mean: m, its prior mean; bias_mean (B,) m: prior means of the per-anchor offsets (default 0;
    what a caller learnt over time); sigma m; sigma_long (M,) or scalar m: the std of a range measured longer than
    predicted (a non-line-of-sight link's delay only ever lengthens it: an asymmetric residual, the cost continuous
    and smooth at 0; default: sigma); weights (M,); height_std / height_mean: m, prior of an estimated offset of
    the tags' height from ``tag``'s z (0: the height is known, e.g. from TF; a hand-held tag's is not). Extra
    parameters: [common offset (if estimated), per-anchor offsets of the anchors with bias_std > 0 that have ranges,
    the height offset (if estimated)]."""

    anchors: np.ndarray
    ranges: np.ndarray
    tag: np.ndarray
    sigma: np.ndarray | float = 0.1
    weights: np.ndarray | float | None = None
    anchor_index: np.ndarray | None = None
    sigma_long: np.ndarray | float | None = None
    bias: np.ndarray | float = 0.0
    bias_std: np.ndarray | float = 0.0
    bias_mean: np.ndarray | float = 0.0
    common_bias_std: float = 0.0
    common_bias_mean: float = 0.0
    height_std: float = 0.0
    height_mean: float = 0.0
    name: str = 'uwb'

    def __post_init__(self) -> None:
        self.anchors = np.asarray(self.anchors, np.float64).reshape(-1, 3)
        self.ranges = np.asarray(self.ranges, np.float64).reshape(-1)
        M = len(self.ranges)
        if len(self.anchors) != M:
            raise ValueError(f'{self.name}: {len(self.anchors)} anchors for {M} ranges')
        self.tag = np.broadcast_to(np.asarray(self.tag, np.float64), (M, 3)).copy()
        idx = np.arange(M) if self.anchor_index is None else np.asarray(self.anchor_index, np.int64).reshape(M)
        sizes = [np.size(a) for a in (self.bias, self.bias_std, self.bias_mean) if np.ndim(a) > 0]
        B = max([int(idx.max()) + 1 if M else 0] + sizes)
        self.anchor_index = idx
        self.sigma = _sigmas(self.sigma, M, self.name)
        self.sigma_long = self.sigma.copy() if self.sigma_long is None else _sigmas(self.sigma_long, M, self.name)
        self.weights = _weights(self.weights, M)
        self.bias = np.broadcast_to(np.asarray(self.bias, np.float64), (B,)).copy()
        bstd = np.broadcast_to(np.asarray(self.bias_std, np.float64), (B,)).copy()
        bmean = np.broadcast_to(np.asarray(self.bias_mean, np.float64), (B,)).copy()
        if np.any(~(bstd >= 0)) or not self.common_bias_std >= 0 or not self.height_std >= 0:
            raise ValueError(f'{self.name}: bias and height stds must be >= 0')
        used = np.zeros(B, bool)
        used[idx] = True
        self.estimated = np.nonzero((bstd > 0) & used)[0]           # anchors whose offset is a parameter
        col = np.full(B, -1, np.int64)
        c0 = 1 if self.common_bias_std > 0 else 0
        col[self.estimated] = c0 + np.arange(len(self.estimated))
        h = self.height_std > 0
        self._hcol = c0 + len(self.estimated) if h else -1             # the tags' height offset, last
        self.extra_mean = np.concatenate([[self.common_bias_mean] if c0 else [], bmean[self.estimated],
                                          [self.height_mean] if h else []])
        self.extra_std = np.concatenate([[self.common_bias_std] if c0 else [], bstd[self.estimated],
                                         [self.height_std] if h else []])
        self.valid = np.isfinite(self.ranges) & np.all(np.isfinite(self.anchors), 1)
        # what linearize needs that the state does not change
        acol = col[idx]
        self._has = np.nonzero(acol >= 0)[0]             # ranges whose anchor's offset is a parameter
        self._has_col = acol[self._has]
        self._b0 = self.bias[idx]
        self._rng = np.where(self.valid, self.ranges, 0.0)
        self._dz0 = self.tag[:, 2] - self.anchors[:, 2]

    def linearize(self, pose: np.ndarray, extra: np.ndarray) -> Linearization:
        t, dt = _rot_points(pose, self.tag[:, :2])
        diff = t - self.anchors[:, :2]
        dz = self._dz0 + extra[self._hcol] if self._hcol >= 0 else self._dz0
        pred = np.sqrt(np.sum(diff ** 2, 1) + dz ** 2)
        pred = np.maximum(pred, 1e-9)
        b = self._b0.copy()
        c0 = 1 if self.common_bias_std > 0 else 0
        if c0:
            b += extra[0]
        b[self._has] += extra[self._has_col]
        r = np.where(self.valid, self._rng - b - pred, 0.0)
        u = diff / pred[:, None]
        E = len(self.extra_mean)
        J = np.zeros((len(r), 3 + E))
        J[:, 0:2] = -u
        J[:, 2] = -np.einsum('ni,ni->n', u, dt)
        if c0:
            J[:, 3] = -1.0
        J[self._has, 3 + self._has_col] = -1.0
        if self._hcol >= 0:
            J[:, 3 + self._hcol] = -dz / pred
        J[~self.valid] = 0.0
        sig = np.where(r > 0, np.asarray(self.sigma_long), np.asarray(self.sigma))
        return Linearization(r=r, e=r / sig, J=J / sig[:, None], active=self.valid.copy(),
                             valid=self.valid.copy())

    def parts(self, extra: np.ndarray) -> tuple[float | None, np.ndarray, float | None]:
        """This block's extra parameters (or their variances) (E,) split as they are laid out: (common offset, None
        where not estimated; the offsets of the anchors in ``estimated`` (len(estimated),); the tags' height offset,
        None where not estimated)."""
        c0, n = (1 if self.common_bias_std > 0 else 0), len(self.estimated)
        return (float(extra[0]) if c0 else None), np.asarray(extra[c0:c0 + n]), \
            (float(extra[self._hcol]) if self._hcol >= 0 else None)

    def offsets(self, extra: np.ndarray) -> tuple[float, np.ndarray]:
        """(common offset m, per-anchor offsets (B,) m, 0 where not estimated) from this block's extra parameters."""
        common, estimated, _ = self.parts(extra)
        per = np.zeros(len(self.bias))
        per[self.estimated] = estimated
        return (common or 0.0), per

    def height(self, extra: np.ndarray) -> float | None:
        """The tags' solved height offset (m, added to ``tag``'s z) from this block's extra parameters; None when it
        is not estimated (``height_std`` 0)."""
        return self.parts(extra)[2]


# ------------------------------------------------------------------------------------------------ the solve
@dataclass
class Solution:
    """The result of :func:`solve`.

    pose (3,) x, y (m), yaw (rad) of base_link in the map; cov (3, 3) its covariance (the measurements' information
    divided by ``inflation``, plus the priors'; variances capped at ``max_variance``); cov_measurements (3, 3): the
    same without the pose prior (the measurements' own); information (3, 3): the measurements' own information of
    the pose (extras marginalised, not inflated); extra: dict block name -> its solved extra parameters (E,);
    extra_var: their variances (E,) (with the priors, inflated as ``cov``); residuals / inliers: dict block name ->
    (n,) m / bool; rms: normalised residual RMS of the inliers (sigmas); inlier_share: inliers / usable
    measurements; chi2_red: reduced chi-square of the measurements; inflation = clip(chi2_red, 1, max_inflation);
    prior_mahalanobis: Mahalanobis distance of the pose from the prior (nan without one); cost: the final robust
    cost; iterations; converged; n_measurements: usable measurements; stats: per block n, inliers, rms and its
    measurements' robust cost."""

    pose: np.ndarray
    cov: np.ndarray
    cov_measurements: np.ndarray
    information: np.ndarray
    extra: dict[str, np.ndarray]
    extra_var: dict[str, np.ndarray]
    residuals: dict[str, np.ndarray]
    inliers: dict[str, np.ndarray]
    rms: float
    inlier_share: float
    chi2_red: float
    inflation: float
    prior_mahalanobis: float
    cost: float
    iterations: int
    converged: bool
    n_measurements: int = 0
    stats: dict[str, dict[str, float]] = field(default_factory=dict)


def _floored_inverse(H: np.ndarray, max_variance: float) -> np.ndarray:
    """Inverse of a symmetric information matrix with its eigenvalues floored at 1 / max_variance."""
    Hs = 0.5 * (H + H.T)
    lam, V = np.linalg.eigh(Hs)
    lam = np.maximum(lam, 1.0 / max_variance)
    return (V / lam) @ V.T


class _Problem:
    """The assembled problem: blocks, the parameter layout, the priors."""

    def __init__(self, blocks: Sequence[Block], prior: tuple[np.ndarray, np.ndarray] | None,
                 cfg: SolverConfig) -> None:
        self.blocks = [b for b in blocks if len(b.weights)]
        self.cfg = cfg
        self.slices: list[slice] = []
        k = 3
        for b in self.blocks:
            E = len(b.extra_mean)
            self.slices.append(slice(k, k + E))
            k += E
        self.n = k
        mean = np.zeros(k)
        info = np.zeros(k)          # diagonal prior information of the extra parameters
        for b, sl in zip(self.blocks, self.slices):
            mean[sl] = b.extra_mean
            std = np.asarray(b.extra_std, np.float64)
            info[sl] = np.where(np.isfinite(std), 1.0 / np.maximum(std, 1e-300) ** 2, 0.0)
        self.extra_mean, self.extra_info = mean, info
        self._extra_H = np.diag(info)
        # each block's rows and columns of the normal equations: the pose's and its extra parameters'
        self._cols = [None if sl.start == sl.stop else np.r_[0:3, sl.start:sl.stop] for sl in self.slices]
        self._ix = [None if c is None else np.ix_(c, c) for c in self._cols]
        self.prior = None
        if prior is not None:
            mu, cov = np.asarray(prior[0], np.float64).reshape(3), np.asarray(prior[1], np.float64).reshape(3, 3)
            if not np.all(np.isfinite(mu)) or not np.all(np.isfinite(cov)):
                raise ValueError('the pose prior must be finite')
            Hp = np.linalg.inv(0.5 * (cov + cov.T))
            self.prior = (mu, 0.5 * (Hp + Hp.T))

    def linearize(self, theta: np.ndarray) -> list[Linearization]:
        pose = theta[:3]
        return [b.linearize(pose, theta[sl]) for b, sl in zip(self.blocks, self.slices)]

    def prior_terms(self, theta: np.ndarray, with_pose_prior: bool = True
                    ) -> tuple[float, np.ndarray, np.ndarray]:
        """(cost, gradient (n,), information (n, n)) of the priors: the extras' and (with_pose_prior) the pose's."""
        n = self.n
        g = np.zeros(n)
        H = self._extra_H.copy()
        d = theta - self.extra_mean
        d[:3] = 0.0
        cost = 0.5 * float(np.sum(self.extra_info * d * d))
        g += self.extra_info * d
        if with_pose_prior and self.prior is not None:
            mu, Hp = self.prior
            dp = theta[:3] - mu
            dp[2] = float(wrap_angle(dp[2]))
            cost += 0.5 * float(dp @ Hp @ dp)
            g[:3] += Hp @ dp
            H[:3, :3] += Hp
        return cost, g, H

    def cost(self, theta: np.ndarray, lins: list[Linearization]) -> float:
        cfg = self.cfg
        d = theta[3:] - self.extra_mean[3:]
        c = 0.5 * float(self.extra_info[3:] @ (d * d))
        if self.prior is not None:
            mu, Hp = self.prior
            dp = theta[:3] - mu
            dp[2] = (dp[2] + math.pi) % (2.0 * math.pi) - math.pi
            c += 0.5 * float(dp @ Hp @ dp)
        for b, lin in zip(self.blocks, lins):
            c += float(b.weights @ robust_cost(lin.e, cfg.loss, cfg.loss_scale))
        return c

    def normal_equations(self, lins: list[Linearization]) -> tuple[np.ndarray, np.ndarray]:
        """(information (n, n), gradient (n,)) of the measurement blocks with their IRLS weights."""
        cfg = self.cfg
        H = np.zeros((self.n, self.n))
        g = np.zeros(self.n)
        for b, cols, ix, lin in zip(self.blocks, self._cols, self._ix, lins):
            w = b.weights * robust_weight(lin.e, cfg.loss, cfg.loss_scale)
            Jw = lin.J * w[:, None]
            Hb, gb = Jw.T @ lin.J, Jw.T @ lin.e
            if cols is None:
                H[:3, :3] += Hb
                g[:3] += gb
            else:
                H[ix] += Hb
                g[cols] += gb
        return H, g


def solve(blocks: Sequence[Block], x0: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None = None,
          config: SolverConfig | None = None) -> Solution:
    """Solve the pose from ``blocks`` starting at ``x0`` (3,) (x, y, yaw in the map), with an optional Gaussian
    pose ``prior`` (mean (3,), cov (3, 3)). See the module docstring."""
    cfg = config or SolverConfig()
    x0 = np.asarray(x0, np.float64).reshape(3)
    if not np.all(np.isfinite(x0)):
        raise ValueError('the start pose must be finite')
    prob = _Problem(blocks, prior, cfg)
    theta = prob.extra_mean.copy()
    theta[:3] = x0
    theta[2] = float(wrap_angle(theta[2]))
    lins = prob.linearize(theta)
    cost = prob.cost(theta, lins)
    lam = cfg.lm_lambda
    it, converged = 0, False
    for it in range(1, cfg.max_iterations + 1):
        Hm, gm = prob.normal_equations(lins)
        _, gp, Hp = prob.prior_terms(theta)
        H, g = Hm + Hp, gm + gp
        D = np.diag(H).copy() + 1e-9
        improved = False
        step = np.zeros(prob.n)
        while lam < 1e10:
            try:
                step = -np.linalg.solve(H + lam * np.diag(D), g)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            new = theta + step
            new[2] = float(wrap_angle(new[2]))
            new_lins = prob.linearize(new)
            new_cost = prob.cost(new, new_lins)
            if new_cost <= cost:
                theta, lins, cost, improved = new, new_lins, new_cost, True
                lam = max(lam * 0.1, 1e-12)
                break
            lam *= 10.0
            if float(step @ H @ step) < cfg.tol_gain:   # a step within the noise did not help: done
                break
        # the step (taken) was a small fraction of the answer's uncertainty, or tiny: done
        if not improved or float(step @ H @ step) < cfg.tol_gain or float(np.max(np.abs(step[:3]))) < cfg.tol:
            converged = True
            break
    return _solution(prob, theta, lins, cost, it, converged)


def _solution(prob: _Problem, theta: np.ndarray, lins: list[Linearization], cost: float, iterations: int,
              converged: bool) -> Solution:
    cfg = prob.cfg
    Hm, _ = prob.normal_equations(lins)
    _, _, Hfull_p = prob.prior_terms(theta, with_pose_prior=True)
    _, _, Hextra = prob.prior_terms(theta, with_pose_prior=False)
    H_all = Hm + Hfull_p
    H_meas = Hm + Hextra
    # reduced chi-square over the inliers; the parameters the measurements determine = trace(H_all^-1 Hm)
    chi2, n_in, n_use = 0.0, 0, 0
    residuals, inliers, stats = {}, {}, {}
    for b, lin in zip(prob.blocks, lins):
        inl = lin.active & (np.abs(lin.e) <= cfg.outlier) & (b.weights > 0)
        w = b.weights * robust_weight(lin.e, cfg.loss, cfg.loss_scale)
        chi2 += float(np.sum((w * lin.e * lin.e)[inl]))
        n_in += int(inl.sum())
        n_use += int((lin.valid & (b.weights > 0)).sum())
        residuals[b.name] = lin.r.copy()
        inliers[b.name] = inl
        stats[b.name] = {'n': float(len(lin.e)), 'inliers': float(inl.sum()),
                         'rms': float(np.sqrt(np.mean(lin.e[inl] ** 2))) if inl.any() else float('nan'),
                         'cost': float(b.weights @ robust_cost(lin.e, cfg.loss, cfg.loss_scale))}
    p_eff = float(np.trace(_floored_inverse(H_all, cfg.max_variance) @ Hm))
    dof = n_in - p_eff
    chi2_red = chi2 / dof if dof > 0.5 else float('nan')
    inflation = float(np.clip(chi2_red, 1.0, cfg.max_inflation)) if np.isfinite(chi2_red) else 1.0
    # what the residuals do not explain widens the measurements' information, not the priors'
    full = _floored_inverse(Hm / inflation + Hfull_p, cfg.max_variance)
    cov = full[:3, :3]
    cov_m = _floored_inverse(Hm / inflation + Hextra, cfg.max_variance)[:3, :3]
    info = np.linalg.inv(_floored_inverse(H_meas, cfg.max_variance)[:3, :3])
    e_in = np.concatenate([lin.e[inliers[b.name]] for b, lin in zip(prob.blocks, lins)]) if prob.blocks \
        else np.zeros(0)
    mahal = float('nan')
    if prob.prior is not None:
        mu, Hp = prob.prior
        dp = theta[:3] - mu
        dp[2] = float(wrap_angle(dp[2]))
        mahal = float(np.sqrt(max(float(dp @ Hp @ dp), 0.0)))
    extra = {b.name: theta[sl].copy() for b, sl in zip(prob.blocks, prob.slices)}
    extra_var = {b.name: np.diag(full)[sl].copy() for b, sl in zip(prob.blocks, prob.slices)}
    return Solution(pose=theta[:3].copy(), cov=0.5 * (cov + cov.T), cov_measurements=0.5 * (cov_m + cov_m.T),
                    information=0.5 * (info + info.T),
                    extra=extra, extra_var=extra_var, residuals=residuals, inliers=inliers,
                    rms=float(np.sqrt(np.mean(e_in ** 2))) if len(e_in) else float('nan'),
                    inlier_share=n_in / n_use if n_use else 0.0, chi2_red=chi2_red, inflation=inflation,
                    prior_mahalanobis=mahal, cost=cost, iterations=iterations, converged=converged,
                    n_measurements=n_use, stats=stats)


__all__ = ['Block', 'DistanceField', 'Linearization', 'PlaneBlock', 'RangeBlock', 'ScanBlock', 'Solution',
           'SolverConfig', 'robust_cost', 'robust_weight', 'solve']
