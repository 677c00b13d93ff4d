"""Scan-to-map registration (point-to-plane ICP) of 2D scans and 3D clouds against a site's map.

Maps (:class:`PointMap`):

* 2D, from an :class:`~flm_core.site.OccupancyMap`: the boundary of the occupied cells (occupied cells with a
  non-occupied 4-neighbour), each point moved half a cell towards its free neighbours (onto the cell face a range
  sensor actually hits), normals by PCA of the 8 nearest boundary points;
* 3D, from points (a site's ``point_map``; normals by PCA when not given) or from an extruded grid
  (:func:`extrusion_point_map`: per-cell solid intervals, as generated buildings have), voxel-downsampled.

Registration (:func:`register`) estimates the planar pose (x, y, yaw) of base_link in the map from points given in
base_link and an initial guess (the filter's prediction):

* ``engine='planar'`` (default): Gauss-Newton on the point-to-plane residuals over (x, y, yaw) only, with Huber
  weights and a shrinking correspondence distance, against a KD-tree built once per map. For a robot on a flat
  floor this is the exact problem; it is fast (a few ms per scan).
* ``engine='open3d'``: open3d's point-to-plane ICP (6 DoF, Huber loss) against a local submap around the guess
  (open3d builds the target's KD-tree on every call, hence the submap), projected back onto (x, y, yaw). On a
  degenerate 2D scene (a straight corridor) its solver can diverge; the planar engine stays bounded there.

Where the map's normals are oriented (pointing to free space: the occupancy faces and the extruded grids are) and
the caller gives the sensor's position (``viewpoint``), correspondences with surfaces facing away from the sensor
are skipped: the far face of a thin wall or shelf is never what the sensor sees, and matching it creates false
minima one wall-thickness away from the truth.

Covariance: ``sigma^2 (J^T W J)^-1`` over (x, y, yaw) from the final correspondences, sigma^2 the weighted residual
variance, times ``cov_scale`` (neighbouring residuals are correlated and the map is discretised, so the raw Hessian
is overconfident) plus a diagonal floor ``cov_floor``. A degenerate geometry (a corridor) shows up as a large
variance along the unconstrained direction. ``fitness`` is the fraction of points with a correspondence.

Units: metres, radians; points in base_link (REP-103), poses in the map frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..geometry import wrap_angle
from ..site import OccupancyMap


# ------------------------------------------------------------------------------------------------------- maps
def _pca_normals(points: np.ndarray, tree: cKDTree, k: int) -> np.ndarray:
    """(N, D) unit normals: eigenvector of the smallest eigenvalue of the covariance of the k nearest points."""
    k = min(k, len(points))
    _, idx = tree.query(points, k=k)
    nb = points[idx]                                   # (N, k, D)
    nb = nb - nb.mean(axis=1, keepdims=True)
    C = np.einsum('nki,nkj->nij', nb, nb)
    _, vec = np.linalg.eigh(C)
    n = vec[:, :, 0]
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def voxel_downsample(points: np.ndarray, voxel: float, normals: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep one point (the first) per voxel of size ``voxel`` m and, with normals, per normal direction (so both
    faces of a wall thinner than a voxel survive); points (N, D), normals (N, D) or None."""
    if voxel <= 0 or not len(points):
        return points, normals
    key = np.floor(points / voxel).astype(np.int64)
    if normals is not None:
        key = np.concatenate([key, np.rint(np.asarray(normals) * 2.0).astype(np.int64)], axis=1)
    _, keep = np.unique(_packed(key), return_index=True)
    keep.sort()
    return points[keep], (None if normals is None else normals[keep])


def _packed(key: np.ndarray) -> np.ndarray:
    """Integer rows (N, D) -> one int64 per row, equal exactly where the rows are (mixed-radix over the rows'
    span; rows whose span would overflow int64 -> their index among the distinct rows). np.unique on these is an
    order of magnitude faster than on the rows."""
    if not len(key):
        return np.zeros(0, np.int64)
    lo = key.min(0)
    span = key.max(0) - lo + 1
    if float(np.prod(span.astype(np.float64))) >= 2.0 ** 62:
        return np.unique(key, axis=0, return_inverse=True)[1].reshape(-1)
    out = np.zeros(len(key), np.int64)
    for d in range(key.shape[1]):
        out = out * span[d] + (key[:, d] - lo[d])
    return out


