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

Nav2's AMCL lives in :mod:`.mcl` (likelihood field; the GPL beam-model bindings' adapter is bench/amcl_beam.py).

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

from ..geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle
from ..imu import tilt_rate
from ..measurements import ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample
from ..model.tokens import newest_per_frame
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
    mode: str = 'tracking'                                   # 'tracking' or 'global' (as the model's Estimate)
    health: dict[str, float] = field(default_factory=dict)   # per modality, as the model's Estimate
    floor: np.ndarray | None = None                          # (3,) std shared by consecutive results (as the model's)


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

    def process(self) -> str:
        """The filter's process model for the inputs in use: the configured one, except 'odom' when the IMU is
        not used but odometry is (a gyro-less 'imu' filter would not turn between corrections)."""
        if not self.use_imu and self.use_odom:
            return 'odom'
        if not self.use_odom and self.use_imu:
            return 'imu'
        return self.eskf_config.process

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        if self.filter.config.process != self.process():
            self.filter = Eskf(replace(self.eskf_config, process=self.process()))
        self.filter.reset(pose, cov, stamp=stamp)
        self.events['resets'] += 1

    def step(self, m: Measurement) -> Estimate | None:
        if isinstance(m, ImuSample):
            if self.use_imu:
                yaw = self.mount(m.frame_id)[3]
                c, s = math.cos(yaw), math.sin(yaw)
                a = m.linear_acceleration
                w = m.angular_velocity
                self.filter.predict_imu(m.stamp, float(w[2]), (c * a[0] - s * a[1], s * a[0] + c * a[1]),
                                        tilt_rate(w))
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
    current epoch starts a new epoch; tag_frame: extrinsics key of the primary tag, the tag of a range whose
    ``tag_frame`` is '' (its z is the known tag height; a range of another tag uses that tag's key; each tag's
    ranges form epochs of their own, fused at that tag's lever arm);
    relocalize_after: consecutive gated UWB rejections that trigger a re-initialisation on the UWB position
    (0 disables), provided those rejected fixes agree with each other: the offset between each fix and the
    filter's prediction varies by less than ``relocalize_consistency`` m (std per axis) over them - a constant
    offset is a wrong start or a kidnap, scattered fixes are bad geometry or NLOS and must not move the filter -
    and the fix is on the site's map (not in unknown space outside it: the mirror image of the true position
    across a line of anchors often is);
    relocalize_yaw_sigma: rad, yaw std after such a re-initialisation; cov_floor: m, std added
    (in quadrature) to each fix's position: residual NLOS biases are systematic and shared by consecutive
    epochs, which the range-noise covariance does not represent; correlation_time: s, how long such biases
    persist: each fix's covariance is multiplied by correlation_time / (time since the previous fix of the same
    tag) (at least 1),
    so a run of correlated fixes carries about the information of one (0 disables)."""

    sigma: float = 0.1
    cov_floor: float = 0.3
    correlation_time: float = 1.0
    multilateration: MultilaterationConfig = field(default_factory=MultilaterationConfig)
    epoch_timeout: float = 0.09
    tag_frame: str = 'uwb_tag'
    relocalize_after: int = 20
    relocalize_consistency: float = 0.5
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
        self.occupancy = site.map
        self._epochs: dict[str, list[tuple[float, str, float]]] = {}   # per tag frame
        self._last_fix: dict[str, float] = {}       # per tag frame: stamp of its last fix
        self._rejected: list[np.ndarray] = []      # fix - prediction of the rejected fixes since the last accepted

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        super().reset(stamp, pose, cov)
        self._epochs = {}
        self._last_fix = {}
        self._rejected = []

    def absolute(self, m: Measurement) -> Estimate | None | bool:
        if not isinstance(m, RangeSample):
            return False
        if m.anchor_id not in self.anchors or not m.valid():
            self.events['uwb_ignored'] += 1
            return None
        out = None
        tag = m.tag_frame or self.config.tag_frame
        epoch = self._epochs.setdefault(tag, [])
        ids = {a for _, a, _ in epoch}
        if epoch and (m.anchor_id in ids or m.stamp - epoch[0][0] > self.config.epoch_timeout):
            out = self._flush(tag)
        epoch = self._epochs.setdefault(tag, [])
        epoch.append((m.stamp, m.anchor_id, float(m.range)))
        if len(epoch) == len(self.anchors):
            out = self._flush(tag) or out
        return out

    def _flush(self, tag: str) -> Estimate | None:
        ep, self._epochs[tag] = self._epochs[tag], []
        cfg = self.config
        mx, my, mz, _ = self.mount(tag) if tag in self.extrinsics else (0.0, 0.0, 0.8, 0.0)
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
        last = self._last_fix.get(tag)
        if cfg.correlation_time > 0 and last is not None and t_ref > last:
            res.cov = res.cov * max(1.0, cfg.correlation_time / (t_ref - last))
        self._last_fix[tag] = t_ref
        if not f.initialized:
            return self._relocalize(t_ref, res.position, res.cov, 0.0, math.pi, info, (mx, my))
        result = f.update_position(t_ref, res.position, res.cov, lever_arm=(mx, my), source='uwb', gate_cov=gate_cov)
        if result == UpdateResult.REJECTED and cfg.relocalize_after:
            assert x0 is not None
            self._rejected = (self._rejected + [res.position - x0])[-cfg.relocalize_after:]
            if (len(self._rejected) >= cfg.relocalize_after and self._in_site(res.position)
                    and float(np.max(np.std(np.stack(self._rejected), axis=0))) < cfg.relocalize_consistency):
                x, P = f.state_at(t_ref)
                self._rejected = []
                return self._relocalize(t_ref, res.position, res.cov, float(x[YAW]),
                                        max(cfg.relocalize_yaw_sigma, math.sqrt(P[YAW, YAW])), info, (mx, my))
        elif result.accepted:
            self._rejected = []
        return self._report(t_ref, result, info)

    def _in_site(self, xy: np.ndarray) -> bool:
        """False when the site's occupancy map says ``xy`` is off the map or in unknown space (outside the
        building): not a place to re-initialise the robot at."""
        occ = self.occupancy
        if occ is None:
            return True
        return bool(occ.at(np.asarray(xy, dtype=np.float64)) >= 0)

    def _relocalize(self, t: float, tag_xy: np.ndarray, cov: np.ndarray, yaw: float, yaw_sigma: float,
                    info: dict[str, Any], lever: tuple[float, float]) -> Estimate:
        """Re-initialise base_link from a fix of the tag at ``lever`` (x, y) m in base_link."""
        mx, my = lever
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
    subsample cap after the voxel filter; init_correspondence: m, the correspondence schedule used from a
    (re)initialisation until a registration reaches ``settle_fitness`` (the initial guess may be off by tens of
    cm and degrees); init_yaw_offsets: rad, heading hypotheses around the guess tried in that phase (the best
    fitness wins: a 10 deg heading error can slide a scan along a corridor); relocalize_after: consecutive gated
    rejections of registrations with fitness >= ``relocalize_fitness`` after which the filter is re-initialised
    on the registration (the scans consistently agree with the map somewhere else than the filter believes;
    0 disables)."""

    icp: IcpConfig = field(default_factory=IcpConfig)
    voxel: float = 0.1
    min_range: float = 0.3
    deskew: bool = True
    max_points: int = 1500
    init_correspondence: tuple[float, ...] = (1.0, 0.5, 0.25)
    init_yaw_offsets: tuple[float, ...] = (0.0, 0.12, -0.12, 0.24, -0.24)
    settle_fitness: float = 0.85
    relocalize_after: int = 10
    relocalize_fitness: float = 0.85


