"""Vectorised ray casting against the extruded occupancy grid, vertical cylinders, and segment crossing tests.

:class:`Raycaster` casts many rays at once (numpy, no Python loop over rays). Each ray marches through the grid with
sphere tracing on the Euclidean distance transform of the obstacle cells (large safe steps in open space) and switches
to exact cell-by-cell DDA stepping near obstacles, so the reported range is the exact distance to the boundary of the
first obstacle cell the ray enters (cell faces; top/bottom faces for 3D rays), never past it. Cells are solid between
their ``zlo`` and ``zhi``; a 3D ray also stops on the floor (z = 0) and the ceiling.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .buildings import LIDAR_GLASS, MAT, Building

PLANE_MATERIAL = MAT['concrete']  # material reported for floor/ceiling hits


class Raycaster:
    """Ray casting in one building (see the module docstring)."""

    def __init__(self, zlo: np.ndarray, zhi: np.ndarray, material: np.ndarray, resolution: float,
                 origin_xy: tuple[float, float], ceiling: float | None = None) -> None:
        self.H, self.W = zlo.shape
        self.res = float(resolution)
        self.x0, self.y0 = float(origin_xy[0]), float(origin_xy[1])
        self.zlo = np.ascontiguousarray(zlo, dtype=np.float64).ravel()
        self.zhi = np.ascontiguousarray(zhi, dtype=np.float64).ravel()
        self.material = np.ascontiguousarray(material, dtype=np.uint8).ravel()
        solid = zhi > zlo
        # safe horizontal clearance in cells from any point of a cell to any obstacle cell
        self.clear = (ndimage.distance_transform_edt(~solid) - 1.5).ravel()
        self.ceiling = ceiling

    @classmethod
    def from_building(cls, b: Building) -> Raycaster:
        return cls(b.zlo, b.zhi, b.material, b.resolution, (b.map.origin[0], b.map.origin[1]), b.ceiling)

    def cast(self, origins: np.ndarray, dirs: np.ndarray, max_range: float | np.ndarray,
             planes: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Cast rays. origins: (N, 3) m; dirs: (N, 3) unit vectors; max_range: scalar or (N,) m.

        Returns (t, material): (N,) float64 distance to the first hit (``inf`` when nothing is hit within
        max_range) and (N,) uint8 material id of what was hit (0 when nothing)."""
        o = np.asarray(origins, dtype=np.float64).reshape(-1, 3)
        d = np.asarray(dirs, dtype=np.float64).reshape(-1, 3)
        n = o.shape[0]
        t_end = np.broadcast_to(np.asarray(max_range, dtype=np.float64), (n,)).copy()
        plane_t = np.full(n, np.inf)
        if planes:
            with np.errstate(divide='ignore', invalid='ignore'):
                down = d[:, 2] < 0
                plane_t[down] = -o[down, 2] / d[down, 2]
                if self.ceiling is not None:
                    up = d[:, 2] > 0
                    plane_t[up] = (self.ceiling - o[up, 2]) / d[up, 2]
            t_end = np.minimum(t_end, plane_t)
        out_t = np.full(n, np.inf)
        out_m = np.zeros(n, dtype=np.uint8)
        res = self.res
        # active state (compacted as rays finish)
        idx = np.arange(n)
        ou, ov, oz = (o[:, 0] - self.x0) / res, (o[:, 1] - self.y0) / res, o[:, 2].copy()
        du, dv, dz = d[:, 0] / res, d[:, 1] / res, d[:, 2].copy()
        hz = np.hypot(du, dv)  # cells per metre of t
        with np.errstate(divide='ignore'):
            inv_hz = np.where(hz > 0, 1.0 / np.where(hz > 0, hz, 1.0), np.inf)
            inv_du = np.where(du != 0, 1.0 / np.where(du != 0, du, 1.0), np.inf)
            inv_dv = np.where(dv != 0, 1.0 / np.where(dv != 0, dv, 1.0), np.inf)
        te = t_end.copy()
        t = np.zeros(n)
        W, H = self.W, self.H
        with np.errstate(invalid='ignore', divide='ignore', over='ignore'):
            self._march(idx, ou, ov, oz, du, dv, dz, inv_hz, inv_du, inv_dv, te, t, t_end, plane_t, out_t, out_m)
        return out_t, out_m

    def _march(self, idx, ou, ov, oz, du, dv, dz, inv_hz, inv_du, inv_dv, te, t, t_end, plane_t, out_t,
               out_m) -> None:  # noqa: ANN001 (internal)
        W, H = self.W, self.H
        for _ in range(10_000_000):
            if idx.size == 0:
                break
            u = ou + t * du
            v = ov + t * dv
            col = np.floor(u).astype(np.int64)
            row = np.floor(v).astype(np.int64)
            inb = (col >= 0) & (col < W) & (row >= 0) & (row < H)
            flat = np.where(inb, row * W + col, 0)
            # distance (t units) to leave the current cell
            tx = np.where(du > 0, (col + 1 - u) * inv_du, np.where(du < 0, (col - u) * inv_du, np.inf))
            ty = np.where(dv > 0, (row + 1 - v) * inv_dv, np.where(dv < 0, (row - v) * inv_dv, np.inf))
            tb = np.minimum(tx, ty)
            zl = self.zlo[flat]
            zh = self.zhi[flat]
            z0 = oz + t * dz
            z1 = oz + np.minimum(t + tb, te) * dz
            zmin, zmax = np.minimum(z0, z1), np.maximum(z0, z1)
            hit = inb & (zmax >= zl) & (zmin <= zh)
            th = np.where((z0 >= zl) & (z0 <= zh), t,
                          np.where(dz < 0, (zh - oz) / np.where(dz != 0, dz, 1.0),
                                   (zl - oz) / np.where(dz != 0, dz, 1.0)))
            hit &= th <= te
            safe = np.where(inb, self.clear[flat], 0.0) * inv_hz
            step = np.where(safe > tb, safe, tb + 1e-7)
            t_next = t + step
            done_end = ~hit & ((t_next >= te) | ~inb)
            if hit.any():
                gi = idx[hit]
                out_t[gi] = th[hit]
                out_m[gi] = self.material[flat[hit]]
            if done_end.any():
                gi = idx[done_end]
                pl = plane_t[gi] <= t_end[gi]
                out_t[gi[pl]] = plane_t[gi[pl]]
                out_m[gi[pl]] = PLANE_MATERIAL
            keep = ~(hit | done_end)
            if not keep.all():
                idx = idx[keep]
                ou, ov, oz, du, dv, dz = ou[keep], ov[keep], oz[keep], du[keep], dv[keep], dz[keep]
                inv_hz, inv_du, inv_dv, te = inv_hz[keep], inv_du[keep], inv_dv[keep], te[keep]
                t = t_next[keep]
            else:
                t = t_next


