"""Map index: nearest-obstacle lookups, a distance field and map samples of one :class:`~flm_core.site.Site`.

Built once per site and shared by what looks at the map: the tokenizer (:func:`flm_core.model.tokens.tokenize`),
the model's global search (:class:`flm_core.model.inference.Localizer`) and the solver behind
:mod:`flm_core.estimation.refine`. numpy/scipy only; map-frame coordinates in metres (REP-103).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .site import Site


class MapIndex:
    """Nearest-obstacle lookups and map-token samples of one Site, built once per site.

    With an occupancy map: a Euclidean distance transform with nearest-occupied-cell indices (exact association at
    cell resolution, offsets to the cell centre). With only a point map: a KD-tree over the points (3D offsets).
    Map tokens come from obstacles voxel-downsampled to ``voxel`` metres.
    """

    def __init__(self, site: Site, voxel: float = 0.5) -> None:
        self.site = site
        self.kind = 'none'
        self._grid_xy: np.ndarray | None = None   # (H, W, 2) float64 map-frame xy of each cell's nearest obstacle
        self.dist: np.ndarray | None = None       # (H, W) float32 m to the nearest obstacle cell (grid maps)
        self._tree3: cKDTree | None = None
        self._pts3: np.ndarray | None = None
        obstacles = np.zeros((0, 3))
        m = site.map
        if m is not None and np.any(m.occupied()):
            occ = m.occupied()
            dist, idx = ndimage.distance_transform_edt(~occ, return_indices=True)
            self.dist = (dist * m.resolution).astype(np.float32)
            self._grid_xy = m.cell_to_world(np.stack([idx[1], idx[0]], axis=-1))
            rows, cols = np.nonzero(occ)
            # voxel keys in cell space (not world space), so the samples move rigidly with the map's origin
            k = max(1, int(round(voxel / m.resolution)))
            _, first = np.unique(np.stack([rows // k, cols // k], -1), axis=0, return_index=True)
            first = np.sort(first)
            obstacles = np.concatenate([m.cell_to_world(np.stack([cols[first], rows[first]], -1)),
                                        np.zeros((len(first), 1))], axis=1)
            self.kind = 'grid'
        elif site.point_map is not None and len(site.point_map):
            self._pts3 = np.asarray(site.point_map, dtype=np.float64)
            self._tree3 = cKDTree(self._pts3)
            obstacles = self._pts3
            self.kind = 'points'
        if self.kind == 'grid':
            self.samples = obstacles
        elif len(obstacles):
            key = np.floor(obstacles / voxel).astype(np.int64)
            _, first = np.unique(key, axis=0, return_index=True)
            self.samples = obstacles[np.sort(first)]
        else:
            self.samples = np.zeros((0, 3))
        self._tree2 = cKDTree(self.samples[:, :2]) if len(self.samples) else None
        self.anchors = {a.id: (np.asarray(a.position, dtype=np.float64), float(a.bias)) for a in site.anchors}
        self.cache: dict[str, Any] = {}   # derived per-site arrays users may memoise (e.g. a likelihood field)

    def free_positions(self, clearance: float = 0.25, spacing: float = 0.5) -> np.ndarray:
        """(M, 2) map-frame xy of known-free cells at least ``clearance`` from obstacles, on a lattice of about
        ``spacing`` metres (grid maps; point maps: a lattice over the points' bounding box away from points)."""
        key = f'free_{clearance}_{spacing}'
        if key in self.cache:
            return self.cache[key]
        self.cache[key] = out = self._free_positions(clearance, spacing)
        return out

    def _free_positions(self, clearance: float, spacing: float) -> np.ndarray:
        if self.kind == 'grid':
            m = self.site.map
            assert m is not None and self.dist is not None
            k = max(1, int(round(spacing / m.resolution)))
            ok = m.free()[::k, ::k] & (self.dist[::k, ::k] >= clearance)
            rows, cols = np.nonzero(ok)
            return m.cell_to_world(np.stack([cols * k, rows * k], -1))
        if self.kind == 'points':
            assert self._pts3 is not None and self._tree3 is not None
            lo, hi = self._pts3[:, :2].min(0), self._pts3[:, :2].max(0)
            gx, gy = np.meshgrid(np.arange(lo[0], hi[0], spacing), np.arange(lo[1], hi[1], spacing))
            xy = np.stack([gx.ravel(), gy.ravel()], -1)
            d, _ = cKDTree(self._pts3[:, :2]).query(xy)
            return xy[d >= clearance]
        return np.zeros((0, 2))

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """(...) metres from map-frame xy (..., 2) to the nearest obstacle (outside the grid: the border value)."""
        if self.kind == 'grid':
            m = self.site.map
            assert m is not None and self.dist is not None
            cr = m.world_to_cell(xy)
            H, W = m.shape
            return self.dist[np.clip(cr[..., 1], 0, H - 1), np.clip(cr[..., 0], 0, W - 1)]
        p = np.concatenate([xy, np.zeros(xy.shape[:-1] + (1,))], -1)
        q = self.nearest(p)
        return np.linalg.norm((q - p)[..., :2], axis=-1)

    def crossings(self, p: np.ndarray, q: np.ndarray, margin: float = 0.2) -> np.ndarray:
        """How many obstacles (runs of occupied cells) each segment p (N, 2) -> q (N, 2) (map frame, m) crosses,
        (N,) int, leaving out ``margin`` m at both ends (an anchor mounted on a wall, the robot's own cell); 0 for
        every segment without an occupancy map. A radio link that crosses walls is non-line-of-sight."""
        p = np.asarray(p, np.float64).reshape(-1, 2)
        q = np.asarray(q, np.float64).reshape(-1, 2)
        out = np.zeros(len(p), np.int64)
        if self.kind != 'grid' or not len(p):
            return out
        m = self.site.map
        assert m is not None and self.dist is not None
        step = 0.5 * m.resolution
        H, W = m.shape
        for i in range(len(p)):
            d = q[i] - p[i]
            length = float(np.hypot(d[0], d[1]))
            if length <= 2 * margin:
                continue
            s = np.arange(margin, length - margin, step) / length
            cr = m.world_to_cell(p[i] + s[:, None] * d)
            inside = (cr[:, 0] >= 0) & (cr[:, 0] < W) & (cr[:, 1] >= 0) & (cr[:, 1] < H)
            occ = np.zeros(len(s), bool)
            occ[inside] = self.dist[cr[inside, 1], cr[inside, 0]] == 0
            out[i] = int(occ[0]) + int(np.count_nonzero(occ[1:] & ~occ[:-1]))
        return out

    @property
    def has_map(self) -> bool:
        return self.kind != 'none'

    def nearest(self, p: np.ndarray) -> np.ndarray:
        """p (..., 3) map-frame points -> (..., 3) nearest obstacle (grid: same z as p). Only if has_map."""
        if self.kind == 'grid':
            m = self.site.map
            assert m is not None and self._grid_xy is not None
            cr = m.world_to_cell(p[..., :2])
            H, W = m.shape
            c = np.clip(cr[..., 0], 0, W - 1)
            r = np.clip(cr[..., 1], 0, H - 1)
            q = self._grid_xy[r, c]
            return np.concatenate([q, p[..., 2:3]], axis=-1)
        assert self._tree3 is not None and self._pts3 is not None
        _, i = self._tree3.query(p.reshape(-1, 3))
        return self._pts3[i].reshape(p.shape)

    def map_samples(self, xy: np.ndarray, k: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """For K positions xy (K, 2): the k nearest obstacle samples within radius -> (K, k, 3) points, (K, k) valid."""
        K = xy.shape[0]
        if self._tree2 is None or k == 0:
            return np.zeros((K, k, 3)), np.zeros((K, k), dtype=bool)
        kq = min(k + 16, len(self.samples))
        d, i = self._tree2.query(xy, k=kq, distance_upper_bound=radius)
        d = d.reshape(K, kq)
        i = i.reshape(K, kq)
        # ties (frequent on a grid) are broken by sample index, which a rigid motion of the world does not change
        dq = np.where(np.isfinite(d), np.round(d, 6), np.inf)
        order = np.lexsort((i, dq), axis=-1)[:, :k]
        d = np.take_along_axis(d, order, axis=1)
        i = np.take_along_axis(i, order, axis=1)
        if kq < k:
            d = np.concatenate([d, np.full((K, k - kq), np.inf)], 1)
            i = np.concatenate([i, np.zeros((K, k - kq), dtype=i.dtype)], 1)
        ok = np.isfinite(d)
        pts = self.samples[np.where(ok, i, 0)]
        return pts, ok