def scan_points(m: Measurement, dim: int, mount: Mount, min_range: float = 0.3
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """(points (N, dim) in base_link, per-point time after the stamp (N,) s) of a LaserScan2D (dim 2) or a
    PointCloud (dim 3) whose sensor sits at ``mount``; points closer than ``min_range`` to the sensor are dropped.
    None when ``m`` is not of the kind ``dim`` asks for."""
    if dim == 2 and isinstance(m, LaserScan2D):
        v = m.valid()
        pts = m.points().astype(np.float64)
        dt = (np.arange(len(m.ranges)) * m.time_increment)[v]
        keep = m.ranges[v] >= min_range
        return sensor_to_base(pts[keep], mount), dt[keep]
    if dim == 3 and isinstance(m, PointCloud):
        f = m.finite()
        xyz = m.xyz[f].astype(np.float64)
        dt = m.time[f].astype(np.float64) if m.time is not None else np.zeros(len(xyz))
        keep = np.linalg.norm(xyz, axis=1) >= min_range
        return sensor_to_base(xyz[keep], mount), dt[keep]
    return None


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
        """See :func:`scan_points` (this baseline's map dimension, mounts and minimum range)."""
        return scan_points(m, self.map.dim, self.mount(getattr(m, 'frame_id', '')), self.config.min_range)

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
        vp = np.asarray(self.mount(m.frame_id)[:3])
        if self._settled:
            res = register(self.map, pts, guess, cfg.icp, viewpoint=vp)
        else:
            tries = [register(self.map, pts, guess + np.array([0.0, 0.0, dy]), self._init_icp, viewpoint=vp)
                     for dy in cfg.init_yaw_offsets or (0.0,)]
            res = max(tries, key=lambda r: (r.ok, r.fitness, -r.rmse))
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


# -------------------------------------------------------------------------------------------- pose sources
# Window-based adapters for flm_core.pipeline (PoseSource protocol: localize(window, site, t, prior_pose,
# prior_cov, rig) -> object with pose/cov, or None): the node's ``pose_source`` parameter runs a classical method
# in place of the model, with the pipeline's own filter around it.

def _odom_pose_at(items: list[tuple[float, Any]], t: float) -> np.ndarray | None:
    """(3,) odometry pose at t from window items (linear interpolation, or the last twist held beyond them)."""
    if not items:
        return None
    st = [s for s, _ in items]
    pose = [np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))]) for _, m in items]
    if t >= st[-1] or len(st) == 1:
        m = items[-1][1]
        tau = max(t - st[-1], 0.0)
        tw = np.array([m.linear_velocity[0], m.linear_velocity[1], m.angular_velocity[2]]) * tau
        return se2_compose(pose[-1], tw)
    k = max(1, int(np.searchsorted(st, t)))
    f = (t - st[k - 1]) / max(st[k] - st[k - 1], 1e-9)
    a, b = pose[k - 1], pose[k]
    return np.array([a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), float(wrap_angle(a[2] + f * float(
        wrap_angle(b[2] - a[2]))))])