@dataclass
class PointMap:
    """Map points (N, D) (D = 2 or 3, map frame, m) with unit normals (N, D) and a KD-tree. Where ``oriented`` is
    True the normal points to the free side of the surface, and registration ignores correspondences with surfaces
    that face away from the sensor (the far face of a thin wall is not what a range sensor sees)."""

    points: np.ndarray
    normals: np.ndarray
    tree: cKDTree = field(repr=False)
    oriented: np.ndarray | None = None      # (N,) bool: the normal points out of the surface (to the free side)
    _submap: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        return int(self.points.shape[1])

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @classmethod
    def from_points(cls, points: np.ndarray, normals: np.ndarray | None = None, voxel: float = 0.0,
                    k: int = 10, oriented: bool = True) -> PointMap:
        """From points (N, 2|3), optionally voxel-downsampled; normals by PCA of k neighbours when None (then
        unoriented); given normals are taken as oriented (pointing to free space) unless ``oriented`` is False."""
        pts = np.asarray(points, dtype=np.float64)
        nrm = None if normals is None else np.asarray(normals, dtype=np.float64)
        pts, nrm = voxel_downsample(pts, voxel, nrm)
        tree = cKDTree(pts)
        if nrm is None:
            return cls(points=pts, normals=_pca_normals(pts, tree, k), tree=tree)
        nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        return cls(points=pts, normals=nrm, tree=tree, oriented=np.full(len(pts), bool(oriented)))

    @classmethod
    def from_occupancy(cls, occ: OccupancyMap, threshold: int = 65, k: int = 8) -> PointMap:
        """2D map from the faces of the occupied cells (see the module docstring)."""
        solid = occ.occupied(threshold)
        H, W = solid.shape
        pad = np.pad(solid, 1, constant_values=False)
        free_e = ~pad[1:-1, 2:]
        free_w = ~pad[1:-1, :-2]
        free_n = ~pad[2:, 1:-1]     # row + 1 = +y
        free_s = ~pad[:-2, 1:-1]
        boundary = solid & (free_e | free_w | free_n | free_s)
        rows, cols = np.nonzero(boundary)
        if not len(rows):
            raise ValueError('occupancy map has no occupied cells to register against')
        du = (free_e[rows, cols].astype(float) - free_w[rows, cols].astype(float)) * 0.5
        dv = (free_n[rows, cols].astype(float) - free_s[rows, cols].astype(float)) * 0.5
        cr = np.stack([cols + du, rows + dv], axis=-1)
        pts = occ.cell_to_world(cr)
        tree = cKDTree(pts)
        nrm = _pca_normals(pts, tree, k)
        # orient towards the free neighbours (rotated into the map frame); ambiguous where they cancel out
        c, s_ = math.cos(occ.origin[2]), math.sin(occ.origin[2])
        free_dir = np.stack([c * du - s_ * dv, s_ * du + c * dv], axis=-1)
        dot = np.sum(nrm * free_dir, axis=1)
        nrm = np.where(dot[:, None] < 0, -nrm, nrm)
        oriented = np.abs(dot) > 0.3 * np.linalg.norm(free_dir, axis=1) + 1e-9
        return cls(points=pts, normals=nrm, tree=tree, oriented=oriented)

    def submap(self, center: np.ndarray, radius: float, step: float) -> tuple[np.ndarray, np.ndarray]:
        """(points, normals) within ``radius`` (horizontal) of ``center`` (2,), cached until the centre moves by
        more than ``step``."""
        c = np.asarray(center, dtype=np.float64)[:2]
        s = self._submap
        if s and s['radius'] == radius and np.hypot(*(s['center'] - c)) <= step:
            return s['points'], s['normals']
        idx = self.tree.query_ball_point(np.r_[c, np.zeros(self.dim - 2)], radius + step, p=2.0) \
            if self.dim == 2 else np.nonzero(np.hypot(self.points[:, 0] - c[0], self.points[:, 1] - c[1])
                                             <= radius + step)[0]
        idx = np.asarray(idx, dtype=np.int64)
        self._submap = {'center': c, 'radius': radius, 'points': self.points[idx], 'normals': self.normals[idx],
                        'o3d': None}
        return self._submap['points'], self._submap['normals']


