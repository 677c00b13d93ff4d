"""nav2_amcl's node logic (amcl_node.cpp) around a particle filter, behind the project's Baseline interface.

Shared by :class:`~.baseline.LikelihoodFieldMcl` and the beam-model adapter of the GPL ``amcl`` bindings
(``bench/amcl_beam.py``): they differ only in the filter they run (:meth:`AmclNode._filter_start` and
:meth:`AmclNode._filter_update`). What is re-implemented here, as nav2 does it:

* the initial pose (``reset``) is carried to the first scan with the odometry (nav2 moves it by the odometry between
  the pose's stamp and now); the filter is (re)initialised there and the first scan always updates it, without a
  motion update;
* afterwards a scan updates the filter only when the odometry moved ``update_min_d`` in x or y of the odom frame or
  turned ``update_min_a`` since the last update; the odometry pose of a scan is interpolated at the scan's stamp;
* scan conversion: range_max = min(scan.range_max, laser_max_range), range_min = max(scan.range_min,
  laser_min_range) when those are > 0; readings <= range_min become range_max; bearings in base_link orientation
  (angles + the mount's yaw); the laser's position (x, y) in base_link. NaN readings become range_max (nav2 would
  pass them on: harmless for the likelihood field, which skips them, but NaN weights in the beam model);
* one laser: scans from another frame than the first one's are counted (``scan_other_frame``) and not used;
* between updates the published pose is ``map->odom * odom->base_link`` with ``map->odom`` from the last update,
  what a Nav2 user reads from TF (:class:`~flm_core.estimation.frames.MapOdomTracker`).

``robot``: 'diff_drive' (DifferentialMotionModel, Nav2's default), 'holonomic' (OmniMotionModel) or 'auto': the
omni model once the odometry shows sideways motion (:class:`~.motion.LateralMotionDetector`), the differential one
until then - what a Nav2 user configures for the robot at hand, for tools such as ``flm-eval`` that see a bag but not
the robot's configuration. The model in use is :meth:`AmclNode.motion_robot`; diagnostics name it.
"""
from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle
from ...measurements import LaserScan2D, OdometrySample
from ...site import OccupancyMap
from ..baselines import Baseline, Estimate, Measurement, Mount
from ..frames import MapOdomConfig, MapOdomTracker
from .motion import LateralMotionDetector
from .params import check_robot, full_params

_ZERO: Mount = (0.0, 0.0, 0.0, 0.0)


@dataclass
class ScanData:
    """A scan as nav2's laser callback hands it to the sensor model: ranges (B,) m (converted, see the module
    docstring), bearings (B,) rad in base_link orientation, range_max m, laser_xy (2,) the laser's position in
    base_link (m)."""

    ranges: np.ndarray
    bearings: np.ndarray
    range_max: float
    laser_xy: tuple[float, float]


def convert_scan(m: LaserScan2D, mount: Mount, params: dict[str, Any]) -> ScanData:
    """nav2's conversion of a LaserScan (see the module docstring); mount (x, y, z, yaw) of the laser in base_link."""
    range_max = float(m.range_max)
    if params['laser_max_range'] > 0:
        range_max = min(range_max, float(params['laser_max_range']))
    range_min = float(m.range_min)
    if params['laser_min_range'] > 0:
        range_min = max(range_min, float(params['laser_min_range']))
    r = np.asarray(m.ranges, dtype=np.float64).copy()
    r[np.isnan(r) | (r <= range_min)] = range_max
    bearing = np.asarray(m.angles, dtype=np.float64) + float(mount[3])
    return ScanData(ranges=r, bearings=bearing, range_max=range_max, laser_xy=(float(mount[0]), float(mount[1])))