def _rig_mount(rig: Any, frame_id: str) -> Mount:
    if rig is None:
        return _ZERO_MOUNT
    m = rig.mount(frame_id)
    return (float(m[0]), float(m[1]), float(m[2]), float(m[3]))


class IcpPoseSource:
    """Scan-to-map registration of the newest scan of each lidar (sensor frame) in the window from the prior
    (tracking only; without a prior it returns None: ICP has no global mode). ``dim`` 2 uses 'scan' against the
    occupancy map, 3 uses 'points' against the site's point map; None picks 'scan' when the window has one, else
    'points'. Each scan is put in base_link at its own mount and deskewed with the newest odometry twist; the
    odometry carries the older lidars' scans to the newest one's stamp (without odometry they are taken as they
    are), where they are registered together (the facing test's viewpoint: the mean of the lidars' positions), and
    carries the result to ``t``."""

    def __init__(self, dim: int | None = None, config: IcpBaselineConfig | None = None) -> None:
        self.dim = dim
        self.config = config
        self._maps: dict[int, tuple[int, PointMap]] = {}

    def _map(self, site: Site, dim: int) -> PointMap | None:
        got = self._maps.get(dim)
        if got is not None and got[0] == id(site):
            return got[1]
        if dim == 2 and site.map is not None:
            pm = PointMap.from_occupancy(site.map)
        elif dim == 3 and site.point_map is not None:
            pm = PointMap.from_points(site.point_map, voxel=0.15)
        else:
            return None
        self._maps[dim] = (id(site), pm)
        return pm

    def localize(self, window: dict[str, list[tuple[float, Any]]], site: Site, t: float,
                 prior_pose: np.ndarray | None = None, prior_cov: np.ndarray | None = None,
                 rig: Any = None) -> Estimate | None:
        if prior_pose is None:
            return None
        dim = self.dim or (2 if window.get('scan') else 3)
        stream = 'scan' if dim == 2 else 'points'
        items = newest_per_frame([e for e in window.get(stream, []) if e[0] <= t])    # each lidar's newest
        pm = self._map(site, dim)
        if not items or pm is None:
            return None
        cfg = self.config or IcpBaselineConfig(voxel=0.1 if dim == 2 else 0.3)
        odom = window.get('odom', [])
        stamp = items[-1][0]                                  # the newest: the scans are registered at its stamp
        o_n, o_t = _odom_pose_at(odom, stamp), _odom_pose_at(odom, t)
        parts, views = [], []
        for s_k, m in items:
            mount = _rig_mount(rig, m.frame_id)
            got = scan_points(m, dim, mount, cfg.min_range)
            if got is None:
                continue
            pts, dt = got
            if cfg.deskew and odom:
                last = odom[-1][1]
                pts = deskew(pts, dt, np.array([last.linear_velocity[0], last.linear_velocity[1],
                                                last.angular_velocity[2]]))
            o_k = _odom_pose_at(odom, s_k)
            if s_k != stamp and o_k is not None and o_n is not None:   # base_link(s_k) -> base_link(newest)
                d = se2_compose(se2_inverse(o_n), o_k)
                c, sn = math.cos(d[2]), math.sin(d[2])
                pts = pts.copy()
                pts[:, 0], pts[:, 1] = d[0] + c * pts[:, 0] - sn * pts[:, 1], d[1] + sn * pts[:, 0] + c * pts[:, 1]
            parts.append(pts)
            views.append(mount[:3])
        if not parts:
            return None
        pts, _ = voxel_downsample(np.concatenate(parts), cfg.voxel)
        if len(pts) > cfg.max_points:
            pts = pts[np.linspace(0, len(pts) - 1, cfg.max_points).astype(np.int64)]
        delta = se2_compose(se2_inverse(o_n), o_t) if o_n is not None and o_t is not None else np.zeros(3)
        prior = np.asarray(prior_pose, dtype=np.float64)
        guess = se2_compose(prior, se2_inverse(delta))
        wide = prior_cov is not None and float(np.max(np.diag(np.asarray(prior_cov))[:2])) > 0.15 ** 2
        icfg = replace(cfg.icp, max_correspondence=cfg.init_correspondence) if wide else cfg.icp
        res = register(pm, pts, guess, icfg, viewpoint=np.mean(views, axis=0))
        if not res.ok:
            return None
        return Estimate(stamp=t, pose=se2_compose(res.pose, delta), cov=res.cov, source=f'icp{dim}d',
                        info={'fitness': res.fitness, 'rmse': res.rmse, 'lidars': len(parts)},
                        health={stream: res.fitness})


