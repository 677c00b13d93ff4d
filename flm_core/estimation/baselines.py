"""Classical baselines behind one interface, so the benchmark and ``flm-eval --compare`` drive them uniformly.

Every baseline is a :class:`Baseline`: ``reset(stamp, pose, cov)`` with the initial pose, then ``step(m)`` with
every measurement (:mod:`flm_core.measurements` types) in arrival order, and ``estimate(t)`` whenever a pose is
wanted (the smooth high-rate estimate the node would publish). ``step`` returns an :class:`Estimate` when the
measurement produced an absolute correction (a multilateration fix, a scan registration, a particle-filter update)
and None otherwise.

Baselines here (all built on the same planar ESKF, :mod:`.eskf`, propagated by IMU with wheel odometry as a
velocity measurement, so the only difference between them is the absolute sensor):

* :class:`UwbBaseline` ('uwb-eskf'): robust multilateration per UWB epoch (:mod:`.multilateration`), motion-compensated
  with the filter's velocity, fused as a tag-position measurement; re-initialises on the UWB position after a run of
  gated rejections (a kidnapped robot: UWB is a global sensor).
* :class:`IcpBaseline` ('icp2d-eskf', 'icp3d-eskf'): hdl_localization-style scan-to-map registration
  (:mod:`.icp`) from the filter's prediction, deskewed with the filter's twist, fused as a pose measurement.
* :class:`DeadReckoningBaseline` ('dead-reckoning'): IMU + odometry only, the floor every method must beat.

Nav2's AMCL lives in :mod:`.amcl_baseline` (optional GPLv3 dependency, imported lazily there).

Sensor extrinsics are given as ``{frame_id: (x, y, z, yaw)}`` of each sensor frame in base_link (what TF's
static transforms hold); measurements are looked up by their ``frame_id``.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Union

import numpy as np

from ..geometry import quat_to_yaw
from ..measurements import ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample
from ..site import Site
from .eskf import PX, VX, VY, YAW, Eskf, EskfConfig, UpdateResult, rot2
from .icp import IcpConfig, PointMap, deskew, register, sensor_to_base, voxel_downsample
from .multilateration import MultilaterationConfig, multilaterate

Measurement = Union[LaserScan2D, PointCloud, ImuSample, OdometrySample, RangeSample]
Mount = tuple[float, float, float, float]
_ZERO_MOUNT: Mount = (0.0, 0.0, 0.0, 0.0)


@dataclass
class Estimate:
    """A pose estimate of base_link in the map: stamp s, pose (3,) x y yaw, cov (3, 3); ``source`` names the
    baseline; ``info`` carries method-specific diagnostics (fitness, inliers, particles...)."""

    stamp: float
    pose: np.ndarray
    cov: np.ndarray
    source: str = ''
    info: dict[str, Any] = field(default_factory=dict)


class Baseline(ABC):
    """The common interface (see the module docstring). Subclasses set ``name`` and implement the three methods;
    ``update_times`` collects the wall time (s) of each absolute update for the benchmark's runtime column."""

    name: str = 'baseline'

    def __init__(self) -> None:
        self.update_times: list[float] = []
        self.events: Counter[str] = Counter()

    @abstractmethod
    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        """(Re-)initialise at ``pose`` (3,) with ``cov`` (3, 3) at ``stamp``."""

    @abstractmethod
    def step(self, m: Measurement) -> Estimate | None:
        """Feed one measurement; an :class:`Estimate` when it produced an absolute correction, else None."""

    @abstractmethod
    def estimate(self, t: float) -> Estimate | None:
        """The current estimate at stamp ``t`` (None before initialisation)."""

    def diagnostics(self) -> dict[str, Any]:
        """Counters for reports (updates, rejections, relocalizations...)."""
        return dict(self.events)