class AmclNode(Baseline):
    """nav2's AMCL node logic (see the module docstring) on the same scans, odometry and map as the other baselines.

    occupancy: the site's map; extrinsics {frame_id: (x, y, z, yaw)} (the laser's mount); params: AMCL parameters
    (missing keys from :data:`~.params.NAV2_DEFAULTS`); robot: 'diff_drive', 'holonomic' or 'auto'."""

    def __init__(self, occupancy: OccupancyMap, extrinsics: dict[str, Mount] | None = None,
                 params: dict[str, Any] | None = None, robot: str = 'diff_drive', name: str = 'amcl') -> None:
        super().__init__()
        self.name = name
        self.params = full_params(params)
        self.robot = check_robot(robot)
        self.extrinsics = dict(extrinsics or {})
        self.occupancy = occupancy
        self.detector = LateralMotionDetector()
        self._tracker = MapOdomTracker(MapOdomConfig(history=10.0, max_extrapolation=0.5))
        self._last_odom: tuple[float, np.ndarray] | None = None
        self._last_update_odom: np.ndarray | None = None
        self._pending: tuple[float, np.ndarray, np.ndarray] | None = None   # initial pose waiting for a scan
        self._started = False
        self._cov = np.eye(3)
        self._laser_frame: str | None = None

    # ------------------------------------------------------------------ the filter (subclasses)
    @abstractmethod
    def _filter_start(self, pose: np.ndarray, cov: np.ndarray, scan: ScanData, robot: str) -> None:
        """(Re)initialise the particle cloud around pose (3,) with cov (3, 3) for the motion model of ``robot``
        ('diff_drive' or 'holonomic')."""

    @abstractmethod
    def _filter_update(self, scan: ScanData, odom_prev: np.ndarray | None, odom: np.ndarray, robot: str
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        """Motion update from odom_prev (3,) to odom (3,) (odom_prev None: the first update, no motion), sensor
        update, resampling as configured; the (pose (3,), cov (3, 3)) nav2 would publish, or None when it would
        publish nothing (no resampling this time)."""

    # ------------------------------------------------------------------ interface
    def motion_robot(self) -> str:
        """The robot kind whose motion model is used now: 'diff_drive' or 'holonomic'."""
        if self.robot == 'auto':
            return 'holonomic' if self.detector.holonomic else 'diff_drive'
        return self.robot

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        """New initial pose: a fresh particle cloud drawn around ``pose`` (3,) with ``cov`` (3, 3) when the next scan
        arrives (the pose is carried to that scan's stamp with the odometry, as nav2 does)."""
        self._started = False
        self._pending = (float(stamp), np.asarray(pose, dtype=np.float64).copy(),
                         np.asarray(cov, dtype=np.float64).copy())
        self._last_update_odom = None
        self._cov = np.asarray(cov, dtype=np.float64).copy()
        if self._tracker.odom_at(stamp) is not None:
            self._tracker.update(stamp, self._pending[1])
        self.events['resets'] += 1

    def step(self, m: Measurement) -> Estimate | None:
        if isinstance(m, OdometrySample):
            pose = np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))])
            self._tracker.add_odom(m.stamp, pose)
            self._last_odom = (m.stamp, pose)
            self.detector.add(pose, float(m.linear_velocity[1]))
            if self._tracker.map_odom is None and self._pending is not None:
                # before the first scan, the estimate is the initial pose moved with the odometry
                self._tracker.update(self._pending[0], self._pending[1])
            return None
        if not isinstance(m, LaserScan2D):
            return None
        if self._laser_frame is None:
            self._laser_frame = m.frame_id
        if m.frame_id != self._laser_frame:
            self.events['scan_other_frame'] += 1
            return None
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
        d: dict[str, Any] = dict(self.events)
        d['robot'] = self.robot
        d['motion_model'] = self.motion_robot()
        if self.detector.holonomic:
            d['holonomic_because'] = self.detector.reason
            if self.robot == 'diff_drive':
                d['warning'] = ('the odometry shows sideways motion but the differential motion model is configured '
                                "(it spreads the particles' headings by ~0.7 rad per update then): use robot "
                                "'holonomic' or 'auto'")
        return d

    # ------------------------------------------------------------------ scans
    def _scan(self, m: LaserScan2D) -> Estimate | None:
        odom = self._tracker.odom_at(m.stamp)
        if odom is None:
            self.events['scan_no_odom'] += 1
            return None
        t0 = time.perf_counter()
        mount = self.extrinsics.get(m.frame_id, _ZERO)
        robot = self.motion_robot()
        first = False
        if not self._started:
            if self._pending is None:
                self.events['scan_before_initial_pose'] += 1
                return None
            st, pose0, cov0 = self._pending
            odom0 = self._tracker.odom_at(st)
            if odom0 is not None:
                pose0 = se2_compose(pose0, se2_compose(se2_inverse(odom0), odom))
            self._filter_start(pose0, cov0, convert_scan(m, mount, self.params), robot)
            self._pending = None
            self._started = True
            first = True
        elif self._last_update_odom is not None:
            p = self.params
            d = odom - self._last_update_odom
            if not (abs(d[0]) > p['update_min_d'] or abs(d[1]) > p['update_min_d']
                    or abs(float(wrap_angle(d[2]))) > p['update_min_a']):
                return None
        out = self._filter_update(convert_scan(m, mount, self.params), None if first else self._last_update_odom,
                                  odom, robot)
        self._last_update_odom = odom
        self.update_times.append(time.perf_counter() - t0)
        self.events['updates'] += 1
        if out is None:
            return None
        pose = np.array([out[0][0], out[0][1], float(wrap_angle(out[0][2]))])
        self._cov = np.asarray(out[1], dtype=np.float64).copy()
        self._tracker.update(m.stamp, pose)
        return Estimate(stamp=m.stamp, pose=pose, cov=self._cov.copy(), source=self.name)