class UwbPoseSource:
    """Robust multilateration of the newest range per anchor within ``epoch`` s before t, per UWB tag (a robot may
    carry several, each range naming its ``tag_frame``; '' = the rig's primary tag): each tag with ranges to 3
    anchors or more is solved on its own, at its own height and lever arm from the rig, and the base positions the
    tags give are fused (inverse-covariance weighted). The pose carries the prior's yaw with an uninformative
    variance (the tags' fixes are not used for heading); without a prior it is a global fix with yaw 0 and variance
    pi^2."""

    def __init__(self, config: UwbBaselineConfig | None = None, epoch: float = 0.15) -> None:
        # range std 0.3 m: real ranges carry per-anchor biases of 0.15-0.3 m besides 0.09 m of noise (the LIAS runs
        # in ../shared/data), and 0.1 m rejected good ranges there as outliers: 1.4x the naive fix's error, 1.0x
        self.config = config or UwbBaselineConfig(sigma=0.3)
        self.epoch = epoch
        self._site: tuple[int, dict[str, tuple[np.ndarray, float]]] | None = None

    def localize(self, window: dict[str, list[tuple[float, Any]]], site: Site, t: float,
                 prior_pose: np.ndarray | None = None, prior_cov: np.ndarray | None = None,
                 rig: Any = None) -> Estimate | None:
        if self._site is None or self._site[0] != id(site):
            self._site = (id(site), {a.id: (np.asarray(a.position, dtype=np.float64), float(a.bias))
                                     for a in site.anchors})
        table = self._site[1]
        primary = getattr(rig, 'uwb_frame', 'uwb_tag')
        latest: dict[str, dict[str, float]] = {}          # tag frame -> anchor -> newest range
        for stamp, m in window.get('uwb', []):
            if t - self.epoch <= stamp <= t and m.anchor_id in table and m.valid():
                latest.setdefault(m.tag_frame or primary, {})[m.anchor_id] = float(m.range)
        yaw = float(prior_pose[2]) if prior_pose is not None else 0.0
        R = rot2(yaw)
        # the tag sits at a lever arm from base_link, in a direction the heading decides: with the heading
        # uncertain (one tag does not observe it) the expected lever arm shrinks, E[R(yaw)] = R(mean) exp(-var / 2)
        # for a Gaussian heading, and what it leaves out is position uncertainty
        yaw_var = float(prior_cov[2, 2]) if prior_pose is not None and prior_cov is not None else math.pi ** 2
        shrink = math.exp(-0.5 * min(yaw_var, 50.0))
        cfg = self.config
        bases, covs, inliers = [], [], []
        for tag in sorted(latest):
            ranges = latest[tag]
            if len(ranges) < 3:
                continue
            ids = sorted(ranges)
            mx, my, mz, _ = _rig_mount(rig, tag) if rig is not None else (0.0, 0.0, 0.0, 0.0)
            x0 = None if prior_pose is None else np.asarray(prior_pose, dtype=np.float64)[:2] + R @ np.array([mx, my])
            res = multilaterate(np.stack([table[a][0] for a in ids]), np.array([ranges[a] for a in ids]),
                                sigma=cfg.sigma, fixed_z=mz, bias=np.array([table[a][1] for a in ids]), x0=x0,
                                config=cfg.multilateration)
            if not res.ok:
                continue
            bases.append(res.position - shrink * (R @ np.array([mx, my])))
            covs.append(res.cov + np.eye(2) * 0.5 * (1 - shrink ** 2) * (mx * mx + my * my))
            inliers.append(res.inliers)
        if not bases:
            return None
        info_m = [np.linalg.inv(c) for c in covs]
        c2 = np.linalg.inv(sum(info_m))
        base = c2 @ sum(i @ b for i, b in zip(info_m, bases))
        cov = np.zeros((3, 3))
        cov[:2, :2] = c2 + np.eye(2) * cfg.cov_floor ** 2    # the floor (shared biases) once, not per tag
        cov[2, 2] = 1e4 if prior_pose is not None else math.pi ** 2
        inl = np.concatenate(inliers)
        return Estimate(stamp=t, pose=np.array([base[0], base[1], yaw]), cov=cov, source='uwb',
                        info={'inliers': int(inl.sum()), 'tags': len(bases)}, mode='tracking'
                        if prior_pose is not None else 'global', health={'uwb': float(inl.mean())})


def make_pose_source(kind: str) -> IcpPoseSource | UwbPoseSource:
    """A classical pose source for the pipeline: 'icp' (2D scan, else 3D points), 'icp2d', 'icp3d' or 'uwb'."""
    if kind == 'icp':
        return IcpPoseSource()
    if kind == 'icp2d':
        return IcpPoseSource(2)
    if kind == 'icp3d':
        return IcpPoseSource(3)
    if kind == 'uwb':
        return UwbPoseSource()
    raise ValueError(f"unknown classical pose source {kind!r}; expected 'icp', 'icp2d', 'icp3d' or 'uwb'")


__all__ = ['Baseline', 'DeadReckoningBaseline', 'Estimate', 'FilterBaseline', 'IcpBaseline', 'IcpBaselineConfig',
           'IcpPoseSource', 'Measurement', 'Mount', 'UwbBaseline', 'UwbBaselineConfig', 'UwbPoseSource',
           'make_pose_source', 'scan_points']