class FilterBaseline(Baseline):
    """A baseline on the planar ESKF: IMU and odometry inputs are handled here, subclasses add their absolute
    measurement in :meth:`absolute`."""

    def __init__(self, extrinsics: dict[str, Mount] | None = None, eskf: EskfConfig | None = None,
                 use_odom: bool = True, use_imu: bool = True) -> None:
        super().__init__()
        self.extrinsics = dict(extrinsics or {})
        self.eskf_config = eskf or EskfConfig()
        self.use_odom = use_odom
        self.use_imu = use_imu
        self.filter = Eskf(self.eskf_config)

    def mount(self, frame_id: str) -> Mount:
        return self.extrinsics.get(frame_id, _ZERO_MOUNT)

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        self.filter.reset(pose, cov, stamp=stamp)
        self.events['resets'] += 1

    def step(self, m: Measurement) -> Estimate | None:
        if isinstance(m, ImuSample):
            if self.use_imu:
                yaw = self.mount(m.frame_id)[3]
                c, s = math.cos(yaw), math.sin(yaw)
                a = m.linear_acceleration
                self.filter.predict_imu(m.stamp, float(m.angular_velocity[2]),
                                        (c * a[0] - s * a[1], s * a[0] + c * a[1]))
            return None
        if isinstance(m, OdometrySample):
            if self.use_odom:
                pose = np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))])
                twist = np.array([m.linear_velocity[0], m.linear_velocity[1], m.angular_velocity[2]])
                self.filter.predict_odom(m.stamp, pose, twist)
            return None
        t0 = time.perf_counter()
        out = self.absolute(m)
        if out is not False:
            self.update_times.append(time.perf_counter() - t0)
        return out or None

    def absolute(self, m: Measurement) -> Estimate | None | bool:
        """Handle an absolute measurement: an Estimate (correction made), None (processed, nothing to report) or
        False (not a measurement this baseline uses: not timed)."""
        return False

    def estimate(self, t: float) -> Estimate | None:
        if not self.filter.initialized:
            return None
        p, c = self.filter.pose_at(t)
        return Estimate(stamp=t, pose=p, cov=c, source=self.name)

    def diagnostics(self) -> dict[str, Any]:
        d = dict(self.events)
        d['filter'] = self.filter.counts
        return d

    def _report(self, stamp: float, result: UpdateResult, info: dict[str, Any]) -> Estimate | None:
        self.events[f'{info.get("source", "update")}_{result.value}'] += 1
        if not result.accepted:
            return None
        p, c = self.filter.pose_at(stamp)
        return Estimate(stamp=stamp, pose=p, cov=c, source=self.name, info=info)


class DeadReckoningBaseline(FilterBaseline):
    """IMU + wheel odometry in the ESKF, no absolute sensor ('dead-reckoning')."""

    name = 'dead-reckoning'


# ----------------------------------------------------------------------------------------------------------- UWB
@dataclass(frozen=True)
class UwbBaselineConfig:
    """sigma: m, LOS range std for multilateration; epoch_timeout: s, a range this much after the first of the
    current epoch starts a new epoch; tag_frame: extrinsics key of the tag (its z is the known tag height);
    relocalize_after: consecutive gated UWB rejections that trigger a re-initialisation on the UWB position
    (0 disables); relocalize_yaw_sigma: rad, yaw std after such a re-initialisation; cov_floor: m, std added
    (in quadrature) to each fix's position: residual NLOS biases are systematic and shared by consecutive
    epochs, which the range-noise covariance does not represent; correlation_time: s, how long such biases
    persist: each fix's covariance is multiplied by correlation_time / (time since the previous fix) (at least 1),
    so a run of correlated fixes carries about the information of one (0 disables)."""

    sigma: float = 0.1
    cov_floor: float = 0.3
    correlation_time: float = 1.0
    multilateration: MultilaterationConfig = field(default_factory=MultilaterationConfig)
    epoch_timeout: float = 0.09
    tag_frame: str = 'uwb_tag'
    relocalize_after: int = 20
    relocalize_yaw_sigma: float = 0.5


