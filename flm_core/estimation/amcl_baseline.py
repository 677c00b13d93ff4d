"""Nav2's AMCL as a baseline, through the PyPI package ``amcl`` (Python bindings of nav2_amcl, GPLv3).

``amcl`` is an optional, benchmark-only dependency: it is imported lazily inside :class:`AmclBaseline` (this module
only), so ``import flm_core`` / ``flm_core.estimation`` never imports it, and nothing of it is redistributed.

What the package (0.1.x) provides: nav2_amcl's particle filter (KLD-adaptive sample count, low-variance resampling,
optional random-particle recovery), the differential and omni motion models, the *beam* laser model, and
nav2's map conversion. ``AMCL.update(scan, odom_pose)`` runs the motion update, the sensor update and a resample
on every call. What it does not provide, and how this wrapper deals with it:

* the likelihood-field laser model (Nav2's default ``laser_model_type``) is not compiled into the package: the beam
  model with Nav2's parameters is used, and ``laser_likelihood_max_dist`` has no effect. Results are therefore
  "Nav2 AMCL with the beam model", which is documented in the benchmark's output;
* ``pf_err`` / ``pf_z`` cannot be set (the library's compiled-in KLD constants are used);
* Nav2's node logic is re-implemented here: filter updates only after the odometry moved ``update_min_d`` (x or y
  in the odom frame) or turned ``update_min_a`` (the first scan after an initial pose always updates); scan
  conversion as nav2's laser callback (ranges <= range_min become range_max, range_max = min(scan.range_max,
  laser_max_range), bearings in base_link orientation, laser pose (x, y, 0)); NaN ranges become range_max (nav2
  would pass them on and poison the weights); the initial pose is carried to the first scan with the odometry
  (nav2 transforms it to the latest TF time); ``resample_interval`` is 1 (the package resamples on every update);
* between filter updates the published pose is ``map->odom * odom->base_link`` with ``map->odom`` from the last
  update, exactly what a Nav2 user reads from TF (:class:`~flm_core.estimation.frames.MapOdomTracker`).

nav2_amcl converts the map with its cells centred on ``origin + i * resolution`` instead of
``origin + (i + 0.5) * resolution`` (ROS convention), a half-cell shift of the map. The default parameter set keeps
that behaviour (it is what Nav2 does); the tuned set compensates it (``half_cell_fix``).

Parameters: :data:`NAV2_DEFAULTS` (Nav2's nav2_params.yaml) and :data:`TUNED` with the reason for each change in
:data:`TUNING_NOTES`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle
from ..measurements import LaserScan2D, OdometrySample
from ..site import OccupancyMap
from .baselines import Baseline, Estimate, Measurement, Mount
from .frames import MapOdomConfig, MapOdomTracker

#: Nav2's defaults (nav2_bringup/params/nav2_params.yaml, amcl section). Keys that the package cannot honour are
#: kept for the record: laser_model_type (beam is used), laser_likelihood_max_dist, pf_err, pf_z.
NAV2_DEFAULTS: dict[str, Any] = {
    'alpha1': 0.2, 'alpha2': 0.2, 'alpha3': 0.2, 'alpha4': 0.2, 'alpha5': 0.2,
    'min_particles': 500, 'max_particles': 2000,
    'laser_model_type': 'likelihood_field',
    'z_hit': 0.5, 'z_short': 0.05, 'z_max': 0.05, 'z_rand': 0.5,
    'sigma_hit': 0.2, 'lambda_short': 0.1, 'chi_outlier': 0.05,
    'laser_likelihood_max_dist': 2.0,
    'laser_max_range': 100.0, 'laser_min_range': -1.0,
    'max_beams': 60,
    'update_min_d': 0.25, 'update_min_a': 0.2,
    'resample_interval': 1,
    'recovery_alpha_slow': 0.0, 'recovery_alpha_fast': 0.0,
    'pf_err': 0.05, 'pf_z': 0.99,
    'robot_model_type': 'nav2_amcl::DifferentialMotionModel',
    'half_cell_fix': False,
}

#: A tuned set for the generated scenarios (tuned on training seeds, never on evaluation seeds).
TUNED: dict[str, Any] = {
    **NAV2_DEFAULTS,
    'alpha1': 0.05, 'alpha2': 0.05, 'alpha3': 0.05, 'alpha4': 0.05, 'alpha5': 0.05,
    'z_hit': 0.9, 'z_rand': 0.1, 'sigma_hit': 0.1,
    'max_beams': 120,
    'update_min_d': 0.1, 'update_min_a': 0.1,
    'half_cell_fix': True,
}

#: Why each tuned value differs from Nav2's default.
TUNING_NOTES: dict[str, str] = {
    'alpha1-5': "0.2 -> 0.05: the wheel odometry of the scenarios has ~2 % scale/track errors plus short slips; "
                "0.2 spreads the particles far more than the odometry errs, so fewer particles land near the truth",
    'z_hit/z_rand': "0.5/0.5 -> 0.9/0.1: the maps match the walls the lidar sees (apart from people and furniture "
                    "above/below the scan plane), so a hit is far more likely than a random reading",
    'sigma_hit': "0.2 -> 0.1 m: range noise is 0.5-2 cm and the map resolution 5 cm; a narrower beam likelihood "
                 "sharpens the posterior",
    'max_beams': "60 -> 120: twice the evidence per update for about twice the sensor-update time",
    'update_min_d/a': "0.25 m/0.2 rad -> 0.1 m/0.1 rad: more frequent corrections between which the odometry "
                      "drifts less (the benchmark's error is measured continuously, not only at updates)",
    'half_cell_fix': "compensates nav2_amcl's half-cell map shift (cells centred on origin + i*res instead of "
                     "origin + (i + 0.5)*res), a constant ~3.5 cm bias at 5 cm resolution",
}


def _import_amcl() -> Any:
    try:
        import amcl  # noqa: PLC0415 (optional, GPLv3, benchmark-only: imported here and nowhere else)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('the AMCL baseline needs the optional PyPI package "amcl" (Python bindings of nav2_amcl, '
                          'GPLv3; a benchmark-only dependency): pip install amcl') from e
    return amcl


def amcl_available() -> bool:
    """True when the optional ``amcl`` package can be imported."""
    try:
        _import_amcl()
    except ImportError:
        return False
    return True


class AmclBaseline(Baseline):
    """Nav2's AMCL on the same scans, odometry and map as the other baselines (see the module docstring).

    occupancy: the site's map; extrinsics {frame_id: (x, y, z, yaw)} (the laser's mount); params: a full parameter
    dict (defaults :data:`NAV2_DEFAULTS`); robot: 'diff_drive' or 'holonomic' (the motion model Nav2 would be
    configured with: DifferentialMotionModel or OmniMotionModel)."""

    def __init__(self, occupancy: OccupancyMap, extrinsics: dict[str, Mount] | None = None,
                 params: dict[str, Any] | None = None, robot: str = 'diff_drive', name: str = 'amcl-nav2') -> None:
        super().__init__()
        self._amcl = _import_amcl()
        self.name = name
        self.params = {**NAV2_DEFAULTS, **(params or {})}
        unknown = sorted(set(self.params) - set(NAV2_DEFAULTS))
        if unknown:
            raise ValueError(f'unknown AMCL parameter(s) {unknown}; known: {sorted(NAV2_DEFAULTS)}')
        if robot not in ('diff_drive', 'holonomic'):
            raise ValueError(f"robot must be 'diff_drive' or 'holonomic', got {robot!r}")
        self.robot = robot
        self.params['robot_model_type'] = amcl_robot_model(robot)
        self.extrinsics = dict(extrinsics or {})
        self.occupancy = occupancy
        self._grid = self._make_grid(occupancy)
        self._pf: Any = None
        self._tracker = MapOdomTracker(MapOdomConfig(history=10.0, max_extrapolation=0.5))
        self._last_odom: tuple[float, np.ndarray] | None = None
        self._last_update_odom: np.ndarray | None = None
        self._pending: tuple[float, np.ndarray, np.ndarray] | None = None   # initial pose waiting for a scan
        self._cov = np.eye(3)
        self._laser_frame: str | None = None

    # ------------------------------------------------------------------ setup
    def _make_grid(self, occ: OccupancyMap) -> Any:
        if abs(float(occ.origin[2])) > 1e-9:
            raise ValueError('nav2_amcl ignores the map origin yaw; the map must be axis-aligned')
        H, W = occ.grid.shape
        shift = 0.5 * occ.resolution if self.params['half_cell_fix'] else 0.0
        g = self._amcl.OccupancyGrid(int(W), int(H), float(occ.resolution), float(occ.origin[0]) + shift,
                                     float(occ.origin[1]) + shift)
        # ROS layout: row-major, row 0 = lowest y; only 0 (free) and 100 (occupied) are known to nav2_amcl
        data = np.where(occ.grid >= 65, 100, np.where((occ.grid >= 0) & (occ.grid <= 25), 0, -1))
        g.data = data.astype(np.int8).ravel().tolist()
        return g

    def _make_filter(self) -> Any:
        a, p = self._amcl, self.params
        motion = a.MotionParameters(float(p['alpha1']), float(p['alpha2']), float(p['alpha3']), float(p['alpha4']),
                                    float(p['alpha5']))
        laser = a.LaserParameters(float(p['z_hit']), float(p['z_short']), float(p['z_max']), float(p['z_rand']),
                                  float(p['sigma_hit']), float(p['lambda_short']), float(p['chi_outlier']),
                                  int(p['max_beams']))
        model = 'differential' if self.robot == 'diff_drive' else 'omni'
        pf = a.AMCL(int(p['min_particles']), int(p['max_particles']), float(p['recovery_alpha_slow']),
                    float(p['recovery_alpha_fast']), motion, laser, model)
        pf.set_map(self._grid)
        return pf

    # ------------------------------------------------------------------ interface
    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        """New initial pose: a fresh particle cloud drawn around ``pose`` when the next scan arrives (the pose is
        carried to that scan's stamp with the odometry, as nav2 does)."""
        self._pf = None
        self._pending = (float(stamp), np.asarray(pose, dtype=np.float64).copy(),
                         np.asarray(cov, dtype=np.float64).copy())
        self._last_update_odom = None
        self._cov = np.asarray(cov, dtype=np.float64).copy()
        odom = self._tracker.odom_at(stamp)
        if odom is not None:
            self._tracker.update(stamp, self._pending[1])
        self.events['resets'] += 1

    def step(self, m: Measurement) -> Estimate | None:
        if isinstance(m, OdometrySample):
            pose = np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))])
            self._tracker.add_odom(m.stamp, pose)
            self._last_odom = (m.stamp, pose)
            if self._tracker.map_odom is None and self._pending is not None:
                # before the first scan, the estimate is the initial pose moved with the odometry
                self._tracker.update(self._pending[0], self._pending[1])
            return None
        if not isinstance(m, LaserScan2D):
            return None
        if self._laser_frame is None:
            self._laser_frame = m.frame_id
        if m.frame_id != self._laser_frame:
            return None   # nav2_amcl uses one laser here
        return self._scan(m)

    def estimate(self, t: float) -> Estimate | None:
        odom = self._tracker.odom_at(t)
        if odom is None and self._last_odom is not None and t >= self._last_odom[0]:
            odom = self._last_odom[1]
        if odom is None:
            return None
        pose = self._tracker.map_pose(odom)
        if pose is None:
            return None
        return Estimate(stamp=t, pose=pose, cov=self._cov.copy(), source=self.name)

    def diagnostics(self) -> dict[str, Any]:
        return dict(self.events)

    # ------------------------------------------------------------------ scans
    def _scan(self, m: LaserScan2D) -> Estimate | None:
        import time  # noqa: PLC0415

        odom = self._tracker.odom_at(m.stamp)
        if odom is None:
            self.events['scan_no_odom'] += 1
            return None
        p = self.params
        force = False
        t0 = time.perf_counter()
        if self._pf is None:
            if self._pending is None:
                return None
            st, pose0, cov0 = self._pending
            odom0 = self._tracker.odom_at(st)
            if odom0 is not None:
                pose0 = se2_compose(pose0, se2_compose(se2_inverse(odom0), odom))
            self._pf = self._make_filter()
            mount = self.extrinsics.get(m.frame_id, (0.0, 0.0, 0.0, 0.0))
            self._pf.set_laser_pose(self._amcl.Vector3D(float(mount[0]), float(mount[1]), 0.0))
            c = self._amcl.Matrix3D()
            c.from_list(np.asarray(cov0, dtype=np.float64).tolist())
            self._pf.set_initial_pose(self._amcl.Vector3D(float(pose0[0]), float(pose0[1]), float(pose0[2])), c)
            self._pending = None
            force = True
        elif self._last_update_odom is not None:
            d = odom - self._last_update_odom
            force = (abs(d[0]) > p['update_min_d'] or abs(d[1]) > p['update_min_d']
                     or abs(float(wrap_angle(d[2]))) > p['update_min_a'])
        if not force:
            return None
        self._pf.update(self._convert_scan(m), self._amcl.Vector3D(float(odom[0]), float(odom[1]), float(odom[2])))
        self._last_update_odom = odom
        mean = self._pf.get_pose_mean()
        pose = np.array([mean.x, mean.y, float(wrap_angle(mean.theta))])
        self._cov = np.array(self._pf.get_pose_covariance().to_list(), dtype=np.float64)
        self._tracker.update(m.stamp, pose)
        self.update_times.append(time.perf_counter() - t0)
        self.events['updates'] += 1
        return Estimate(stamp=m.stamp, pose=pose, cov=self._cov.copy(), source=self.name)

    def _convert_scan(self, m: LaserScan2D) -> Any:
        p = self.params
        range_max = float(m.range_max)
        if p['laser_max_range'] > 0:
            range_max = min(range_max, float(p['laser_max_range']))
        range_min = float(m.range_min) if p['laser_min_range'] <= 0 else max(float(m.range_min),
                                                                               float(p['laser_min_range']))
        r = np.asarray(m.ranges, dtype=np.float64).copy()
        r[np.isnan(r)] = range_max
        r[r <= range_min] = range_max
        yaw = self.extrinsics.get(m.frame_id, (0.0, 0.0, 0.0, 0.0))[3]
        bearing = np.asarray(m.angles, dtype=np.float64) + yaw
        scan = self._amcl.LaserScan(len(r), range_max)
        scan.ranges = np.stack([r, bearing], axis=1).tolist()
        return scan


def amcl_robot_model(robot: str) -> str:
    """The Nav2 motion model name for a robot type ('diff_drive' -> DifferentialMotionModel, else Omni)."""
    return 'nav2_amcl::DifferentialMotionModel' if robot == 'diff_drive' else 'nav2_amcl::OmniMotionModel'