def extrusion_point_map(zlo: np.ndarray, zhi: np.ndarray, occ: OccupancyMap, ceiling: float | None,
                        spacing: float = 0.2, floor_spacing: float = 0.5, inside: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """3D surface points and normals of an extruded grid: each cell (H, W) is solid between zlo and zhi (m; free
    where zhi <= zlo), the grid placed by ``occ`` (resolution, origin; axis-aligned origin assumed). Returns
    (points (N, 3), normals (N, 3)): exposed vertical cell faces every ``spacing`` m in height, exposed top and
    bottom faces, and the floor (z = 0) and ceiling planes every ``floor_spacing`` m over the cells in ``inside``
    (default: every non-solid cell)."""
    res = float(occ.resolution)
    zlo = np.asarray(zlo, dtype=np.float64)
    zhi = np.asarray(zhi, dtype=np.float64)
    solid = zhi > zlo
    H, W = solid.shape
    pts: list[np.ndarray] = []
    nrm: list[np.ndarray] = []
    ox, oy = float(occ.origin[0]), float(occ.origin[1])
    rows, cols = np.nonzero(solid)
    lo, hi = zlo[rows, cols], zhi[rows, cols]
    for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        r2, c2 = rows + dr, cols + dc
        inb = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
        nlo = np.full(len(rows), np.inf)
        nhi = np.full(len(rows), -np.inf)
        nlo[inb] = zlo[r2[inb], c2[inb]]
        nhi[inb] = zhi[r2[inb], c2[inb]]
        nsolid = nhi > nlo
        # exposed intervals of our face: below the neighbour's solid part and above it
        intervals = [(lo, np.where(nsolid, np.minimum(hi, nlo), hi)),
                     (np.where(nsolid, np.maximum(lo, nhi), hi), np.where(nsolid, hi, hi))]
        for a, b in intervals:
            ok = b - a > 1e-6
            if not ok.any():
                continue
            n_z = np.maximum(1, np.ceil((b[ok] - a[ok]) / spacing).astype(np.int64))
            rep = np.repeat(np.arange(ok.sum()), n_z)
            k = np.arange(len(rep)) - np.repeat(np.cumsum(n_z) - n_z, n_z)
            z = a[ok][rep] + (k + 0.5) * ((b[ok] - a[ok]) / n_z)[rep]
            x = ox + (cols[ok][rep] + 0.5 + 0.5 * dc) * res
            y = oy + (rows[ok][rep] + 0.5 + 0.5 * dr) * res
            pts.append(np.stack([x, y, z], -1))
            nrm.append(np.tile([float(dc), float(dr), 0.0], (len(z), 1)))
    step = max(1, int(round(spacing / res)))
    sub = np.zeros_like(solid)
    sub[::step, ::step] = True
    top = solid & sub & (np.isfinite(zhi)) & ((ceiling is None) | (zhi < (ceiling or np.inf) - 1e-6))
    r, c = np.nonzero(top)
    if len(r):
        pts.append(np.stack([ox + (c + 0.5) * res, oy + (r + 0.5) * res, zhi[r, c]], -1))
        nrm.append(np.tile([0.0, 0.0, 1.0], (len(r), 1)))
    bottom = solid & sub & (zlo > 1e-6)
    r, c = np.nonzero(bottom)
    if len(r):
        pts.append(np.stack([ox + (c + 0.5) * res, oy + (r + 0.5) * res, zlo[r, c]], -1))
        nrm.append(np.tile([0.0, 0.0, -1.0], (len(r), 1)))
    fstep = max(1, int(round(floor_spacing / res)))
    fsub = np.zeros_like(solid)
    fsub[::fstep, ::fstep] = True
    area = (~solid if inside is None else np.asarray(inside, bool)) & fsub
    r, c = np.nonzero(area | (solid & fsub & (zlo > 1e-6)))
    if len(r):
        pts.append(np.stack([ox + (c + 0.5) * res, oy + (r + 0.5) * res, np.zeros(len(r))], -1))
        nrm.append(np.tile([0.0, 0.0, 1.0], (len(r), 1)))
    if ceiling is not None:
        r, c = np.nonzero(area | (solid & fsub & (zhi < ceiling - 1e-6)))
        if len(r):
            pts.append(np.stack([ox + (c + 0.5) * res, oy + (r + 0.5) * res, np.full(len(r), float(ceiling))], -1))
            nrm.append(np.tile([0.0, 0.0, -1.0], (len(r), 1)))
    P = np.concatenate(pts) if pts else np.zeros((0, 3))
    N = np.concatenate(nrm) if nrm else np.zeros((0, 3))
    return P, N


# --------------------------------------------------------------------------------------------- registration
@dataclass(frozen=True)
class IcpConfig:
    """engine: 'planar' or 'open3d'; max_correspondence: successive correspondence distances (m), each stage
    iterated to convergence; max_iterations per stage; huber: m; tol_trans (m) / tol_rot (rad): convergence;
    min_points: fewest correspondences; min_fitness: fewest fraction of points with a correspondence at the last
    stage for a valid result; cov_scale, cov_floor (3,) std floor (m, m, rad): see the module docstring;
    submap_radius / submap_step: m, the open3d engine's local map."""

    engine: str = 'planar'
    max_correspondence: tuple[float, ...] = (1.0, 0.5, 0.25)
    max_iterations: int = 30
    huber: float = 0.1
    tol_trans: float = 1e-4
    tol_rot: float = 1e-4
    min_points: int = 20
    min_fitness: float = 0.6
    cov_scale: float = 10.0
    cov_floor: tuple[float, float, float] = (0.01, 0.01, 0.003)
    submap_radius: float = 25.0
    submap_step: float = 2.0

    def __post_init__(self) -> None:
        if self.engine not in ('planar', 'open3d'):
            raise ValueError(f"IcpConfig.engine must be 'planar' or 'open3d', got {self.engine!r}")
        if not self.max_correspondence or min(self.max_correspondence) <= 0:
            raise ValueError('IcpConfig.max_correspondence must be positive distances')


@dataclass
class IcpResult:
    """pose (3,) x y yaw of base_link in the map; cov (3, 3); fitness: fraction of points with a correspondence
    within the last distance; rmse: m, point-to-plane RMS of those; ok: fitness and point count pass the config's
    thresholds; iterations; n_points: points used."""

    pose: np.ndarray
    cov: np.ndarray
    fitness: float
    rmse: float
    ok: bool
    iterations: int
    n_points: int


def _transform(src: np.ndarray, x: np.ndarray) -> np.ndarray:
    c, s = math.cos(x[2]), math.sin(x[2])
    out = src.copy()
    out[:, 0] = c * src[:, 0] - s * src[:, 1] + x[0]
    out[:, 1] = s * src[:, 0] + c * src[:, 1] + x[1]
    return out


def _nearest(pm: PointMap, q: np.ndarray, x: np.ndarray, max_corr: float, viewpoint: np.ndarray | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest map point of each query point q (N, D) within max_corr -> (mask (N,), index (N,)); with oriented
    normals and a viewpoint (base_link, (D,)), the nearest of the 3 closest whose surface faces the sensor."""
    if pm.oriented is None or viewpoint is None:
        dist, j = pm.tree.query(q, k=1, distance_upper_bound=max_corr)
        return np.isfinite(dist), np.where(np.isfinite(dist), j, 0)
    vp = _transform(np.asarray(viewpoint, dtype=np.float64).reshape(1, -1)[:, :q.shape[1]], x)[0]
    dist, jj = pm.tree.query(q, k=3, distance_upper_bound=max_corr)
    ok = np.isfinite(dist)
    jc = np.where(ok, jj, 0)
    n = pm.normals[jc]                                           # (N, 3, D)
    facing = np.einsum('nkd,nkd->nk', n, vp[None, None, :] - pm.points[jc]) > -1e-3
    ok &= facing | ~pm.oriented[jc]
    first = np.argmax(ok, axis=1)
    m = ok[np.arange(len(q)), first]
    return m, jc[np.arange(len(q)), first]


def _linearize(pm: PointMap, src: np.ndarray, x: np.ndarray, max_corr: float, huber: float,
               viewpoint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Correspondences at pose x: (J (M, 3), e (M,), w (M,), mask (N,))."""
    q = _transform(src, x)
    m, j = _nearest(pm, q, x, max_corr, viewpoint)
    jm = j[m]
    n = pm.normals[jm]
    d = q[m] - pm.points[jm]
    e = np.sum(n * d, axis=1)
    if n.shape[1] == 3:
        # floor/ceiling correspondences do not constrain (x, y, yaw): leave them out of the solve
        keep = np.abs(n[:, 2]) < 0.8
        idx = np.nonzero(m)[0]
        m = np.zeros_like(m)
        m[idx[keep]] = True
        n, d, e = n[keep], d[keep], e[keep]
    rx = q[m, 0] - x[0]
    ry = q[m, 1] - x[1]
    J = np.stack([n[:, 0], n[:, 1], -n[:, 0] * ry + n[:, 1] * rx], axis=-1)
    a = np.abs(e)
    w = np.where(a <= huber, 1.0, huber / np.maximum(a, 1e-12))
    return J, e, w, m


def _covariance(J: np.ndarray, e: np.ndarray, w: np.ndarray, cfg: IcpConfig) -> np.ndarray:
    Hm = (J * w[:, None]).T @ J
    dof = max(len(e) - 3, 1)
    sigma2 = max(float(np.sum(w * e * e) / dof), 1e-4)
    try:
        cov = np.linalg.inv(Hm + 1e-9 * np.eye(3)) * sigma2 * cfg.cov_scale
    except np.linalg.LinAlgError:
        cov = np.eye(3) * 1e6
    cov = cov + np.diag(np.asarray(cfg.cov_floor) ** 2)
    return 0.5 * (cov + cov.T)


def _finish(pm: PointMap, src: np.ndarray, x: np.ndarray, cfg: IcpConfig, iters: int,
            viewpoint: np.ndarray | None = None) -> IcpResult:
    J, e, w, m = _linearize(pm, src, x, cfg.max_correspondence[-1], cfg.huber, viewpoint)
    if pm.dim == 3:
        fitness = float(np.mean(_nearest(pm, _transform(src, x), x, cfg.max_correspondence[-1], viewpoint)[0]))
    else:
        fitness = float(m.mean()) if len(m) else 0.0
    rmse = float(np.sqrt(np.mean(e ** 2))) if len(e) else float('nan')
    ok = bool(len(e) >= cfg.min_points and fitness >= cfg.min_fitness and np.all(np.isfinite(x)))
    cov = _covariance(J, e, w, cfg) if len(e) >= 3 else np.eye(3) * 1e6
    return IcpResult(pose=x, cov=cov, fitness=fitness, rmse=rmse, ok=ok, iterations=iters, n_points=len(src))


def _register_planar(pm: PointMap, src: np.ndarray, init: np.ndarray, cfg: IcpConfig,
                     viewpoint: np.ndarray | None = None) -> IcpResult:
    x = np.asarray(init, dtype=np.float64).copy()
    iters = 0
    for max_corr in cfg.max_correspondence:
        for _ in range(cfg.max_iterations):
            iters += 1
            J, e, w, _ = _linearize(pm, src, x, max_corr, cfg.huber, viewpoint)
            if len(e) < max(cfg.min_points, 3):
                break
            Hm = (J * w[:, None]).T @ J + 1e-9 * np.eye(3)
            g = (J * w[:, None]).T @ e
            try:
                dx = -np.linalg.solve(Hm, g)
            except np.linalg.LinAlgError:
                break
            x = x + dx
            x[2] = float(wrap_angle(x[2]))
            if math.hypot(dx[0], dx[1]) < cfg.tol_trans and abs(dx[2]) < cfg.tol_rot:
                break
    return _finish(pm, src, x, cfg, iters, viewpoint)


def _register_open3d(pm: PointMap, src: np.ndarray, init: np.ndarray, cfg: IcpConfig,
                     viewpoint: np.ndarray | None = None) -> IcpResult:
    import open3d as o3d  # noqa: PLC0415 (heavy; only this engine needs it)

    reg = o3d.pipelines.registration
    pts, nrm = pm.submap(init[:2], cfg.submap_radius, cfg.submap_step)
    if pm._submap.get('o3d') is None:
        tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(_pad3(pts)))
        tgt.normals = o3d.utility.Vector3dVector(_pad3(nrm))
        pm._submap['o3d'] = tgt
    tgt = pm._submap['o3d']
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(_pad3(src)))
    T = np.eye(4)
    c, s = math.cos(init[2]), math.sin(init[2])
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3], T[1, 3] = init[0], init[1]
    iters = 0
    est = reg.TransformationEstimationPointToPlane(reg.HuberLoss(cfg.huber))
    for max_corr in cfg.max_correspondence:
        r = reg.registration_icp(source, tgt, max_corr, T, est,
                                 reg.ICPConvergenceCriteria(relative_fitness=1e-7, relative_rmse=1e-7,
                                                            max_iteration=cfg.max_iterations))
        T = np.asarray(r.transformation)
        iters += cfg.max_iterations
    x = np.array([T[0, 3], T[1, 3], math.atan2(T[1, 0], T[0, 0])])
    return _finish(pm, src, x, cfg, iters, viewpoint)


