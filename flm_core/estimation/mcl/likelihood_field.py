"""nav2_amcl's likelihood-field laser model, vectorised over particles and beams.

The map is turned once into a distance field: for every cell, the Euclidean distance (m) from its centre to the
centre of the nearest occupied cell, capped at ``laser_likelihood_max_dist`` (nav2 computes the same with a
brushfire from the occupied cells; cells off the map count as the cap). A particle's scan weight is nav2's ad-hoc
combination of the beams it uses::

    pz_i = z_hit * exp(-d_i^2 / (2 sigma_hit^2)) + z_rand / range_max
    p    = 1 + sum_i pz_i^3

with d_i the distance field at beam i's end point. Beams at or beyond ``range_max`` and NaN ranges are skipped (nav2
ignores max-range readings in this model); the beams used are every ``step``-th of the scan, ``step = (n - 1) //
(max_beams - 1)`` (at least 1), as nav2 picks them.

World -> cell: nav2 rounds, ``i = floor((x - origin_x) / res + 0.5)``, so its cells are centred on ``origin +
i * res``: half a cell off the ROS convention (cell i spans ``[origin + i res, origin + (i + 1) res)``). With
``half_cell_fix`` False (Nav2's behaviour, the default) that rounding is kept; True uses the ROS convention. The
map's origin must have no yaw (nav2 ignores it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ...site import OccupancyMap


def select_beams(count: int, max_beams: int) -> np.ndarray:
    """(K,) int indices of the beams nav2 uses out of ``count``: every ``max(1, (count - 1) // (max_beams - 1))``-th
    from the first."""
    if max_beams < 2:
        raise ValueError(f'max_beams must be >= 2, got {max_beams}')
    step = max(1, (count - 1) // (max_beams - 1))
    return np.arange(0, count, step, dtype=np.int64)


class LikelihoodField:
    """Distance field of an occupancy map and nav2's likelihood-field beam weights.

    occupancy: the site's map (occupied where ``grid >= occupied_threshold`` percent, as map_server's trinary
    conversion turns such cells into 100); max_dist: m, ``laser_likelihood_max_dist``; half_cell_fix: see the
    module docstring. ``dist`` (H, W) float32 m, row 0 = lowest y as the map's grid."""

    def __init__(self, occupancy: OccupancyMap, max_dist: float, half_cell_fix: bool = False,
                 occupied_threshold: int = 65) -> None:
        if abs(float(occupancy.origin[2])) > 1e-9:
            raise ValueError('nav2_amcl ignores the map origin yaw; the map must be axis-aligned')
        if max_dist <= 0:
            raise ValueError(f'laser_likelihood_max_dist must be > 0, got {max_dist}')
        self.resolution = float(occupancy.resolution)
        self.origin = (float(occupancy.origin[0]), float(occupancy.origin[1]))
        self.max_dist = float(max_dist)
        self.shift = 0.0 if half_cell_fix else 0.5
        occ = occupancy.occupied(occupied_threshold)
        self.shape = occ.shape
        if occ.any():
            d = ndimage.distance_transform_edt(~occ) * self.resolution
        else:
            d = np.full(occ.shape, np.inf)
        self.dist = np.minimum(d, self.max_dist).astype(np.float32)
        self._gauss: dict[float, tuple[np.ndarray, float]] = {}

    def cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 2) map-frame m -> ((...,) int64 flat cell index, (...,) bool inside the map)."""
        xy = np.asarray(xy, dtype=np.float64)
        H, W = self.shape
        i = np.floor((xy[..., 0] - self.origin[0]) / self.resolution + self.shift).astype(np.int64)
        j = np.floor((xy[..., 1] - self.origin[1]) / self.resolution + self.shift).astype(np.int64)
        inside = (i >= 0) & (i < W) & (j >= 0) & (j < H)
        return np.where(inside, j * W + i, 0), inside

    def distance_at(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) map-frame m -> (...,) m to the nearest occupied cell (``max_dist`` off the map or beyond)."""
        idx, inside = self.cells(xy)
        return np.where(inside, self.dist.ravel()[idx], self.max_dist)

    def _gaussian(self, sigma_hit: float) -> tuple[np.ndarray, float]:
        """(H*W,) float32 exp(-d^2 / (2 sigma^2)) per cell, and its value off the map (cached per sigma)."""
        got = self._gauss.get(sigma_hit)
        if got is None:
            den = 2.0 * sigma_hit * sigma_hit
            got = (np.exp(-(self.dist.ravel().astype(np.float64) ** 2) / den).astype(np.float32),
                   math.exp(-self.max_dist ** 2 / den))
            self._gauss = {sigma_hit: got}
        return got

    def scan_weights(self, poses: np.ndarray, ranges: np.ndarray, bearings: np.ndarray, laser_xy: tuple[float, float],
                     range_max: float, z_hit: float, z_rand: float, sigma_hit: float) -> np.ndarray:
        """nav2's likelihood-field factor ``p`` (N,) of each particle for one scan.

        poses (N, 3) base_link x y yaw in the map (m, rad); ranges (K,) m and bearings (K,) rad in base_link
        orientation of the beams to use (already selected, see :func:`select_beams`); laser_xy: the laser's
        position in base_link (m; nav2 ignores the mount's yaw here, it is in the bearings); range_max m."""
        poses = np.asarray(poses, dtype=np.float64)
        r = np.asarray(ranges, dtype=np.float64)
        b = np.asarray(bearings, dtype=np.float64)
        use = np.isfinite(r) & (r < range_max)
        r, b = r[use], b[use]
        if not len(r):
            return np.ones(len(poses))
        c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
        lx = poses[:, 0] + c * laser_xy[0] - s * laser_xy[1]
        ly = poses[:, 1] + s * laser_xy[0] + c * laser_xy[1]
        ang = poses[:, 2:3] + b[None, :]                                   # (N, K)
        end = np.stack([lx[:, None] + r * np.cos(ang), ly[:, None] + r * np.sin(ang)], axis=-1)
        idx, inside = self.cells(end)
        g_cells, g_off = self._gaussian(float(sigma_hit))
        g = np.where(inside, g_cells[idx], g_off)
        pz = z_hit * g + z_rand / range_max
        return 1.0 + np.sum(pz * pz * pz, axis=1, dtype=np.float64)
