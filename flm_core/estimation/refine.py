"""A pose source that solves the pose from the window's measurements, starting where another source (the FLM) says.

``Refined(source, config)`` has the pipeline's PoseSource interface (:class:`flm_core.pipeline.PoseSource`):
``localize(window, site, t, prior_pose, prior_cov, rig)``, and ``track_many`` when the inner source has it. Per
update it

1. runs the inner source (the FLM's ``Localizer``, a classical source, or none) on the window, unchanged: always
   for a global result and after a gap (a wide prior); while tracking, once every ``network_period`` s, and at once
   when the solve from the prior does not fit (step 3 then solves from its pose too): from the prior, tracking
   reaches the minimum the network's start reaches at all but a few updates, and the network pass is half an
   update's time;
2. puts the window's measurements in base_link at ``t`` (:func:`flm_core.model.tokens.prepare`: sensor mounts from
   the rig, the motion between a measurement's stamp and ``t`` compensated with the window's odometry): the newest
   scan (deskewed with the odometry's twist when its beams carry timing, :func:`deskewed`; voxel-filtered) against
   the map's distance field, 3D points against the site's point map (point-to-plane; without one, their slice at
   wall height against the distance field), the newest UWB ranges
   (``uwb_window`` s) with the tag's lever arm and height, a link through the map's walls allowed to be long;
3. solves the pose (:func:`flm_core.estimation.solver.solve`) from the inner source's pose and from the prior, with
   the prior as a Gaussian term, and keeps the solve with the lower cost;
4. hands on the solved pose and the covariance of the measurements alone (the pipeline's filter holds the prior
   already: handing it the posterior would count the prior twice), plus what the solve cannot see: how well map and
   scan can agree at all (``cov_floor``), the uncertainty of the odometry's motion compensation (:func:`motion_cov`)
   and the errors consecutive windows share (``correlation_time``); or, when the solve is
   inconsistent (too few inliers, residual RMS too high: the window does not fit the map at that pose),
   :class:`flm_core.pipeline.Inconsistent`, which the pipeline counts toward 'lost' (a kidnap); or None when there
   is nothing to solve with, or when a solve that does not fit had too few measurements to judge the window by
   (``min_judged``: a UWB-only window holds 3-6 ranges, and a few ranges off by multipath or an unlearnt offset
   say nothing about a kidnap; counted in ``counts``), or when it started from a wide prior (``wide_prior``: after a
   gap the prior's 1-sigma points are starts too, then its heading's 2-sigma points, and a miss means 'not found',
   not 'contradicted'). (The pipeline's filter then dead-reckons; its covariance grows.)

Tracking uses only measurements no earlier update used (``fresh_only``, remembered per stream): the pipeline runs
its source at every update while a scan stays in the window for seconds (sparse keyframe logs), and fusing the same
scan again and again would shrink the covariance with no new information. With nothing new it returns None.

UWB range biases: a common offset of all anchors (a clock or antenna delay) and a per-anchor offset are solved with
the pose, their prior carried from one update to the next (a random walk of ``bias_walk`` m per sqrt(s)): what the
site file's biases leave out is learnt as the robot moves, from windows whose ranges fix the position on their own
(three anchors or more, or a map in the window), each window's share of it as ``correlation_time`` says. One tag
does not observe the heading, and then the direction of its lever arm is unknown: the pose handed on is
base_link's expected position under the prior's heading uncertainty (``E[R(yaw)] = R(mean) exp(-var / 2)``), the
rest of the lever arm counted as position variance, and the heading is reported as unobserved (variance
``max_variance``).

Global mode (no prior): the inner source's global result (and each of its alternatives) is solved from, with a wide
prior on its pose (``global_position_std``, heading std pi / sqrt(3): a heading uniform on the circle), and the
posterior covariance is handed on. Without an inner source the UWB ranges' robust multilateration gives the start.

The inner estimate's other attributes (score, alternatives, mode, health) are kept; ``health['geometry']`` is the
solve's inlier share. ``counts`` says what happened at each update, ``last`` is the latest solve and
``solve_times`` holds the solver's wall time per update (s).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..geometry import mixture_cov, pose_offset, quat_to_yaw, wrap_angle
from ..mapindex import MapIndex
from ..model.tokens import TYPE_ID, Rig, SensorFrame, TokenConfig, newest_per_frame, prepare
from ..measurements import LaserScan2D
from ..pipeline import Inconsistent, max_position_std
from ..site import OccupancyMap, Site
from .baselines import Estimate as BaseEstimate
from .baselines import scan_points
from .icp import PointMap, deskew, voxel_downsample
from .multilateration import multilaterate
from .solver import (Block, DistanceField, PlaneBlock, RangeBlock, ScanBlock, Solution, SolverConfig, _rot_points,
                     robust_weight, solve)

Window = Mapping[str, Sequence[tuple[float, Any]]]
ABSOLUTE = ('scan', 'points', 'depth', 'uwb')
UNIFORM_YAW_STD = math.pi / math.sqrt(3.0)     # rad, std of a heading uniform on the circle


@dataclass(frozen=True)
class RefineConfig:
    """solver: the solve's settings; map_tol_gain: its ``tol_gain`` for a solve against the map (scan or 3D
    residuals), which ends once a step is within a tenth of a sigma of the measurements' own information (1e-2: its
    result is handed on with the map floor and the windows' correlation, many times wider; 7.1 -> 5.6 iterations on
    the replay bag, poses within 5 mm; ranges alone keep ``solver``'s 1e-4: stopped short there, the learnt offsets
    carried on as the next prior took a training warehouse's UWB 1.1 -> 1.7 m). scan_sigma / points_sigma: m,
    point-to-line / point-to-plane noise (points against a point map from a mapping run disagree more than scans
    with a 2D grid: with 5 cm, a depth camera's windows at
    the true pose of a generated building's mapped map had inlier RMS 2.1 sigmas and the tracking was declared
    lost); scan_voxel / points_voxel: m, voxel filter of the points (one per voxel); truncation: m, the distance
    beyond which a point is not pulled (unmapped clutter). uwb_sigma: m, range noise; uwb_window: s, how old (before
    the update) a range may be to be used (drivers stamp a ranging frame once and publish it in a burst: an update
    inside the burst sees part of it, and the rest, one frame period old at the next update, must still count;
    tracking takes only ranges no earlier update used); uwb_nlos_sigma: m per obstacle of the map that a link
    crosses (:meth:`flm_core.mapindex.MapIndex.crossings` at the solve's start), the std of a range measured longer
    than predicted (``RangeBlock.sigma_long``: a non-line-of-sight delay only lengthens a range; 0.15: generated
    buildings' UWB 0.51 -> 0.42 m, UWB + IMU 0.74 -> 0.62 m; 0.3 was as accurate but slowed the fault matrix's
    relocalization in a symmetric corridor past its limit: a mirror image's long ranges cost less); uwb_bias_std:
    m, initial std of each anchor's offset from its site-file bias; uwb_common_std: m, initial std of the offset
    shared by all anchors; uwb_height_std: m, prior std of the tags' height offset from TF, estimated with the pose
    where it is above 0 (a hand-held or flying tag; 0: TF's height is right, as on a robot); uwb_height_walk: m per
    sqrt(s), how fast that offset may move between updates; max_common_offset: m, the largest shared offset a
    consistent solve may find (a robust solve can otherwise buy a wrong pose by shifting every range: at a symmetric
    room's mirror image, two of four ranges fitted with a common offset of metres); bias_walk: m per sqrt(s), how
    fast the learnt offsets may drift; use_prior: the filter's prior is a term of the solve (it always is a start);
    fresh_only: tracking uses only measurements newer than the previous tracking update (see the module docstring);
    min_inlier_share, max_rms (sigmas): below / above them the solve is inconsistent and nothing is handed on;
    min_judged: the fewest usable measurements for such a solve to count as Inconsistent (toward 'lost'); with fewer
    it is only not handed on (None) (a depth camera's slice against a 2D map holds 12-20 points, and three of them
    on an unmapped object made a generated run 'lost' and then wrongly relocalized); a global result from fewer map
    points (scan, cloud) than that and no ranges is not taken either; unfit_time: s, how long such smaller solves
    (of at least min_block_n measurements) may go on not fitting, with no solve of at least min_block_n measurements
    fitting in between, before they count as Inconsistent after all: a filter that drifted off (one anchor in range,
    its ranges fit anywhere on a circle) rejects the few ranges that could correct it, and a multipath burst lasts
    less; min_anchors: a tracking window with ranges only, from fewer distinct anchors, is not solved (counted): one
    anchor's ranges fit anywhere on a circle around it, and its non-line-of-sight offset cannot be told from a
    position along that circle (a generated building with one anchor in range most of the time: 7 m off at a std of
    0.7 m with single-anchor windows handed on, 0.4 m off at a std of 2.5 m without); min_block_share, min_block_n:
    with several modalities in the solve, each (its residual block) with at least min_block_n measurements must have
    at least that inlier share on its own, or the solve is inconsistent (a symmetric corridor's mirror image fits
    80-88 % of a scan, while 0-1 of its 5-6 UWB ranges: the scan's 200 points would otherwise outvote the ranges
    that tell the two apart); wide_prior: m, a prior position std above which (after a gap: a blackout, a long drop
    of the exteroceptive sensors) the solve also starts from the prior's 1-sigma points, and a solve that still does
    not fit is not handed on (None) rather than Inconsistent: the filter already says it does not know where it is,
    and its covariance grows toward lost_std; scan_wait: s, after such a gap, while the previous result handed on
    had scans or points, how long a window without them is not solved (counted): the first data back is often a few
    ranges, and a UWB-only solve (a few biased ranges, the heading unobserved) would re-anchor the filter, a metre
    off with a position std of a third of that, before the scan that can tell arrives; yaw_unobserved: rad^2, a
    heading variance of the measurements' own above which the heading counts as unobserved (one UWB tag);
    global_position_std: m, the position std of the prior a global result is solved with; correlation_time: s, how
    long the errors of consecutive windows stay alike (a tracking result has its covariance multiplied by
    correlation_time / the time since the previous result, at least 1, and the UWB offsets learn that share of what
    a solve tells about them; 0 disables); map_surface: where the surface lies in a boundary cell of the occupancy
    map (:class:`flm_core.estimation.solver.DistanceField`: 0 its centre, as in maps ray-cast from scans by SLAM; 1
    its face, as in the project's generated buildings); cov_floor: std
    added in quadrature to a result with scan or point residuals: how well the map and a scan can agree at all (the
    map's cells, its registration errors), which the residuals of one scan, alike from beam to beam, do not show (4
    cm, 0.012 rad: mean NEES on generated buildings' mapped maps 1.3 / 1.5 / 4.3 / 3.7 with 2D lidar, 3D lidar, a
    depth camera, all sensors, against 0.95 / 0.96 / 3.2 / 2.6 with 5 cm and 0.015 rad (and 3.5-14 with 3 cm, earlier
    code); the Intel log 3.1 (2.4 with 5 cm); bench/cross_scenario.py and bench/real_data.py), as cov_floor_xy (m)
    and cov_floor_yaw (rad); the result names it (``floor``) and the
    pipeline publishes no less (consecutive results share it: fused ten a second, they shrank an IMU-driven filter
    below it, all sensors NEES 5.6; 1.6 with the published floor); slice_z_min, slice_z_max: m above base_link, the
    band of a 3D cloud (lidar, depth camera) that is solved against the occupancy map, as a scan, where the site has
    no point map (walls and furniture at those heights are what a 2D map holds; floor and ceiling are not);
    odom_extrapolation: s, how far past its newest sample the odometry's twist may carry a measurement to ``t`` (0:
    the motion stops there; a twist differenced from odometry poses can be far off, and a wrong turn rate turns the
    whole scan); rival_cost: the most a minimum other than the solved one may cost more on the measurements (their
    robust cost, the pose prior's term left out: ``exp(-difference)`` is their likelihood ratio; the scan and point
    blocks' part counted at the share of the points deciding the direction between the two, as ``min_deciding``
    counts their information: six minima along a held-out corridor 1.2 m apart differed by 2-7 on a depth camera's
    108 points, a few of them at a door deciding it, and the one 1.1 m off was handed on at 0.3 m) and still be a rival
    that the data have not ruled out. Several starts (a wide prior's 1-sigma points, the rivals of the previous
    update) can end in distinct minima: a depth camera's twenty points at a wall's end fit three positions 0.45 m
    apart along a hall's wall within a cost of 0.5 of each other, and the lowest was the wrong one, tracked 0.5 m
    off for 10 s at a std of 5 cm. The covariance handed on spans the rivals that are consistent and lie beyond 3
    sigmas of the solved pose (their spread about it, weighted by likelihood); each is carried to the next update
    as an offset from the pose and solved from again until it costs more than rival_cost (0: no rivals);
    min_deciding: the fewest scan or 3D points that must decide a direction of a tracking result's pose for the
    map's information along it to count in full (:func:`_few_deciding`; 0: always in full): a depth camera's three
    points at a shelf's end 7.5 m ahead, 0.3-0.5 m too far, put a generated warehouse's robot 0.65 m back along its
    aisle at a 0.17 m std for 4.6 s (at 30: 0.6 m off at a 0.26 m std, not confidently wrong; a held-out
    building's depth camera 0.21 -> 0.09 m; 2D and 3D lidar unchanged); network_period: s, while tracking and the
    solve from the prior fits, how often the inner source (the network) is asked too, its pose one more start (it is
    asked at once where the solve does not fit, and always after a gap; 0: at every update): a fit can be a wrong
    local minimum (a held-out building's depth camera: 0.10 m asked at every update, 0.22 m never while the solve
    fitted, 0.11 m once a second), and the network pass is half of a tracking update's time; max_places: a global
    result whose fits lie at more distinct positions (1 m apart) is none, the view tells too little (a depth
    camera's wall fitted ten places, the truth not among them; 4 delayed the Intel log's first fix from 11 to 142
    s, its rooms along one corridor fitting 5-8 places)."""

    solver: SolverConfig = field(default_factory=SolverConfig)
    map_tol_gain: float = 1e-2
    scan_sigma: float = 0.05
    scan_voxel: float = 0.1
    points_sigma: float = 0.08
    points_voxel: float = 0.2
    truncation: float = 0.5
    uwb_sigma: float = 0.1
    uwb_window: float = 0.25
    uwb_nlos_sigma: float = 0.15
    uwb_bias_std: float = 0.1
    uwb_common_std: float = 0.5
    uwb_height_std: float = 0.0
    uwb_height_walk: float = 0.1
    max_common_offset: float = 1.5
    bias_walk: float = 0.002
    use_prior: bool = True
    fresh_only: bool = True
    min_inlier_share: float = 0.8
    max_rms: float = 2.0
    min_judged: int = 30
    unfit_time: float = 2.0
    min_anchors: int = 2
    min_block_share: float = 0.5
    min_block_n: int = 3
    wide_prior: float = 0.3
    scan_wait: float = 1.0
    yaw_unobserved: float = 0.25
    global_position_std: float = 2.0
    correlation_time: float = 1.0
    map_surface: float = 0.0
    odom_extrapolation: float = 0.0
    rival_cost: float = 3.0
    min_deciding: float = 30.0
    network_period: float = 1.0
    max_places: int = 8
    cov_floor_xy: float = 0.04
    cov_floor_yaw: float = 0.012
    slice_z_min: float = 0.2
    slice_z_max: float = 2.0

    def __post_init__(self) -> None:
        for name in ('scan_sigma', 'points_sigma', 'uwb_sigma', 'scan_voxel', 'points_voxel', 'truncation'):
            if not getattr(self, name) > 0:
                raise ValueError(f'RefineConfig.{name} must be > 0, got {getattr(self, name)}')
        for name in ('min_inlier_share', 'min_block_share', 'map_surface'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'RefineConfig.{name} must be in [0, 1], got {getattr(self, name)}')
        for name in ('uwb_window', 'uwb_nlos_sigma', 'uwb_bias_std', 'uwb_common_std', 'max_common_offset',
                     'uwb_height_std', 'uwb_height_walk', 'bias_walk', 'unfit_time', 'wide_prior', 'scan_wait',
                     'correlation_time', 'odom_extrapolation', 'rival_cost', 'min_deciding', 'network_period',
                     'map_tol_gain',
                     'cov_floor_xy', 'cov_floor_yaw', 'max_rms', 'global_position_std', 'yaw_unobserved'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'RefineConfig.{name} must be >= 0, got {getattr(self, name)}')
        if not self.max_places >= 1:
            raise ValueError(f'RefineConfig.max_places must be >= 1, got {self.max_places}')
        if not self.slice_z_min < self.slice_z_max:
            raise ValueError(f'RefineConfig.slice_z_min ({self.slice_z_min}) must be below slice_z_max '
                             f'({self.slice_z_max})')


class _Biases:
    """The learnt UWB offsets of one site: a common one and one per anchor (means m, variances m^2) and the stamp
    they refer to."""

    def __init__(self, n: int, cfg: RefineConfig) -> None:
        self.common = (0.0, cfg.uwb_common_std ** 2)
        self.mean = np.zeros(n)
        self.var = np.full(n, cfg.uwb_bias_std ** 2)
        self.height = (0.0, cfg.uwb_height_std ** 2)     # the tags' height offset from TF (mean m, variance m^2)
        self.stamp: float | None = None


class Refined:
    """See the module docstring. ``source``: the inner pose source (or None); ``config``: :class:`RefineConfig`."""

    def __init__(self, source: Any = None, config: RefineConfig | None = None) -> None:
        self.source = source
        self.config = config or RefineConfig()
        self._map_solver = dataclasses.replace(self.config.solver, tol_gain=self.config.map_tol_gain)
        self.counts: Counter[str] = Counter()
        self.solve_times: list[float] = []
        self.last: Solution | None = None
        self._site: tuple[int, MapIndex, DistanceField | None, PointMap | None, dict[bytes, int]] | None = None
        self._biases: _Biases | None = None
        self._used: dict[str, tuple[float, int]] = {}    # stream -> (newest stamp used, items used at it)
        self._before: dict[str, tuple[float, int]] = {}  # the same before the current update
        self._update_t: float | None = None               # stamp of the current update
        self._last_handed: float | None = None       # stamp of the previous result handed on
        self._inflation = 1.0                        # the decorrelation factor of the latest tracking result
        self._handed_cloud = False                   # the latest result handed on had scan or point residuals
        self._gap_since: float | None = None         # stamp of the first update of the current wide prior
        self._unfit: tuple[float, float] | None = None  # (first, latest) stamp of the current run of small unfit solves
        self._rivals: list[np.ndarray] = []          # (3,) offsets of the latest tracking result's rival minima
        self._inner_health: dict[str, float] = {}     # the inner source's health at its latest estimate
        self._inner_at: float | None = None           # stamp of the inner source's latest estimate
        if source is not None and hasattr(source, 'track_many'):
            self.track_many = self._track_many

    def __getattr__(self, name: str) -> Any:
        """What the inner source tells about itself (its backend, device, model file) is the wrapper's too."""
        if name.startswith('_') or name == 'source':
            raise AttributeError(name)
        return getattr(self.source, name)

    # ------------------------------------------------------------------ site data
    def map_index(self, site: Site) -> MapIndex:
        """The map index of ``site`` (built now when the site is new: a new map replaces the old one)."""
        return self._site_data(site)[0]

    def _site_data(self, site: Site) -> tuple[MapIndex, DistanceField | None, PointMap | None, dict[bytes, int]]:
        if self._site is None or self._site[0] != id(site):
            index = self.source.map_index(site) if hasattr(self.source, 'map_index') else MapIndex(site)
            fld = DistanceField.of(index, self.config.map_surface) if index.kind == 'grid' else None
            pm = PointMap.from_points(site.point_map, voxel=0.15) if site.point_map is not None \
                and len(site.point_map) else None
            ids = {np.asarray(a.position, np.float64).tobytes(): k for k, a in enumerate(site.anchors)}
            self._site = (id(site), index, fld, pm, ids)
            self._biases = _Biases(len(site.anchors), self.config)
            self._rivals = []
        return self._site[1:]

    # ------------------------------------------------------------------ measurements
    def _fresh(self, window: Window, t: float, tracking: bool) -> dict[str, list[tuple[float, Any]]]:
        """The window with its absolute streams cut to what no earlier update used (tracking, ``fresh_only``; the
        rival hypotheses of the same update see the same) and the UWB ranges to the newest ``uwb_window`` s. What
        an update used is remembered per stream as (newest stamp, items at that stamp): a scan that arrives late,
        after later odometry moved the updates past its stamp, is still new."""
        if t != self._update_t:
            if self._update_t is not None and t < self._update_t:
                self._used = {}                                   # time went back: a new run
            self._before, self._update_t = dict(self._used), t
            for name, items in window.items():
                if name in ABSOLUTE and items:
                    newest = float(items[-1][0])
                    k = len(items) - bisect.bisect_left([st for st, _ in items], newest)
                    if newest >= self._used.get(name, (-math.inf, 0))[0]:
                        self._used[name] = (newest, k)
        used = self._before if tracking and self.config.fresh_only else {}
        out = {}
        for name, items in window.items():
            items = list(items)
            if name in used:
                s0, k0 = used[name]
                first = bisect.bisect_left([st for st, _ in items], s0)
                same = bisect.bisect_right([st for st, _ in items], s0)
                items = items[min(first + k0, same):] if same > first else items[first:]
            if name == 'uwb':
                items = [(st, m) for st, m in items if st >= t - self.config.uwb_window]
            out[name] = items
        return out

    def blocks(self, window: Window, site: Site, t: float, rig: Rig | None = None, tracking: bool = True
               ) -> tuple[list[Block], SensorFrame, np.ndarray]:
        """The residual blocks of a window at stamp t (see the module docstring), the prepared frame, and the
        covariance (3, 3) the odometry's motion compensation of the scan or cloud adds (:func:`motion_cov`)."""
        cfg = self.config
        index, fld, pm, ids = self._site_data(site)
        w = self._fresh(window, t, tracking)
        big = 1 << 20
        # the odometry that carries the oldest measurement used to t must be in the prepared track
        oldest = min((float(items[0][0]) for name, items in w.items() if name in ABSOLUTE and items), default=t)
        tc = TokenConfig(max_beams=big, max_points=big, max_depth=big, max_uwb=big,
                         window=max(cfg.uwb_window, t - oldest, 0.0), max_odom_extrapolation=cfg.odom_extrapolation)
        if w.get('scan'):   # the scan prepare uses of each lidar: its newest, deskewed
            w['scan'] = [(st, deskewed(m, rig, w)) for st, m in newest_per_frame(w['scan'])]
        frame = prepare(w, site, t, rig, tc, index)
        blocks: list[Block] = []
        scan = frame.ptype == TYPE_ID['scan']
        if scan.any() and fld is not None:
            pts, _ = voxel_downsample(frame.pts[scan, :2], cfg.scan_voxel)
            blocks.append(ScanBlock(pts, fld, sigma=cfg.scan_sigma, truncation=cfg.truncation))
        elif scan.any():
            self.counts['scan unused: no occupancy map'] += 1
        cloud = (frame.ptype == TYPE_ID['points']) | (frame.ptype == TYPE_ID['depth'])
        if cloud.any() and pm is not None:
            pts, _ = voxel_downsample(frame.pts[cloud], cfg.points_voxel)
            blocks.append(PlaneBlock(pts, pm, sigma=cfg.points_sigma, truncation=cfg.truncation))
        elif cloud.any() and fld is not None:     # no point map: the cloud's slice against the occupancy map
            z = frame.pts[cloud, 2]
            band = (z >= cfg.slice_z_min) & (z <= cfg.slice_z_max)
            if band.any():
                pts, _ = voxel_downsample(frame.pts[cloud][band, :2], cfg.scan_voxel)
                blocks.append(ScanBlock(pts, fld, sigma=cfg.scan_sigma, truncation=cfg.truncation, name='points'))
                self.counts['3D points sliced onto the occupancy map'] += 1
        elif cloud.any():
            self.counts['3D points unused: no map'] += 1
        if len(frame.uwb_range):
            k = np.array([ids.get(a.tobytes(), -1) for a in np.asarray(frame.uwb_anchor, np.float64)])
            ok = k >= 0
            if not ok.all():
                self.counts['uwb range of an unknown anchor'] += int((~ok).sum())
            if ok.any():
                b = self._biases_at(t, len(site.anchors))
                blocks.append(RangeBlock(frame.uwb_anchor[ok], frame.uwb_range[ok], frame.uwb_tag[ok],
                                         sigma=cfg.uwb_sigma, anchor_index=k[ok], bias=0.0,
                                         bias_std=np.sqrt(b.var), bias_mean=b.mean,
                                         common_bias_std=math.sqrt(b.common[1]), common_bias_mean=b.common[0],
                                         height_std=math.sqrt(b.height[1]), height_mean=b.height[0]))
        motion = np.zeros((3, 3))
        if (scan | cloud).any():
            stamp = t + float(frame.pdt[scan | cloud].min())
            motion = motion_cov(w.get('odom') or [], stamp, t, cfg.odom_extrapolation)
        return blocks, frame, motion

    def _biases_at(self, t: float, n: int) -> _Biases:
        """The learnt offsets, their variances grown by the random walk since they were last updated."""
        b = self._biases
        assert b is not None and len(b.mean) == n
        if b.stamp is not None and t > b.stamp:
            q = self.config.bias_walk ** 2 * (t - b.stamp)
            b.var = b.var + q
            b.common = (b.common[0], b.common[1] + q)
            if b.height[1] > 0:
                b.height = (b.height[0], min(b.height[1] + self.config.uwb_height_walk ** 2 * (t - b.stamp),
                                             self.config.uwb_height_std ** 2))
            b.stamp = t
        return b

    def _learn(self, blocks: list[Block], sol: Solution, t: float) -> None:
        """Carry the solved offsets (and their variances) to the next update, the share of what this solve learnt
        that consecutive windows' shared errors allow (:meth:`_window_share`): only from solves whose ranges fix the
        position without the filter's prior (a map in the window, or three anchors or more); offsets solved from two
        anchors' ranges are the prior's belief, and carried on they would make the filter's drift look measured."""
        b = self._biases
        if not _sees_map(blocks) and _anchors(blocks) < 3:
            return
        for blk in blocks:
            if isinstance(blk, RangeBlock) and b is not None and blk.name in sol.extra_var:
                (common, mean, height), (common_var, var, height_var) = (
                    blk.parts(sol.extra[blk.name]), blk.parts(sol.extra_var[blk.name]))
                f = self._window_share(t)
                if common is not None:
                    b.common = _shared(b.common, (common, common_var), f)
                k = blk.estimated
                b.mean[k], b.var[k] = _shared((b.mean[k], b.var[k]), (mean, var), f)
                if height is not None:
                    b.height = _shared(b.height, (height, height_var), f)
                b.stamp = t

    def _window_share(self, t: float) -> float:
        """The share of one correlation time a window at ``t`` stands for: the time since the previous result handed
        on over ``correlation_time``, at most 1 (1 without a previous one or with correlation_time 0). Consecutive
        windows share their errors: a tracking result's covariance is divided by it (:meth:`_decorrelated`) and the
        range offsets learn that share of what a solve says about them (learnt in full ten times a second, they
        froze at a 1 cm std on values 0.1-0.2 m off)."""
        tau, prev = self.config.correlation_time, self._last_handed
        if tau <= 0 or prev is None or not t > prev:
            return 1.0
        return min(1.0, (t - prev) / tau)

    # ------------------------------------------------------------------ solving
    def _starts(self, poses: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in poses:
            if p is None or not np.all(np.isfinite(p)):
                continue
            p = np.asarray(p, np.float64).reshape(3)
            if not any(_near(p, q, 0.01, 0.01) for q in out):
                out.append(p)
        return out

    def _solve(self, blocks: list[Block], starts: list[np.ndarray], prior: tuple[np.ndarray, np.ndarray] | None
               ) -> Solution | None:
        """The lowest-cost minimum that solves from ``starts`` reach (None without starts)."""
        found = self._minima(blocks, starts, prior)
        return found[0] if found else None

    def _minima(self, blocks: list[Block], starts: list[np.ndarray], prior: tuple[np.ndarray, np.ndarray] | None
                ) -> list[Solution]:
        """The distinct minima that solves from ``starts`` reach, lowest cost first."""
        out: list[Solution] = []
        seen: list[np.ndarray] = []
        cfg = self._map_solver if _sees_map(blocks) else self.config.solver
        for x0 in starts:
            if any(_near(x0, q) for q in seen):     # converges where a solve already went
                continue
            sol = solve(self._through_walls(blocks, x0), x0, prior=prior, config=cfg)
            seen += [x0, sol.pose]
            same = next((k for k, m in enumerate(out) if _near(sol.pose, m.pose)), None)
            if same is None:
                out.append(sol)
            elif sol.cost < out[same].cost:
                out[same] = sol
        return sorted(out, key=lambda m: m.cost)

    def _new_minima(self, blocks: list[Block], starts: Sequence[np.ndarray | None],
                    prior: tuple[np.ndarray, np.ndarray] | None, minima: list[Solution]) -> list[Solution]:
        """The minima that solves from ``starts`` reach other than those in ``minima``."""
        return [m for m in self._minima(blocks, self._starts(starts), prior)
                if not any(_near(m.pose, q.pose) for q in minima)]

    def _rival_minima(self, blocks: list[Block], pose: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None,
                      sol: Solution, minima: list[Solution]) -> tuple[Solution, list[Solution]]:
        """(the solution, the minima) with the previous update's rivals solved from (their offsets from ``pose``):
        a rival that the measurements now prefer by more than ``rival_cost`` (:func:`_excess`) replaces ``sol``
        (the prior, centred on the current one, would keep it otherwise); else ``sol`` stays."""
        more = self._new_minima(blocks, [_shifted(pose, d) for d in self._rivals], prior, minima)
        if more:
            J = self._deciding(blocks, sol)
            best = min(more, key=lambda m: _excess(blocks, sol, m, J, self.config.min_deciding))
            if _excess(blocks, sol, best, J, self.config.min_deciding) < -self.config.rival_cost \
                    and self.consistent(best):
                self.counts['switched to a rival minimum'] += 1
                sol = best
        return sol, sorted(minima + more, key=lambda m: m.cost)

    def _deciding(self, blocks: list[Block], sol: Solution) -> np.ndarray:
        """:func:`_map_jacobian` at ``sol`` with the map solve's settings, for what ``min_deciding`` counts for less
        (:func:`_few_deciding`, :func:`_excess`); empty, and nothing counted for less, with min_deciding 0 or no scan
        or point blocks."""
        return _map_jacobian(blocks, sol, self._map_solver) if self.config.min_deciding > 0 else np.zeros((0, 3))

    def _rivals_of(self, blocks: list[Block], sol: Solution, minima: list[Solution], J: np.ndarray
                   ) -> list[tuple[Solution, float]]:
        """The minima other than ``sol`` that the measurements have not ruled out (``rival_cost``, by
        :func:`_excess`; ``J``: :func:`_map_jacobian` at ``sol``), each with its likelihood relative to ``sol`` (at
        most 1): consistent, and beyond 3 sigmas of ``sol`` by the measurements' own covariance with the map
        agreement floor (nearer, the map cannot tell them apart)."""
        if self.config.rival_cost <= 0:
            return []
        out = []
        info = np.linalg.pinv(self._floored(sol.cov_measurements, self._floor(blocks)))
        for m in minima:
            if m is sol:
                continue
            d = pose_offset(m.pose, sol.pose)
            excess = _excess(blocks, sol, m, J, self.config.min_deciding)
            if excess <= self.config.rival_cost and float(d @ info @ d) > 9.0 and self.consistent(m):
                out.append((m, math.exp(-max(excess, 0.0))))
        return out

    def _through_walls(self, blocks: list[Block], pose: np.ndarray) -> list[Block]:
        """The blocks with each UWB range's long side (``RangeBlock.sigma_long``) widened by ``uwb_nlos_sigma`` per
        obstacle of the map that its link crosses with base_link at ``pose`` (the start of a solve: fixed while it
        iterates, as an association is)."""
        k = self.config.uwb_nlos_sigma
        if k <= 0 or self._site is None:
            return blocks
        out = []
        for b in blocks:
            if isinstance(b, RangeBlock) and len(b.ranges):
                tag, _ = _rot_points(pose, b.tag[:, :2])          # the tag in the map, as the block predicts it
                n = self._site[1].crossings(tag, b.anchors[:, :2])
                if n.any():
                    b = dataclasses.replace(b, sigma_long=np.hypot(b.sigma, k * n))
            out.append(b)
        return out

    def consistent(self, sol: Solution) -> bool:
        """Whether a solve explains its measurements: inlier share and residual RMS within the config's bounds,
        with several modalities each one's own inlier share (``min_block_share``), and a UWB offset shared by all
        anchors within ``max_common_offset``."""
        c = self.config
        blocks = [st for st in sol.stats.values() if st['n'] >= c.min_block_n] if len(sol.stats) > 1 else []
        return sol.n_measurements > 0 and sol.inlier_share >= c.min_inlier_share and np.isfinite(sol.rms) \
            and sol.rms <= c.max_rms and all(st['inliers'] >= c.min_block_share * st['n'] for st in blocks) \
            and (c.uwb_common_std == 0 or abs(_common_offset(sol)) <= c.max_common_offset)

    def _handed_on(self, blocks: list[Block], sol: Solution, heading: tuple[float, float] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(pose (3,), cov (3, 3)) to hand the pipeline. ``heading``: (mean, variance) of the prior's heading when
        tracking (then the measurements' own covariance: the filter has the prior), None for a global result (the
        posterior). With the heading unobserved by the measurements (one UWB tag and nothing else), base_link's
        expected position under the heading's uncertainty (see the module docstring)."""
        tracking = heading is not None
        pose = sol.pose.copy()
        cov = (sol.cov_measurements if tracking else sol.cov).copy()
        if sol.cov_measurements[2, 2] <= self.config.yaw_unobserved \
                or _sees_map(blocks):
            return pose, cov
        tags = [b.tag for b in blocks if isinstance(b, RangeBlock)]
        if not tags:
            return pose, cov
        lever = np.concatenate(tags)[:, :2].mean(0)
        c, s = math.cos(pose[2]), math.sin(pose[2])
        arm = np.array([c * lever[0] - s * lever[1], s * lever[0] + c * lever[1]])
        J = np.array([[1.0, 0.0, -arm[1]], [0.0, 1.0, arm[0]]])              # tag position w.r.t. the pose
        tag, tag_cov = pose[:2] + arm, J @ sol.cov_measurements @ J.T
        yaw, var = heading if tracking else (float(pose[2]), UNIFORM_YAW_STD ** 2)
        shrink = math.exp(-0.5 * min(var, 50.0))
        c, s = math.cos(yaw), math.sin(yaw)
        out = np.zeros((3, 3))
        out[:2, :2] = tag_cov + np.eye(2) * 0.5 * (1.0 - shrink ** 2) * float(lever @ lever)
        out[2, 2] = self.config.solver.max_variance if tracking else var
        base = tag - shrink * np.array([c * lever[0] - s * lever[1], s * lever[0] + c * lever[1]])
        return np.array([base[0], base[1], float(wrap_angle(yaw))]), out

    def _floor(self, blocks: list[Block]) -> np.ndarray | None:
        """(3,) std of the map agreement floor (``cov_floor``) when scans or points took part, else None."""
        if not _sees_map(blocks):
            return None
        return np.array([self.config.cov_floor_xy, self.config.cov_floor_xy, self.config.cov_floor_yaw])

    @staticmethod
    def _floored(cov: np.ndarray, floor: np.ndarray | None) -> np.ndarray:
        """cov plus the map agreement floor (:meth:`_floor`, None: none)."""
        return cov if floor is None else cov + np.diag(np.square(floor))

    def _decorrelated(self, cov: np.ndarray, t: float) -> np.ndarray:
        """A tracking result: its covariance times correlation_time / (time since the previous result handed on), at
        least 1. Consecutive windows share their slowly varying errors (for ranges: multipath, the range biases not
        yet learnt, the unknown direction of a lever arm; for scans and points: how the map disagrees with the world
        here, ``cov_floor``, the larger part of their covariance) and a run of them carries about the information of
        one per correlation time: a 10 Hz lidar fused as ten independent scans a second shrank the filter to a
        position std of 1 cm at 5 cm errors on a generated building's mapped map (NEES 63; 25 with this)."""
        self._inflation = 1.0 / self._window_share(t)
        self._last_handed = t
        return cov * self._inflation

    # ------------------------------------------------------------------ the PoseSource interface
    def localize(self, window: Window, site: Site, t: float, prior_pose: np.ndarray | None = None,
                 prior_cov: np.ndarray | None = None, rig: Any = None) -> Any:
        tracking = prior_pose is not None
        wide = prior_cov is not None and max_position_std(prior_cov) > self.config.wide_prior
        inner = None
        if not tracking or wide or self._inner_at is None or t - self._inner_at >= self.config.network_period \
                or t < self._inner_at:
            inner = self._inner(window, site, t, prior_pose, prior_cov, rig)
        blocks, frame, motion = self.blocks(window, site, t, rig, tracking)
        if not blocks:
            self.counts['nothing to solve'] += 1
            return None if tracking else inner
        if not tracking:
            return self._global(inner, blocks, frame, motion, t)
        t0 = time.perf_counter()
        prior = (np.asarray(prior_pose, np.float64), np.asarray(prior_cov, np.float64)) \
            if self.config.use_prior and prior_cov is not None else None
        self._gap_since = (t if self._gap_since is None else self._gap_since) if wide else None
        cloud = _sees_map(blocks)
        if wide and not cloud and self._handed_cloud and t - self._gap_since < self.config.scan_wait:
            self.counts['after a gap: waiting for a scan'] += 1
            return None
        if not cloud and _anchors(blocks) < self.config.min_anchors:
            self.counts['ranges of too few anchors'] += 1
            return None
        pp = np.asarray(prior_pose, np.float64)
        starts = [getattr(inner, 'pose', None), pp]
        if wide:     # after a gap: the pose may be anywhere the prior allows, not only where it peaks
            pc = np.asarray(prior_cov, np.float64)
            starts += list(_spread_starts(pp, pc))
        minima = self._minima(blocks, self._starts(starts), prior)
        sol = minima[0]
        if inner is None and self.source is not None and not self.consistent(sol):
            # the prediction's solve does not fit: the network's view is the next start
            self.counts['network asked: the prediction did not fit'] += 1
            inner = self._inner(window, site, t, prior_pose, prior_cov, rig)
            more = self._new_minima(blocks, [getattr(inner, 'pose', None)], prior, minima)
            minima = sorted(minima + more, key=lambda m: m.cost)
            sol = minima[0]
        if wide and not self.consistent(sol):    # the heading may be further off than its 1-sigma points
            turned = self._solve(blocks, self._starts(list(_turned_starts(pp, pc))), prior)
            if turned is not None and self.consistent(turned):
                self.counts['found at the heading\'s 2-sigma points'] += 1
                sol, minima = turned, [turned]
        if cloud and self._rivals:
            sol, minima = self._rival_minima(blocks, pp, prior, sol, minima)
        self.solve_times.append(time.perf_counter() - t0)
        self.last = sol
        if not self.consistent(sol):
            if sol.n_measurements < self.config.min_judged:
                return self._unfit_small(sol, t)
            if wide:
                self.counts['not fitting a wide prior'] += 1
                return None
            self.counts['inconsistent'] += 1
            return Inconsistent()
        self.counts['solved'] += 1
        if sol.n_measurements >= self.config.min_block_n:
            self._unfit = None
        self._learn(blocks, sol, t)
        self._handed_cloud = cloud
        heading = (float(prior_pose[2]), float(np.asarray(prior_cov)[2, 2]) if prior_cov is not None else 1e4)
        pose, cov = self._handed_on(blocks, sol, heading)
        J = self._deciding(blocks, sol)
        cov = _few_deciding(J, sol, cov, self.config.min_deciding, self._map_solver)
        rivals = self._rivals_of(blocks, sol, minima, J) if cloud else []
        self._rivals = [pose_offset(m.pose, sol.pose) for m, _ in rivals]
        if rivals:
            self.counts['rival minima spanned'] += 1
        cov = _spanning(_mirrored(blocks, sol, cov, self._occupancy()), sol, rivals)
        floor = self._floor(blocks)
        cov = self._decorrelated(self._floored(cov, floor) + motion, t)
        return self._estimate(inner, pose, cov, sol, t, 'tracking', getattr(inner, 'alternatives', None), floor)

    def _inner(self, window: Window, site: Site, t: float, prior_pose: np.ndarray | None,
               prior_cov: np.ndarray | None, rig: Any) -> Any:
        """The inner source's estimate (global without a prior), its health remembered for the results that do not
        ask it (``network_period``); None without an inner source."""
        if self.source is None:
            return None
        if prior_pose is None:
            inner = self.source.localize(window, site, t, rig=rig)
        else:
            inner = self.source.localize(window, site, t, prior_pose, prior_cov, rig=rig)
        self._inner_health = dict(getattr(inner, 'health', {}) or {})
        self._inner_at = t
        return inner

    def _unfit_small(self, sol: Solution, t: float) -> Any:
        """A tracking solve that does not fit, of fewer than min_judged measurements: None (not judged), or
        Inconsistent once such solves (of at least min_block_n measurements each, no more than unfit_time apart)
        have not fitted for unfit_time s."""
        c = self.config
        if sol.n_measurements >= c.min_block_n:
            first = t if self._unfit is None or t - self._unfit[1] > c.unfit_time else self._unfit[0]
            self._unfit = (first, t)
            if t - first >= c.unfit_time:
                self.counts['small windows not fitting for unfit_time'] += 1
                return Inconsistent()
        self.counts['not fitting, too few measurements to judge'] += 1
        return None

    def _global(self, inner: Any, blocks: list[Block], frame: SensorFrame, motion: np.ndarray, t: float) -> Any:
        """Global mode: the inner source's winner and alternatives (best score first; without an inner source the
        ranges' multilateration) each solved with a wide prior; those the window does not fit are dropped. Where the
        fits lie at more than ``max_places`` distinct places the view tells too little (a depth camera's wall) and
        there is no result. Else those whose measurements cost more than ``rival_cost`` above the cheapest fit's
        are dropped too (:func:`_excess`: a 3D lidar's view of a corridor fitted the truth at a cost of 454 and
        places 33-40 m off at 575-660, and the inner source's first choice was one of those); of the rest, which the
        data cannot tell apart, the first in the inner source's order wins (with its score) and the others stay its
        alternatives."""
        t0 = time.perf_counter()
        cands: list[tuple[np.ndarray, float | None]] = []
        if getattr(inner, 'pose', None) is not None:
            cands.append((np.asarray(inner.pose, np.float64), getattr(inner, 'score', None)))
            alt = getattr(inner, 'alternatives', None)
            if alt is not None:
                cands += [(np.asarray(p, np.float64), float(sc)) for p, sc in zip(alt[0], alt[2])]
        else:
            start = self._uwb_start(blocks, frame)
            if start is not None:
                cands.append((start, None))
        if not any(isinstance(b, RangeBlock) for b in blocks) \
                and sum(int(np.sum(getattr(b, 'finite', []))) for b in blocks) < self.config.min_judged:
            self.counts['too few map points for a global result'] += 1
            return None
        fits, floor = [], self._floor(blocks)
        for pose0, score in cands:
            sol = self._solve(blocks, [pose0], self._wide_prior(pose0))
            if sol is None:
                continue
            self.last = sol
            if self.consistent(sol):
                pose, cov = self._handed_on(blocks, sol, None)
                cov = _few_deciding(self._deciding(blocks, sol), sol, cov, self.config.min_deciding, self._map_solver)
                fits.append((pose, self._floored(_mirrored(blocks, sol, cov, self._occupancy()), floor) + motion,
                             score, sol))
        self.solve_times.append(time.perf_counter() - t0)
        if not cands:
            self.counts['no start'] += 1
            return inner
        if not fits:
            self.counts['inconsistent'] += 1
            return None
        places: list[np.ndarray] = []
        for f in fits:
            if not any(_same_place(f[0], q) for q in places):
                places.append(f[0])
        if len(places) > self.config.max_places:
            self.counts['more places fit than max_places'] += 1
            return None
        cheapest = min((f[3] for f in fits), key=_data_cost)
        J = self._deciding(blocks, cheapest)
        fits = [f for f in fits if _excess(blocks, cheapest, f[3], J, self.config.min_deciding)
                <= self.config.rival_cost]
        self.counts['solved'] += 1
        self._last_handed = t
        self._handed_cloud = _sees_map(blocks)
        self._rivals = []                 # a new start: the pipeline keeps a global result's rivals
        pose, cov, score, sol = fits[0]
        self.last = sol
        alt = None
        if len(fits) > 1:
            alt = (np.stack([f[0] for f in fits[1:]]), np.stack([f[1] for f in fits[1:]]),
                   np.array([f[2] if f[2] is not None else 0.0 for f in fits[1:]]))
        est = self._estimate(inner, pose, cov, sol, t, 'global', alt, floor)
        if score is not None and hasattr(est, 'score'):
            est = dataclasses.replace(est, score=score)
        return est

    def _occupancy(self) -> OccupancyMap | None:
        """The current site's occupancy map (None without one)."""
        return None if self._site is None else self._site[1].site.map

    def _wide_prior(self, start: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        if start is None:
            return None
        s = self.config.global_position_std
        return np.asarray(start, np.float64), np.diag([s * s, s * s, UNIFORM_YAW_STD ** 2])

    def _uwb_start(self, blocks: list[Block], frame: SensorFrame) -> np.ndarray | None:
        """A start without an inner source: robust multilateration of the tag (heading 0)."""
        rb = next((b for b in blocks if isinstance(b, RangeBlock)), None)
        if rb is None:
            return None
        res = multilaterate(rb.anchors, rb.ranges, sigma=self.config.uwb_sigma, fixed_z=float(rb.tag[:, 2].mean()))
        if not res.ok:
            return None
        lever = rb.tag[:, :2].mean(0)
        return np.array([res.position[0] - lever[0], res.position[1] - lever[1], 0.0])

    def _estimate(self, inner: Any, pose: np.ndarray, cov: np.ndarray, sol: Solution, t: float, mode: str,
                  alt: Any, floor: np.ndarray | None) -> Any:
        health = dict(getattr(inner, 'health', None) or self._inner_health)
        health['geometry'] = float(sol.inlier_share)
        cov = 0.5 * (cov + cov.T)
        if inner is not None and dataclasses.is_dataclass(inner):
            changes: dict[str, Any] = {'pose': pose, 'cov': cov, 'health': health, 'floor': floor}
            if hasattr(inner, 'alternatives'):
                changes['alternatives'] = alt
            return dataclasses.replace(inner, **changes)
        return BaseEstimate(stamp=t, pose=pose, cov=cov, source='solver', mode=mode, health=health, floor=floor,
                            info={'rms': sol.rms, 'inlier_share': sol.inlier_share, 'chi2_red': sol.chi2_red})

    def _track_many(self, window: Window, site: Site, t: float, poses: np.ndarray, covs: np.ndarray,
                    rig: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inner source's ``track_many`` (rival hypotheses), each result solved from (with its prior); a rival
        whose solve is inconsistent keeps the inner source's answer, with a score of 0 where the solve had at least
        min_judged measurements: the data rule it out (in a symmetric building the inner source may score a mirror
        image as high as the truth)."""
        out, ocov, scores = self.source.track_many(window, site, t, poses, covs, rig=rig)
        out, ocov = np.array(out, dtype=np.float64, copy=True), np.array(ocov, dtype=np.float64, copy=True)
        scores = np.array(scores, dtype=np.float64, copy=True)
        blocks, _, motion = self.blocks(window, site, t, rig, tracking=True)
        if not blocks:
            return out, ocov, scores
        floor = self._floor(blocks)
        for k in range(len(out)):
            prior = (np.asarray(poses[k], np.float64), np.asarray(covs[k], np.float64)) if self.config.use_prior \
                else None
            sol = self._solve(blocks, self._starts([out[k], poses[k]]), prior)
            if sol is not None and self.consistent(sol):
                p, c = self._handed_on(blocks, sol, (float(poses[k][2]), float(np.asarray(covs[k])[2, 2])))
                out[k], ocov[k] = p, (self._floored(c, floor) + motion) * max(1.0, self._inflation)
            elif sol is not None and sol.n_measurements >= self.config.min_judged:
                scores[k] = 0.0
        return out, ocov, scores


#: Frame prefix of a deskewed scan (already in base_link).
DESKEWED = 'deskewed_in_base_link:'


def deskewed(scan: LaserScan2D, rig: Rig | None, window: Window) -> LaserScan2D:
    """The scan's valid beams with the robot's motion during the sweep undone (each beam is ``time_increment`` s
    after the one before; :func:`flm_core.estimation.icp.deskew` with the body twist of the odometry sample nearest
    the scan's stamp, else the turn rate of the nearest IMU sample), as a scan in base_link at its stamp (frame
    ``DESKEWED + frame_id``, which no rig mounts: base_link, with per-beam angles; each lidar's stays apart). A scan
    without beam timing comes back unchanged."""
    if not scan.time_increment:
        return scan
    mount = tuple(float(v) for v in (rig or Rig()).mount(scan.frame_id))
    pts, dt = scan_points(scan, 2, mount, 0.0)                      # type: ignore[misc]
    twist = np.zeros(3)
    near = _nearest(window.get('odom') or [], scan.stamp)
    if near is not None:
        twist = np.array([near.linear_velocity[0], near.linear_velocity[1], near.angular_velocity[2]], np.float64)
    else:
        imu = _nearest(window.get('imu') or [], scan.stamp)
        if imu is not None:
            twist[2] = float(imu.angular_velocity[2])
    pts = deskew(pts, dt, twist)
    return LaserScan2D(stamp=scan.stamp, frame_id=DESKEWED + scan.frame_id,
                       angles=np.arctan2(pts[:, 1], pts[:, 0]).astype(np.float32),
                       ranges=np.hypot(pts[:, 0], pts[:, 1]).astype(np.float32), range_min=0.0,
                       range_max=float('inf'))


def _nearest(items: Sequence[tuple[float, Any]], stamp: float) -> Any:
    """The item of a stamp-sorted [(stamp, item)] nearest ``stamp`` (None when empty)."""
    if not items:
        return None
    k = bisect.bisect_left([s for s, _ in items], stamp)
    cands = [i for i in (k - 1, k) if 0 <= i < len(items)]
    return items[min(cands, key=lambda i: abs(items[i][0] - stamp))][1]


def motion_cov(odom: Sequence[tuple[float, Any]], stamp: float, t: float, extrapolation: float = 0.0
               ) -> np.ndarray:
    """Covariance (3, 3) (m^2, m^2, rad^2; isotropic in position) of the error of carrying a measurement from
    ``stamp`` to ``t`` with odometry interpolated between its samples ``odom`` ([(stamp, OdometrySample)], oldest
    first): between two samples the motion is known only in sum, so the interpolated pose at a fraction f of an
    interval that moved by (d, dyaw) is uncertain by sqrt(f (1 - f)) of it; past the newest sample (beyond
    ``extrapolation`` s) the motion is unknown, taken as the newest interval's per second times the gap. Both
    ends count; a position error also follows from the yaw error times the distance carried."""
    if not odom or stamp == t:
        return np.zeros((3, 3))
    st = np.array([s for s, _ in odom], np.float64)
    xy = np.array([m.position[:2] for _, m in odom], np.float64)
    yaw = np.unwrap(quat_to_yaw(np.array([m.orientation for _, m in odom], np.float64)))
    var_p = var_y = 0.0
    for tau in (stamp, t):
        k = int(np.searchsorted(st, tau))
        if 0 < k < len(st):
            f = (tau - st[k - 1]) / max(st[k] - st[k - 1], 1e-9)
            a = f * (1.0 - f)
            var_p += a * float(np.sum((xy[k] - xy[k - 1]) ** 2))
            var_y += a * float(yaw[k] - yaw[k - 1]) ** 2
        elif len(st) > 1:
            j = len(st) - 1 if k >= len(st) else 1
            gap = max(abs(tau - st[min(k, len(st) - 1)]) - extrapolation, 0.0)
            rate = gap / max(st[j] - st[j - 1], 1e-9)
            var_p += rate ** 2 * float(np.sum((xy[j] - xy[j - 1]) ** 2))
            var_y += rate ** 2 * float(yaw[j] - yaw[j - 1]) ** 2
    i0, i1 = (np.interp(v, st, xy[:, 0]) for v in (stamp, t))
    j0, j1 = (np.interp(v, st, xy[:, 1]) for v in (stamp, t))
    var_p += var_y * float((i1 - i0) ** 2 + (j1 - j0) ** 2)
    return np.diag([var_p, var_p, var_y])


def _common_offset(sol: Solution) -> float:
    """m, the UWB range offset shared by all anchors that the solve found (0 without ranges; the first extra
    parameter of the ranges' block when that offset is estimated)."""
    x = sol.extra.get(RangeBlock.name)
    return float(x[0]) if x is not None and len(x) else 0.0


def _anchors(blocks: Sequence[Block]) -> int:
    """How many distinct anchors the blocks' ranges come from."""
    return len({int(k) for b in blocks if isinstance(b, RangeBlock) for k in b.anchor_index})


def _mirrored(blocks: Sequence[Block], sol: Solution, cov: np.ndarray, occ: OccupancyMap | None = None
              ) -> np.ndarray:
    """``cov`` (3, 3), widened where the window's ranges cannot tell the solved pose from its mirror image: with
    nothing that sees the map, and the anchors of the inlier ranges on one line in the plane (two anchors; more in a
    row, as along a corridor's ceiling), the tag reflected across that line predicts every range within its sigma,
    and base_link's mirror image stands on free floor of the site's map ``occ`` (anywhere without one; beyond a
    wall it is no rival). Linearised at either image the ranges cross at an angle and look informative, yet a common
    delay (NLOS, an antenna offset) moves both images along the line's normal by metres; the covariance handed on
    is then that of the equal mixture of both images about the solved pose: + 2 h^2 n n^T (h: the tag's distance
    from the line along its normal n)."""
    rb = [b for b in blocks if isinstance(b, RangeBlock) and len(b.ranges)]
    if not rb or _sees_map(blocks):
        return cov
    inl = [sol.inliers.get(b.name, np.ones(len(b.ranges), bool)) for b in rb]
    anchors = np.concatenate([b.anchors[k] for b, k in zip(rb, inl)])
    tags = np.concatenate([np.broadcast_to(b.tag, (len(b.ranges), 3))[k] for b, k in zip(rb, inl)])
    if len(np.unique(np.round(anchors[:, :2], 3), axis=0)) < 2:
        return cov
    centre = anchors[:, :2].mean(0)
    normal = np.linalg.svd(anchors[:, :2] - centre)[2][1]          # across the anchors' principal line
    tag_xy, _ = _rot_points(sol.pose, tags[:, :2])
    h = float(np.mean((tag_xy - centre) @ normal))
    mirror = tag_xy - 2.0 * np.outer((tag_xy - centre) @ normal, normal)
    dz = tags[:, 2] - anchors[:, 2]
    here = np.sqrt(np.sum((tag_xy - anchors[:, :2]) ** 2, 1) + dz * dz)
    there = np.sqrt(np.sum((mirror - anchors[:, :2]) ** 2, 1) + dz * dz)
    sigma = np.concatenate([np.broadcast_to(np.asarray(b.sigma, np.float64), (len(b.ranges),))[k]
                            for b, k in zip(rb, inl)])
    if not np.all(np.abs(there - here) <= sigma):
        return cov
    if occ is not None and not occ.free_at(sol.pose[:2] - 2.0 * float((sol.pose[:2] - centre) @ normal) * normal):
        return cov                                         # base_link's mirror image is off the free floor
    out = np.array(cov, dtype=np.float64, copy=True)
    out[:2, :2] += 2.0 * h * h * np.outer(normal, normal)
    return out


def _shared(prior: tuple[Any, Any], post: tuple[Any, Any], f: float) -> tuple[Any, Any]:
    """(mean, variance) (scalars or arrays alike) of a parameter after taking the share ``f`` of what a solve from
    ``prior`` learnt about it (its posterior ``post``), in information form: prior + f (post - prior), the gain in
    information at least 0; f = 1: ``post``."""
    if f >= 1.0:
        return post
    m0, i0 = np.asarray(prior[0], np.float64), 1.0 / np.maximum(np.asarray(prior[1], np.float64), 1e-12)
    m1, i1 = np.asarray(post[0], np.float64), 1.0 / np.maximum(np.asarray(post[1], np.float64), 1e-12)
    info = i0 + f * np.maximum(i1 - i0, 0.0)
    mean = (m0 * i0 + f * (m1 * i1 - m0 * i0)) / info
    if np.ndim(mean) == 0:
        return float(mean), float(1.0 / info)
    return mean, 1.0 / info


def _map_jacobian(blocks: Sequence[Block], sol: Solution, cfg: SolverConfig) -> np.ndarray:
    """(n, 3) the scan and point blocks' Jacobians at the pose ``sol`` (x, y in m, heading in rad), each row weighted
    by the square root of its measurement's weight as the solve counts it (robust weight, inactive rows 0)."""
    js = [np.zeros((0, 3))]
    for b in blocks:
        if isinstance(b, (ScanBlock, PlaneBlock)):
            lin = b.linearize(sol.pose, sol.extra.get(b.name, np.zeros(0)))
            w = np.asarray(b.weights) * robust_weight(lin.e, cfg.loss, cfg.loss_scale) * lin.active
            js.append(lin.J[:, :3] * np.sqrt(w)[:, None])
    return np.concatenate(js)


def _n_eff(c: np.ndarray) -> np.ndarray:
    """The effective number of points deciding a direction from their shares c (n, ...) of its information:
    (sum c)^2 / sum c^2 over the first axis."""
    return c.sum(0) ** 2 / np.maximum((c ** 2).sum(0), 1e-300)


def _few_deciding(J: np.ndarray, sol: Solution, cov: np.ndarray, n_min: float, cfg: SolverConfig) -> np.ndarray:
    """``cov`` (3, 3) of the pose ``sol``, widened along the directions of the pose that fewer than ``n_min`` map
    points decide (``J``: :func:`_map_jacobian` at ``sol``): along each eigenvector v of the scan and point blocks'
    information (x, y in m, heading in rad) the points' shares c_i = w_i (J_i . v)^2 give an effective number n_eff
    = (sum c)^2 / sum c^2, and where it is below n_min that direction's information from the map counts n_eff /
    n_min of itself (divided by the solve's inflation, as the solve counts it). A few points that disagree with the
    map (moved furniture, a far shelf's end at a depth camera's noisiest range) decide such a direction alone, and
    their errors are not independent."""
    if not len(J):
        return cov
    lam, V = np.linalg.eigh(J.T @ J)
    keep = np.clip(_n_eff((J @ V) ** 2) / n_min, 0.0, 1.0)
    info = np.linalg.inv(cov) - (V * (np.maximum(lam, 0.0) * (1.0 - keep))) @ V.T / max(sol.inflation, 1.0)
    lam2, V2 = np.linalg.eigh(0.5 * (info + info.T))
    return (V2 / np.maximum(lam2, 1.0 / cfg.max_variance)) @ V2.T


def _excess(blocks: Sequence[Block], sol: Solution, other: Solution, J: np.ndarray, n_min: float) -> float:
    """How much more ``other``'s measurements cost than ``sol``'s (:func:`_data_cost`), the scan and point blocks'
    part counted as :func:`_few_deciding` counts their information: at the share min(1, n_eff / n_min) of the
    points deciding the direction from ``sol`` to ``other`` (``J``: :func:`_map_jacobian` at ``sol``). Minima
    along a corridor that a depth camera's few points at a door tell apart differ by a cost of 1-6 there, as if
    those points' errors were independent; they share the map's."""
    excess = _data_cost(other) - _data_cost(sol)
    if n_min <= 0 or not len(J):
        return excess
    c = (J @ pose_offset(other.pose, sol.pose)) ** 2
    share = min(1.0, float(_n_eff(c)) / n_min) if c.sum() > 0 else 1.0
    names = {b.name for b in blocks if isinstance(b, (ScanBlock, PlaneBlock))}
    on_map = sum(other.stats[n]['cost'] - sol.stats[n]['cost'] for n in names if n in sol.stats and n in other.stats)
    return excess - (1.0 - share) * on_map


def _spanning(cov: np.ndarray, sol: Solution, rivals: Sequence[tuple[Solution, float]]) -> np.ndarray:
    """``cov`` (3, 3) of the pose ``sol`` widened to the mixture of ``sol`` (weight 1) and its ``rivals`` (solutions
    with their likelihoods relative to ``sol``), each with ``cov``, about ``sol``'s pose: cov + sum w d d^T / sum w."""
    if not rivals:
        return cov
    return mixture_cov(sol.pose, [sol.pose] + [m.pose for m, _ in rivals], [cov] * (1 + len(rivals)),
                       [1.0] + [w for _, w in rivals])


def _same_place(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two poses (3,) are one place to a global result: positions within 1 m, whatever the headings (ranges
    from one tag fit every heading at one position)."""
    return bool(math.hypot(a[0] - b[0], a[1] - b[1]) < 1.0)


def _data_cost(sol: Solution) -> float:
    """The robust cost of a solution's measurements (and extra parameters' priors), the pose prior's term left
    out."""
    m = sol.prior_mahalanobis
    return float(sol.cost - (0.5 * m * m if np.isfinite(m) else 0.0))


def _shifted(pose: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(3,) pose plus an offset (:func:`flm_core.geometry.pose_offset`), the heading wrapped."""
    out = np.asarray(pose, np.float64) + d
    out[2] = wrap_angle(out[2])
    return out


def _sees_map(blocks: Sequence[Block]) -> bool:
    """Whether scan or point residuals (against the map) are among the blocks."""
    return any(isinstance(b, (ScanBlock, PlaneBlock)) for b in blocks)


def _spread_starts(pose: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(6, 3) starts at the 1-sigma points of a pose prior: +- one std along each principal axis of the covariance
    (x, y, yaw jointly)."""
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    d = v * np.sqrt(np.maximum(w, 0.0))
    out = np.concatenate([pose + d.T, pose - d.T])
    out[:, 2] = wrap_angle(out[:, 2])
    return out


def _turned_starts(pose: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(2, 3) starts at the heading's 2-sigma points of a pose prior, at its mean position: a solve converges from
    metres off in position but from only a few tens of degrees in heading (less with a narrow field of view)."""
    out = np.stack([pose, pose])
    out[:, 2] = wrap_angle(pose[2] + np.array([2.0, -2.0]) * math.sqrt(max(float(cov[2, 2]), 0.0)))
    return out


def _near(a: np.ndarray, b: np.ndarray, dxy: float = 0.05, dyaw: float = 0.02) -> bool:
    """Whether two poses are within dxy m and dyaw rad of each other."""
    return bool(np.hypot(a[0] - b[0], a[1] - b[1]) <= dxy and abs(float(wrap_angle(a[2] - b[2]))) <= dyaw)


__all__ = ['RefineConfig', 'Refined', 'deskewed', 'motion_cov']