def _pad3(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a if a.shape[1] == 3 else np.concatenate([a, np.zeros((len(a), 1))], axis=1)


def register(pm: PointMap, points: np.ndarray, init: np.ndarray, config: IcpConfig | None = None,
             viewpoint: np.ndarray | None = None) -> IcpResult:
    """Register points (N, D) in base_link (D = the map's dimension) to the map from the guess ``init`` (3,) x y yaw;
    see the module docstring. ``viewpoint`` (D,): the sensor's position in base_link; with it, correspondences with
    map surfaces facing away from the sensor are ignored (where the map's normals are oriented)."""
    cfg = config or IcpConfig()
    src = np.asarray(points, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != pm.dim:
        raise ValueError(f'points must be (N, {pm.dim}) for a {pm.dim}D map, got {src.shape}')
    src = src[np.all(np.isfinite(src), axis=1)]
    init = np.asarray(init, dtype=np.float64).reshape(3)
    if len(src) < max(cfg.min_points, 3):
        return IcpResult(pose=init.copy(), cov=np.eye(3) * 1e6, fitness=0.0, rmse=float('nan'), ok=False,
                         iterations=0, n_points=len(src))
    vp = None if viewpoint is None else np.asarray(viewpoint, dtype=np.float64).reshape(-1)[:pm.dim]
    if cfg.engine == 'open3d':
        return _register_open3d(pm, src, init, cfg, vp)
    return _register_planar(pm, src, init, cfg, vp)


def sensor_to_base(points: np.ndarray, mount: tuple[float, float, float, float]) -> np.ndarray:
    """Points (N, 2|3) in a sensor frame mounted at (x, y, z, yaw) on base_link -> base_link (same shape; z added
    for 3D points)."""
    p = np.asarray(points, dtype=np.float64)
    mx, my, mz, myaw = mount
    c, s = math.cos(myaw), math.sin(myaw)
    out = p.copy()
    out[:, 0] = c * p[:, 0] - s * p[:, 1] + mx
    out[:, 1] = s * p[:, 0] + c * p[:, 1] + my
    if p.shape[1] == 3:
        out[:, 2] = p[:, 2] + mz
    return out


def deskew(points: np.ndarray, dt: np.ndarray, twist: np.ndarray) -> np.ndarray:
    """Undo motion distortion: points (N, 2|3) in base_link, each measured ``dt`` (N,) s after the reference stamp
    while the robot moved with body ``twist`` (3,) vx, vy (m/s), wz (rad/s) -> the same points in base_link at
    the reference stamp (constant-twist arc, first order in translation)."""
    p = np.asarray(points, dtype=np.float64)
    dt = np.broadcast_to(np.asarray(dt, dtype=np.float64), (len(p),))
    vx, vy, wz = (float(v) for v in twist)
    th = wz * dt
    c, s = np.cos(th), np.sin(th)
    ch, sh = np.cos(0.5 * th), np.sin(0.5 * th)
    tx = (ch * vx - sh * vy) * dt
    ty = (sh * vx + ch * vy) * dt
    out = p.copy()
    out[:, 0] = c * p[:, 0] - s * p[:, 1] + tx
    out[:, 1] = s * p[:, 0] + c * p[:, 1] + ty
    return out
