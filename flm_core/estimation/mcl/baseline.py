"""Nav2's default AMCL configuration - likelihood-field laser model, differential (or omni) motion model, KLD
sampling - written here in numpy (Apache-2.0): the 'amcl-lf' baseline."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...site import OccupancyMap
from ..baselines import Mount
from .likelihood_field import LikelihoodField, select_beams
from .motion import sample_differential, sample_omni
from .node import AmclNode, ScanData
from .particle_filter import ParticleSet, SetStats


class LikelihoodFieldMcl(AmclNode):
    """Monte Carlo localization as nav2_amcl runs it with ``laser_model_type: likelihood_field``.

    occupancy: the site's map; extrinsics {frame_id: (x, y, z, yaw)}; params: AMCL parameters (defaults: Nav2's,
    :data:`~.params.NAV2_DEFAULTS`); robot: 'diff_drive' / 'holonomic' / 'auto' (:mod:`.node`); seed: the random
    generator's seed - the same seed and inputs give the same output. ``last_stats`` holds the particle set's
    statistics after the latest update (clusters, particle count)."""

    def __init__(self, occupancy: OccupancyMap, extrinsics: dict[str, Mount] | None = None,
                 params: dict[str, Any] | None = None, robot: str = 'diff_drive', seed: int = 0,
                 name: str = 'amcl-lf') -> None:
        super().__init__(occupancy, extrinsics, params, robot, name)
        p = self.params
        if p['laser_model_type'] != 'likelihood_field':
            raise ValueError(f"LikelihoodFieldMcl implements laser_model_type 'likelihood_field' only, got "
                             f"{p['laser_model_type']!r} (the beam model is bench/amcl_beam.py)")
        if p['do_beamskip']:
            raise ValueError('do_beamskip (likelihood_field_prob) is not implemented; Nav2 default is false')
        self.field = LikelihoodField(occupancy, float(p['laser_likelihood_max_dist']), bool(p['half_cell_fix']))
        self.rng = np.random.default_rng(seed)
        free = np.flatnonzero(occupancy.free().ravel())
        self._free = free
        self.pf: ParticleSet | None = None
        self.last_stats: SetStats | None = None
        self._resample_count = 0

    def _random_poses(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 3) uniform poses on free cells (nav2's cell centres, see :mod:`.likelihood_field`), yaw in
        [-pi, pi)."""
        if not len(self._free):
            raise ValueError('the map has no free cell to draw recovery poses from')
        W = self.field.shape[1]
        c = self._free[rng.integers(0, len(self._free), n)]
        res, (ox, oy) = self.field.resolution, self.field.origin
        off = 0.5 - self.field.shift
        return np.stack([ox + (c % W + off) * res, oy + (c // W + off) * res,
                         rng.uniform(-math.pi, math.pi, n)], axis=1)

    def _filter_start(self, pose: np.ndarray, cov: np.ndarray, scan: ScanData, robot: str) -> None:
        p = self.params
        self.pf = ParticleSet(p['min_particles'], p['max_particles'], p['pf_err'], p['pf_z'],
                              p['recovery_alpha_slow'], p['recovery_alpha_fast'], self.rng, self._random_poses)
        self.pf.init_gaussian(pose, cov)
        self._resample_count = 0

    def _filter_update(self, scan: ScanData, odom_prev: np.ndarray | None, odom: np.ndarray, robot: str
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        pf, p = self.pf, self.params
        assert pf is not None
        if odom_prev is not None:
            alphas = tuple(float(p[f'alpha{k}']) for k in range(1, 6))
            move = sample_differential if robot == 'diff_drive' else sample_omni
            pf.poses = move(pf.poses, odom_prev, odom, alphas, self.rng)
        use = select_beams(len(scan.ranges), int(p['max_beams']))
        pf.weigh(self.field.scan_weights(pf.poses, scan.ranges[use], scan.bearings[use], scan.laser_xy,
                                         scan.range_max, float(p['z_hit']), float(p['z_rand']),
                                         float(p['sigma_hit'])))
        self._resample_count += 1
        resampled = self._resample_count % int(p['resample_interval']) == 0
        if resampled:
            pf.resample()
        if not resampled and odom_prev is not None:
            return None
        self.last_stats = pf.stats()
        return self.last_stats.pose, self.last_stats.cov

    def diagnostics(self) -> dict[str, Any]:
        d = super().diagnostics()
        if self.last_stats is not None:
            d['particles'] = self.last_stats.count
            d['clusters'] = self.last_stats.clusters
        return d
