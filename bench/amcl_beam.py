"""Nav2's AMCL with the *beam* laser model, through the PyPI package ``amcl`` (Python bindings of nav2_amcl,
GPL-3.0): the 'amcl-beam' baseline.

This file is benchmark tooling and stays outside the installed packages: flm_core and flm_ros never import the
``amcl`` package (``test/test_baselines_amcl.py`` checks it). ``flm-eval --compare amcl-beam`` loads this file from
the repository's ``bench/`` folder; ``bench/baselines.py`` and ``bench/cross_scenario.py`` import it. Install the
bindings with ``pip install -r requirements/bench.txt`` (``amcl==0.1.2``, https://github.com/damanikjosh/
amcl_python).

The node logic (initial pose, update thresholds, scan conversion, map->odom, robot kind) is the same as the
likelihood-field MCL's (:class:`flm_core.estimation.mcl.node.AmclNode`); only the filter is the bindings'. What the
bindings (0.1.x) provide: nav2_amcl's particle filter (KLD-adaptive sample count, optional random-particle
recovery), the differential and omni motion models, the beam laser model and nav2's map conversion;
``AMCL.update(scan, odom_pose)`` runs the motion update, the sensor update and a resample on every call. What they
do not provide:

* the likelihood-field model (Nav2's default): the beam model is used whatever ``laser_model_type`` says, and
  ``laser_likelihood_max_dist`` has no effect - use 'amcl-lf' (flm_core.estimation.mcl) for Nav2's default;
* ``pf_err`` / ``pf_z`` cannot be set (the library's compiled-in KLD constants are used);
* ``resample_interval`` is 1 whatever it says (the package resamples on every update);
* the motion model is fixed when the filter is made: with ``robot='auto'`` the filter is re-made around its current
  estimate and covariance when the odometry first shows sideways motion (counted as ``motion_model_switches``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from flm_core.estimation.baselines import Mount
from flm_core.estimation.mcl.node import AmclNode, ScanData
from flm_core.site import OccupancyMap

INSTALL_HINT = ('the amcl-beam baseline needs the optional PyPI package "amcl" (Python bindings of nav2_amcl, '
                'GPL-3.0, benchmark-only; https://github.com/damanikjosh/amcl_python): '
                'pip install -r requirements/bench.txt')


def _import_amcl() -> Any:
    try:
        import amcl  # noqa: PLC0415 (optional, GPL-3.0, benchmark-only: imported in bench/ only)
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return amcl


def amcl_available() -> bool:
    """True when the optional ``amcl`` package can be imported."""
    try:
        _import_amcl()
    except ImportError:
        return False
    return True


class AmclBeamBaseline(AmclNode):
    """Nav2's AMCL with the beam model (the bindings' filter) under the shared node logic; arguments as
    :class:`~flm_core.estimation.mcl.node.AmclNode`."""

    def __init__(self, occupancy: OccupancyMap, extrinsics: dict[str, Mount] | None = None,
                 params: dict[str, Any] | None = None, robot: str = 'diff_drive', name: str = 'amcl-beam') -> None:
        super().__init__(occupancy, extrinsics, params, robot, name)
        self._amcl = _import_amcl()
        self._grid = self._make_grid(occupancy)
        self._pf: Any = None
        self._pf_robot = ''
        self._scan_obj: Any = None

    def _make_grid(self, occ: OccupancyMap) -> Any:
        if abs(float(occ.origin[2])) > 1e-9:
            raise ValueError('nav2_amcl ignores the map origin yaw; the map must be axis-aligned')
        H, W = occ.grid.shape
        shift = 0.5 * occ.resolution if self.params['half_cell_fix'] else 0.0
        g = self._amcl.OccupancyGrid(int(W), int(H), float(occ.resolution), float(occ.origin[0]) + shift,
                                     float(occ.origin[1]) + shift)
        # ROS layout: row-major, row 0 = lowest y; only 0 (free) and 100 (occupied) are known to nav2_amcl
        data = np.where(occ.occupied(), 100, np.where(occ.free(), 0, -1))
        g.data = data.astype(np.int8).ravel().tolist()
        return g

    def _make_filter(self, robot: str) -> Any:
        a, p = self._amcl, self.params
        motion = a.MotionParameters(*(float(p[f'alpha{k}']) for k in range(1, 6)))
        laser = a.LaserParameters(float(p['z_hit']), float(p['z_short']), float(p['z_max']), float(p['z_rand']),
                                  float(p['sigma_hit']), float(p['lambda_short']), float(p['chi_outlier']),
                                  int(p['max_beams']))
        pf = a.AMCL(int(p['min_particles']), int(p['max_particles']), float(p['recovery_alpha_slow']),
                    float(p['recovery_alpha_fast']), motion, laser,
                    'differential' if robot == 'diff_drive' else 'omni')
        pf.set_map(self._grid)
        return pf

    def _start(self, pose: np.ndarray, cov: np.ndarray, laser_xy: tuple[float, float], robot: str) -> None:
        a = self._amcl
        self._pf = self._make_filter(robot)
        self._pf_robot = robot
        self._pf.set_laser_pose(a.Vector3D(float(laser_xy[0]), float(laser_xy[1]), 0.0))
        c = a.Matrix3D()
        c.from_list(np.asarray(cov, dtype=np.float64).tolist())
        self._pf.set_initial_pose(a.Vector3D(float(pose[0]), float(pose[1]), float(pose[2])), c)

    def _filter_start(self, pose: np.ndarray, cov: np.ndarray, scan: ScanData, robot: str) -> None:
        self._start(pose, cov, scan.laser_xy, robot)

    def _filter_update(self, scan: ScanData, odom_prev: np.ndarray | None, odom: np.ndarray, robot: str
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        a = self._amcl
        if robot != self._pf_robot and odom_prev is not None:
            # the bindings fix the motion model at construction: re-make the filter around its current estimate
            pose = self._tracker.map_pose(odom)
            if pose is not None:
                self._start(pose, self._cov, scan.laser_xy, robot)
                self.events['motion_model_switches'] += 1
        s = a.LaserScan(len(scan.ranges), float(scan.range_max))
        s.ranges = np.stack([scan.ranges, scan.bearings], axis=1).tolist()
        self._pf.update(s, a.Vector3D(float(odom[0]), float(odom[1]), float(odom[2])))
        mean = self._pf.get_pose_mean()
        cov = np.array(self._pf.get_pose_covariance().to_list(), dtype=np.float64)
        return np.array([mean.x, mean.y, mean.theta]), cov