def glassless_raycaster(b: Building) -> Raycaster:
    """A ray caster of ``b`` in which glass cells are air: what a beam that passes the glass hits next."""
    glass = LIDAR_GLASS[b.material]
    return Raycaster(np.where(glass, np.inf, b.zlo), np.where(glass, -np.inf, b.zhi),
                     np.where(glass, 0, b.material).astype(np.uint8), b.resolution,
                     (b.map.origin[0], b.map.origin[1]), b.ceiling)


def cast_cylinders(origins: np.ndarray, dirs: np.ndarray, centers: np.ndarray, radius: float,
                   height: float) -> np.ndarray:
    """Distance along each ray to the first of P vertical cylinders standing on the floor.

    origins, dirs: (..., 3); centers: (..., P, 2) cylinder axes (broadcast against the rays' leading dims).
    Returns (...,) float64, ``inf`` where no cylinder is hit (rays starting inside a cylinder ignore it)."""
    o = np.asarray(origins, dtype=np.float64)[..., None, :]
    d = np.asarray(dirs, dtype=np.float64)[..., None, :]
    c = np.asarray(centers, dtype=np.float64)
    if c.shape[-2] == 0:
        return np.full(np.broadcast_shapes(o.shape[:-2], c.shape[:-2]), np.inf)
    fx, fy = o[..., 0] - c[..., 0], o[..., 1] - c[..., 1]
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = fx * d[..., 0] + fy * d[..., 1]
    cc = fx * fx + fy * fy - radius * radius
    disc = b * b - a * cc
    with np.errstate(invalid='ignore', divide='ignore'):
        t = (-b - np.sqrt(disc)) / a
    ok = (disc >= 0) & (a > 0) & (cc > 0) & (t > 0)
    z = o[..., 2] + t * d[..., 2]
    ok &= (z >= 0) & (z <= height)
    return np.min(np.where(ok, t, np.inf), axis=-1)


def segments_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Proper intersections of N segments p->q with M segments a->b (2D).

    p, q: (N, 2); a, b: (M, 2). Returns (cross (N, M) bool, s (N, M) float) with s the fraction along p->q where
    it crosses (valid where cross)."""
    p, q, a, b = (np.asarray(x, dtype=np.float64) for x in (p, q, a, b))
    r = (q - p)[:, None, :]
    s_ = (b - a)[None, :, :]
    denom = r[..., 0] * s_[..., 1] - r[..., 1] * s_[..., 0]
    ap = a[None, :, :] - p[:, None, :]
    with np.errstate(divide='ignore', invalid='ignore'):
        tt = (ap[..., 0] * s_[..., 1] - ap[..., 1] * s_[..., 0]) / denom
        uu = (ap[..., 0] * r[..., 1] - ap[..., 1] * r[..., 0]) / denom
    cross = (denom != 0) & (tt >= 0) & (tt <= 1) & (uu >= 0) & (uu <= 1)
    return cross, tt


def segments_hit_boxes(p: np.ndarray, q: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of N 3D segments p->q (N, 3) against M axis-aligned boxes (M, 6) xmin ymin xmax ymax zlo zhi.

    Returns (hit (N, M) bool, length (N, M) float: metres of the segment inside the box)."""
    p = np.asarray(p, dtype=np.float64)[:, None, :]
    q = np.asarray(q, dtype=np.float64)[:, None, :]
    bx = np.asarray(boxes, dtype=np.float64)[None, :, :]
    lo = np.stack([bx[..., 0], bx[..., 1], bx[..., 4]], axis=-1)
    hi = np.stack([bx[..., 2], bx[..., 3], bx[..., 5]], axis=-1)
    d = q - p
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = 1.0 / d
        t1 = (lo - p) * inv
        t2 = (hi - p) * inv
    tmin = np.where(d == 0, np.where((p >= lo) & (p <= hi), -np.inf, np.inf), np.minimum(t1, t2))
    tmax = np.where(d == 0, np.where((p >= lo) & (p <= hi), np.inf, -np.inf), np.maximum(t1, t2))
    enter = np.maximum(np.max(tmin, axis=-1), 0.0)
    leave = np.minimum(np.min(tmax, axis=-1), 1.0)
    hit = leave > enter
    L = np.linalg.norm(d, axis=-1)
    return hit, np.where(hit, (leave - enter) * L, 0.0)