class UwbBaseline(FilterBaseline):
    """Robust multilateration per epoch fused with IMU (and odometry) in the ESKF ('uwb-eskf')."""

    name = 'uwb-eskf'

    def __init__(self, site: Site, extrinsics: dict[str, Mount] | None = None,
                 config: UwbBaselineConfig | None = None, eskf: EskfConfig | None = None,
                 use_odom: bool = True) -> None:
        super().__init__(extrinsics, eskf, use_odom=use_odom)
        if not site.anchors:
            raise ValueError(f'site {site.name!r} has no UWB anchors')
        self.config = config or UwbBaselineConfig()
        self.anchors = {a.id: (np.asarray(a.position, dtype=np.float64), float(a.bias)) for a in site.anchors}
        self._epoch: list[tuple[float, str, float]] = []
        self._last_fix: float | None = None

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        super().reset(stamp, pose, cov)
        self._epoch = []
        self._last_fix = None

    def absolute(self, m: Measurement) -> Estimate | None | bool:
        if not isinstance(m, RangeSample):
            return False
        if m.anchor_id not in self.anchors or not m.valid():
            self.events['uwb_ignored'] += 1
            return None
        out = None
        ids = {a for _, a, _ in self._epoch}
        if self._epoch and (m.anchor_id in ids or m.stamp - self._epoch[0][0] > self.config.epoch_timeout):
            out = self._flush()
        self._epoch.append((m.stamp, m.anchor_id, float(m.range)))
        if len(self._epoch) == len(self.anchors):
            out = self._flush() or out
        return out

    def _flush(self) -> Estimate | None:
        ep, self._epoch = self._epoch, []
        cfg = self.config
        mx, my, mz, _ = self.mount(cfg.tag_frame) if cfg.tag_frame in self.extrinsics else (0.0, 0.0, 0.8, 0.0)
        t_ref = max(s for s, _, _ in ep)
        anc = np.stack([self.anchors[a][0] for _, a, _ in ep]).copy()
        bias = np.array([self.anchors[a][1] for _, a, _ in ep])
        r = np.array([x for _, _, x in ep])
        f = self.filter
        x0 = None
        if f.initialized:
            x, _ = f.state_at(t_ref)
            # motion compensation: the tag was at p - v (t_ref - t_i) when range i was taken
            dt = np.array([t_ref - s for s, _, _ in ep])
            anc[:, :2] += x[VX:VY + 1][None, :] * dt[:, None]
            x0 = x[PX:PX + 2] + rot2(x[YAW]) @ np.array([mx, my])
        res = multilaterate(anc, r, sigma=cfg.sigma, fixed_z=mz, bias=bias, x0=x0, config=cfg.multilateration)
        if not res.ok:
            self.events['uwb_no_fix'] += 1
            return None
        info = {'source': 'uwb', 'inliers': int(res.inliers.sum()), 'ranges': len(ep)}
        res.cov = res.cov + np.eye(2) * cfg.cov_floor ** 2
        gate_cov = res.cov
        if cfg.correlation_time > 0 and self._last_fix is not None and t_ref > self._last_fix:
            res.cov = res.cov * max(1.0, cfg.correlation_time / (t_ref - self._last_fix))
        self._last_fix = t_ref
        if not f.initialized:
            return self._relocalize(t_ref, res.position, res.cov, 0.0, math.pi, info)
        result = f.update_position(t_ref, res.position, res.cov, lever_arm=(mx, my), source='uwb', gate_cov=gate_cov)
        if (result == UpdateResult.REJECTED and cfg.relocalize_after
                and f.consecutive_rejections('uwb') >= cfg.relocalize_after):
            x, P = f.state_at(t_ref)
            return self._relocalize(t_ref, res.position, res.cov, float(x[YAW]),
                                    max(cfg.relocalize_yaw_sigma, math.sqrt(P[YAW, YAW])), info)
        return self._report(t_ref, result, info)

    def _relocalize(self, t: float, tag_xy: np.ndarray, cov: np.ndarray, yaw: float, yaw_sigma: float,
                    info: dict[str, Any]) -> Estimate:
        mx, my = self.mount(self.config.tag_frame)[:2]
        base = tag_xy - rot2(yaw) @ np.array([mx, my])
        C = np.zeros((3, 3))
        C[:2, :2] = cov + np.eye(2) * (mx * mx + my * my) * yaw_sigma ** 2
        C[2, 2] = yaw_sigma ** 2
        self.filter.reset(np.array([base[0], base[1], yaw]), C, stamp=t)
        self.events['relocalizations'] += 1
        return Estimate(stamp=t, pose=self.filter.pose, cov=self.filter.pose_cov, source=self.name,
                        info={**info, 'relocalized': True})


# ----------------------------------------------------------------------------------------------------------- ICP
@dataclass(frozen=True)
class IcpBaselineConfig:
    """icp: registration settings; voxel: m, scan downsampling; min_range: m, points closer to the sensor are
    dropped (robot body); deskew: undo motion distortion with the filter's twist; max_points: evenly spaced
    subsample cap after the voxel filter; init_correspondence: m, the wider correspondence schedule used from a
    (re)initialisation until a registration reaches ``settle_fitness`` (the initial guess may be off by tens of cm
    and degrees); relocalize_after: consecutive gated rejections of registrations with fitness >=
    ``relocalize_fitness`` after which the filter is re-initialised on the registration (the scans consistently
    agree with the map somewhere else than the filter believes; 0 disables)."""

    icp: IcpConfig = field(default_factory=IcpConfig)
    voxel: float = 0.1
    min_range: float = 0.3
    deskew: bool = True
    max_points: int = 1500
    init_correspondence: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
    settle_fitness: float = 0.85
    relocalize_after: int = 10
    relocalize_fitness: float = 0.85


class IcpBaseline(FilterBaseline):
    """Scan-to-map registration fused with IMU/odometry ('icp2d-eskf' for 2D scans against the occupancy map,
    'icp3d-eskf' for 3D clouds against a point map): the hdl_localization pipeline."""

    def __init__(self, point_map: PointMap, extrinsics: dict[str, Mount] | None = None,
                 config: IcpBaselineConfig | None = None, eskf: EskfConfig | None = None,
                 use_odom: bool = True, name: str | None = None) -> None:
        super().__init__(extrinsics, eskf, use_odom=use_odom)
        self.map = point_map
        self.config = config or IcpBaselineConfig(voxel=0.1 if point_map.dim == 2 else 0.3)
        self.name = name or ('icp2d-eskf' if point_map.dim == 2 else 'icp3d-eskf')
        self.last_result: Any = None
        self._settled = False
        self._good_rejections = 0
        self._init_icp = replace(self.config.icp, max_correspondence=self.config.init_correspondence)

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        super().reset(stamp, pose, cov)
        self._settled = False

    def points_of(self, m: Measurement) -> tuple[np.ndarray, np.ndarray] | None:
        """(points (N, D) in base_link at the sensor's mount, per-point time after the stamp (N,)) or None when
        ``m`` is not this baseline's sensor."""
        if self.map.dim == 2 and isinstance(m, LaserScan2D):
            v = m.valid()
            pts = m.points().astype(np.float64)
            r = m.ranges[v]
            dt = (np.arange(len(m.ranges)) * m.time_increment)[v]
            keep = r >= self.config.min_range
            return sensor_to_base(pts[keep], self.mount(m.frame_id)), dt[keep]
        if self.map.dim == 3 and isinstance(m, PointCloud):
            f = m.finite()
            xyz = m.xyz[f].astype(np.float64)
            dt = m.time[f].astype(np.float64) if m.time is not None else np.zeros(len(xyz))
            keep = np.linalg.norm(xyz, axis=1) >= self.config.min_range
            return sensor_to_base(xyz[keep], self.mount(m.frame_id)), dt[keep]
        return None

    def absolute(self, m: Measurement) -> Estimate | None | bool:
        got = self.points_of(m)
        if got is None:
            return False
        f = self.filter
        if not f.initialized:
            self.events['icp_not_initialized'] += 1
            return None
        pts, dt = got
        cfg = self.config
        if cfg.deskew and len(pts):
            pts = deskew(pts, dt, f.twist_at(m.stamp))
        pts, _ = voxel_downsample(pts, cfg.voxel)
        if len(pts) > cfg.max_points:
            pts = pts[np.linspace(0, len(pts) - 1, cfg.max_points).astype(np.int64)]
        guess, _ = f.pose_at(m.stamp)
        res = register(self.map, pts, guess, cfg.icp if self._settled else self._init_icp)
        self.last_result = res
        info = {'source': 'icp', 'fitness': res.fitness, 'rmse': res.rmse, 'iterations': res.iterations}
        if not res.ok:
            self.events['icp_failed'] += 1
            return None
        result = f.update_pose(m.stamp, res.pose, res.cov, source='icp')
        if result.accepted and res.fitness >= cfg.settle_fitness:
            self._settled = True
        if result == UpdateResult.REJECTED and res.fitness >= cfg.relocalize_fitness and cfg.relocalize_after:
            self._good_rejections += 1
            if self._good_rejections >= cfg.relocalize_after:
                self._good_rejections = 0
                f.reset(res.pose, res.cov * 4.0, stamp=m.stamp)
                self.events['relocalizations'] += 1
                return Estimate(stamp=m.stamp, pose=res.pose.copy(), cov=res.cov * 4.0, source=self.name,
                                info={**info, 'relocalized': True})
        elif result.accepted:
            self._good_rejections = 0
        return self._report(m.stamp, result, info)


__all__ = ['Baseline', 'DeadReckoningBaseline', 'Estimate', 'FilterBaseline', 'IcpBaseline', 'IcpBaselineConfig',
           'Measurement', 'Mount', 'UwbBaseline', 'UwbBaselineConfig']
