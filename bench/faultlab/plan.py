"""The timeline: a generated scenario as the message stream the injector publishes, with every case's faults
applied.

A plan's times are *play* seconds: a monotonic timeline (wall time = play / rate, except in storm windows, the huge
messages and the kidnap and bag-loop cases, which play at real time). Each :class:`Segment` maps play time to the
scenario's source time (what the sensors see) and to header stamps and ``/clock``: a kidnap skips the source ahead
while stamps, clock and odometry stay continuous; a bag loop sends source, stamps and clock back (``/clock`` jumps
backwards).
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from bench.faultlab.cases import BIG_SENDS, EPOCH, HOSTILE, SENSOR_STREAM, STREAMS, Case
from flm_core.geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle, yaw_to_quat
from flm_core.measurements import Image, OdometrySample, PointCloud, PoseWithCovariance, RangeSample


# ------------------------------------------------------------------------------------------------ the plan
@dataclass
class Segment:
    """From play time ``play0`` on: source time = play + source_offset; stamps and /clock = play + stamp_offset;
    odometry poses are composed with ``odom_anchor`` (x, y, yaw) so that odometry stays continuous."""

    play0: float
    source_offset: float = 0.0
    stamp_offset: float = 0.0
    odom_anchor: np.ndarray | None = None


@dataclass
class Item:
    """One message to publish at play time ``play`` on ``stream`` (a sensor stream, 'initialpose' or 'clock_only').
    ``m`` is a measurement (converted just before use) or a ready message; ``restamp`` (scenario s) overrides
    its header stamp at publish time (big messages shared between repeats)."""

    play: float
    stream: str
    m: Any
    case: str = ''
    kind: str = ''
    restamp: float | None = None


@dataclass
class Plan:
    scenario: Any
    cases: list[Case]
    items: list[Item]
    segments: list[Segment]
    slow: list[tuple[float, float]]              # play intervals played at real time
    end: float                                   # play s
    sent: Counter = field(default_factory=Counter)   # (case, kind) -> messages injected
    initial_pose: tuple[float, np.ndarray] = (0.3, np.zeros(3))
    operator: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)  # case -> (play, pose) sent

    # ---- time mappings
    def segment_at(self, play: float) -> Segment:
        seg = self.segments[0]
        for s in self.segments:
            if s.play0 <= play:
                seg = s
        return seg

    def stamp_at(self, play: float) -> float:
        """Scenario seconds of /clock at play time ``play``."""
        return play + self.segment_at(play).stamp_offset

    def case(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)

    def segment_of_stamp(self, stamp: float, recv_play: float) -> Segment:
        """The segment an output stamped ``stamp`` (scenario s) and received at ``recv_play`` belongs to."""
        for s in sorted(self.segments, key=lambda s: -s.play0):
            p = stamp - s.stamp_offset
            if s.play0 <= recv_play + 0.5 and s.play0 <= p <= recv_play + 1.0:
                return s
        return self.segments[0]

    def ground_truth(self, stamp: float, recv_play: float) -> np.ndarray:
        """(3,) the true pose at an output stamp (scenario s), by the segment it belongs to."""
        s = self.segment_of_stamp(stamp, recv_play)
        return gt_pose(self.scenario, stamp - s.stamp_offset + s.source_offset)

    def wall_schedule(self, rate: float, slow_rate: float = 1.0) -> Callable[[float], float]:
        """play -> wall seconds since the start (rate x real time; storms, huge messages, the kidnap and the bag loop
        at slow_rate x real time)."""
        slow = sorted(self.slow)

        def wall(play: float) -> float:
            w, last = 0.0, 0.0
            for a, b in slow:
                if play <= a:
                    break
                w += (a - last) / rate + (min(play, b) - a) / slow_rate
                last = min(play, b)
                if play <= b:
                    return w
            return w + (play - last) / rate
        return wall


def gt_pose(sc: Any, t: float) -> np.ndarray:
    """True pose (3,) at scenario time t (ground truth samples, linear in x/y, nearest yaw)."""
    g = sc.ground_truth
    t = min(max(t, float(g.t[0])), float(g.t[-1]))
    i = int(np.searchsorted(g.t, t))
    i = min(max(i, 1), len(g.t) - 1)
    f = (t - g.t[i - 1]) / max(g.t[i] - g.t[i - 1], 1e-9)
    p0, p1 = g.pose[i - 1], g.pose[i]
    return np.array([p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1]),
                     float(wrap_angle(p0[2] + f * wrap_angle(p1[2] - p0[2])))])


def measurements(sc: Any) -> dict[str, list[tuple[float, Any]]]:
    """stream -> [(arrival s, measurement)] of the scenario, in arrival order."""
    out: dict[str, list[tuple[float, Any]]] = {}
    for sensor, st in sc.streams.items():
        arrivals = np.asarray(st.timing.arrival, float)
        rows = list(zip(arrivals.tolist(), st.measurements()))
        rows.sort(key=lambda r: r[0])
        out[SENSOR_STREAM[sensor]] = rows
    return out


def odom_at(rows: list[tuple[float, Any]], t: float) -> np.ndarray:
    stamps = np.array([m.stamp for _, m in rows])
    i = int(np.clip(np.searchsorted(stamps, t), 0, len(rows) - 1))
    m = rows[i][1]
    return np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))])


def restamp(m: Any, stamp: float, anchor: np.ndarray | None) -> Any:
    m = dataclasses.replace(m, stamp=stamp)
    if anchor is not None and isinstance(m, OdometrySample):
        p = se2_compose(anchor, np.array([m.position[0], m.position[1], float(quat_to_yaw(m.orientation))]))
        m.position = np.array([p[0], p[1], m.position[2]])
        m.orientation = yaw_to_quat(p[2])
    return m


def _pose_msg(stamp: float, frame: str, pose: np.ndarray, std_xy: float = 0.1, std_yaw: float = 0.05
              ) -> PoseWithCovariance:
    cov = np.zeros((6, 6))
    cov[0, 0] = cov[1, 1] = std_xy ** 2
    cov[5, 5] = std_yaw ** 2
    return PoseWithCovariance(stamp=stamp, frame_id=frame, position=np.array([pose[0], pose[1], 0.0]),
                              orientation=yaw_to_quat(pose[2]), covariance=cov)


def hostile(kind: str, good: dict[str, Any], stamp: float, site: Any) -> tuple[str, Any]:
    """A bad message of ``kind`` (see :data:`HOSTILE`) made from the latest good measurement of each stream
    (``good``), stamped ``stamp`` (scenario + EPOCH seconds unless the kind is about stamps). Returns (stream, m)."""
    stream = HOSTILE[kind][0]
    g = good.get(stream)
    rp = dataclasses.replace
    if kind.startswith('scan_') and kind not in ('scan_duplicate', 'scan_out_of_order', 'scan_too_late'):
        n = len(g.ranges)
        r = {'scan_nan': np.full(n, np.nan, np.float32), 'scan_negative': -np.abs(g.ranges).astype(np.float32),
             'scan_empty': np.zeros(0, np.float32),
             'scan_inf_partial': np.where(np.arange(n) % 2 == 0, np.inf, g.ranges).astype(np.float32)}[kind]
        return stream, rp(g, stamp=stamp, ranges=r, angles=g.angles if len(r) else np.zeros(0, np.float32))
    if kind == 'cloud_nan':
        return stream, PointCloud(stamp=stamp, frame_id='lidar3d', xyz=np.full((1000, 3), np.nan, np.float32))
    if kind == 'cloud_empty':
        return stream, PointCloud(stamp=stamp, frame_id='lidar3d', xyz=np.zeros((0, 3), np.float32))
    if kind.startswith('uwb_'):
        anchor = site.anchors[0].id if site.anchors else '0'
        r = {'uwb_nan': math.nan, 'uwb_inf': math.inf, 'uwb_negative': -3.0, 'uwb_unknown_anchor': 5.0}[kind]
        return stream, RangeSample(stamp=stamp, anchor_id='no_such_anchor' if kind == 'uwb_unknown_anchor' else anchor,
                                   range=r, min_range=0.0, max_range=60.0)
    if kind.startswith('imu_') and kind != 'imu_far_future':
        if kind == 'imu_zero_quaternion':
            return stream, rp(g, stamp=stamp, orientation=np.zeros(4), orientation_covariance=np.eye(3) * 0.01)
        if kind == 'imu_nan':
            return stream, rp(g, stamp=stamp, angular_velocity=np.array([np.nan, 0.0, np.nan]))
        return stream, rp(g, stamp=stamp, angular_velocity_covariance=np.full((3, 3), np.nan))
    if kind == 'odom_nan_covariance':
        c = np.array(g.pose_covariance, float)
        c[0, 0] = np.nan
        return stream, rp(g, stamp=stamp, pose_covariance=c)
    if kind == 'odom_wrong_frame':
        return stream, rp(g, stamp=stamp, frame_id='map')
    if kind == 'odom_zero_quaternion':
        return stream, rp(g, stamp=stamp, orientation=np.zeros(4))
    if kind in ('scan_duplicate', 'odom_duplicate'):
        return stream, g                                          # the same message again
    if kind == 'scan_out_of_order':
        return stream, rp(g, stamp=g.stamp - 0.05)                # behind the newest, within max_lateness
    if kind == 'scan_too_late':
        return stream, rp(g, stamp=g.stamp - 0.8)                 # behind by more than max_lateness
    if kind in ('imu_far_future', 'odom_far_future'):
        return stream, rp(g, stamp=g.stamp + 3600.0)
    if kind == 'odom_backwards':
        return stream, rp(g, stamp=g.stamp - 30.0)               # a stale message from 30 s ago (clock runs on)
    raise ValueError(f'unknown hostile kind {kind!r}')


def build_plan(sc: Any, cases: list[Case], hostile_rate: float = 3.0, storm_factor: int = 10,
               kidnap_offsets: Iterable[float] = (12.0, 16.0, 20.0, 24.0, 28.0), loop_to: float = 5.0,
               operator: bool = True, tail: float = 1.0) -> Plan:
    """The message stream of scenario ``sc`` over the cases' timeline with every case's faults applied.
    ``operator``: send the operator's /initialpose (true pose) 2 s after a kidnap and a bag loop (recovery that does
    not depend on the model); without it only the node's own relocalization can recover."""
    src = measurements(sc)
    end = max(c.t1 for c in cases) + tail
    segments = [Segment(0.0)]
    by_kind = {c.kind: c for c in cases}
    if 'kidnap' in by_kind:
        k = by_kind['kidnap']
        avail = float(sc.config.duration) - 1.0
        offs = [d for d in kidnap_offsets if end + d <= avail] or [0.0]
        dist = [float(np.hypot(*(gt_pose(sc, k.t0 + d)[:2] - gt_pose(sc, k.t0)[:2]))) for d in offs]
        d = offs[int(np.argmax(dist))]
        anchor = None
        if 'odom' in src:
            anchor = se2_compose(odom_at(src['odom'], k.t0), se2_inverse(odom_at(src['odom'], k.t0 + d)))
        segments.append(Segment(k.t0, d, 0.0, anchor))
    if 'loop' in by_kind:
        lp = by_kind['loop']
        segments.append(Segment(lp.t0, loop_to - lp.t0, loop_to - lp.t0, None))
    segments.sort(key=lambda s: s.play0)
    items: list[Item] = []
    for i, seg in enumerate(segments):
        p_end = segments[i + 1].play0 if i + 1 < len(segments) else end
        for stream, rows in src.items():
            for a, m in rows:
                p = a - seg.source_offset
                if seg.play0 <= p < p_end:
                    st = m.stamp - seg.source_offset + seg.stamp_offset + EPOCH
                    items.append(Item(p, stream, restamp(m, st, seg.odom_anchor)))
    items.sort(key=lambda it: it.play)
    plan = Plan(sc, list(cases), items, segments, [], end)
    site = sc.site()
    for c in cases:
        _apply(plan, c, site, hostile_rate, storm_factor, operator)
    # the initial pose: the true start pose, slightly after the clock starts
    p0 = 0.3
    plan.initial_pose = (p0, gt_pose(sc, p0))
    plan.items.append(Item(p0, 'initialpose', _pose_msg(p0 + EPOCH, 'map', gt_pose(sc, p0)), kind='initial'))
    plan.items.sort(key=lambda it: it.play)
    return plan


def _apply(plan: Plan, c: Case, site: Any, hostile_rate: float, storm_factor: int, operator: bool) -> None:
    items = plan.items
    if c.kind == 'drop':
        keep = [it for it in items if not (it.stream in c.streams and c.t0 <= it.play < c.t1)]
        plan.sent[(c.name, 'dropped')] = len(items) - len(keep)
        plan.items = keep
    elif c.kind == 'storm':
        extra: list[Item] = []
        by_stream: dict[str, list[Item]] = {}
        for it in items:
            if it.stream in STREAMS:
                by_stream.setdefault(it.stream, []).append(it)
        for stream, rows in by_stream.items():
            stamps = np.array([it.m.stamp for it in rows])
            period = float(np.median(np.diff(stamps))) if len(stamps) > 2 else 0.1
            if stream == 'uwb':
                period = 0.1 / max(len(site.anchors), 1)
            period = max(period, 1e-3)
            for it in rows:
                if c.t0 <= it.play < c.t1:
                    for k in range(1, storm_factor):
                        dt = k * period / storm_factor
                        extra.append(Item(it.play + dt, stream, restamp(it.m, it.m.stamp + dt, None), c.name,
                                          'storm'))
        plan.sent[(c.name, 'extra')] = len(extra)
        plan.items = items + extra
        plan.slow.append((c.t0, c.t1 + 0.5))
    elif c.kind == 'hostile':
        latest: dict[str, Any] = {}
        extra = []
        kinds = [k for k in HOSTILE if HOSTILE[k][0] in {it.stream for it in items}]
        n = max(1, int(round((c.t1 - c.t0) * hostile_rate)))
        j = 0
        sched = sorted((c.t0 + (i + (ki + 0.5) / len(kinds)) * (c.t1 - c.t0) / n, k)
                       for i in range(n) for ki, k in enumerate(kinds))
        for it in sorted(items, key=lambda it: it.play):
            while j < len(sched) and sched[j][0] <= it.play:
                p, kind = sched[j]
                j += 1
                if HOSTILE[kind][0] in latest:
                    stream, m = hostile(kind, latest, p + EPOCH, site)
                    extra.append(Item(p, stream, m, c.name, kind))
                    plan.sent[(c.name, kind)] += 1
            if it.stream in STREAMS and not it.case:
                latest[it.stream] = it.m
        plan.items = items + extra
    elif c.kind == 'big_cloud':
        # a dense lidar: the real cloud of that moment repeated (with 1 cm jitter) up to 2M points
        n = 2_000_000
        rng = np.random.default_rng(0)
        real = [it for it in items if it.stream == 'points' and not it.case]
        for k in range(BIG_SENDS):
            p = c.t0 + k * 2.5 / BIG_SENDS
            base = max((it for it in real if it.play <= p), key=lambda it: it.play, default=None)
            src_xyz = base.m.xyz[np.all(np.isfinite(base.m.xyz), axis=1)] if base is not None else np.zeros((0, 3))
            if len(src_xyz) == 0:
                src_xyz = rng.uniform(-10, 10, (1000, 3)).astype(np.float32)
            xyz = np.tile(src_xyz, (-(-n // len(src_xyz)), 1))[:n]
            xyz = (xyz + rng.normal(0.0, 0.01, xyz.shape)).astype(np.float32)
            cloud = PointCloud(stamp=base.m.stamp + 1e-3 if base is not None else plan.stamp_at(p) + EPOCH,
                               frame_id=base.m.frame_id if base is not None else 'lidar3d', xyz=xyz)
            plan.items.append(Item(p, 'points', cloud, c.name, 'cloud_2M'))
            plan.sent[(c.name, 'cloud_2M')] += 1
        plan.slow.append((c.t0, c.t1))   # played at real time: each multi-MB message gets its time
    elif c.kind == 'big_image':
        img = Image(stamp=0.0, frame_id='camera_depth_optical_frame', encoding='16UC1',
                    data=np.full((4096, 4096), 2000, np.uint16))
        for k in range(BIG_SENDS):
            p = c.t0 + k * 2.5 / BIG_SENDS
            plan.items.append(Item(p, 'depth', img, c.name, 'image_4096', restamp=plan.stamp_at(p) - 0.02))
            plan.sent[(c.name, 'image_4096')] += 1
        plan.slow.append((c.t0, c.t1))
    elif c.kind == 'initialpose_bad':
        sc = plan.scenario
        p = c.t0
        true = gt_pose(sc, p)
        m = site.map
        far = np.array([m.origin[0] + 10 * m.grid.shape[1] * m.resolution + 1e3, 0.0, 0.0]) if m is not None \
            else np.array([1e6, 0.0, 0.0])
        bad = [('odom', true, 'initialpose_wrong_frame'), ('map', far, 'initialpose_outside_map'),
               ('map', np.array([np.nan, 0.0, 0.0]), 'initialpose_nan')]
        for i, (frame, pose, kind) in enumerate(bad):
            q = p + 0.4 * i
            plan.items.append(Item(q, 'initialpose', _pose_msg(plan.stamp_at(q) + EPOCH, frame, pose), c.name, kind))
            plan.sent[(c.name, kind)] += 1
    if c.kind in ('kidnap', 'loop'):
        # played at real time: a global relocalization takes ~1 s of CPU here, and how long the node is lost must
        # be judged in the robot's time, not at 3x
        plan.slow.append((c.t0, c.t1))
    if c.kind in ('kidnap', 'loop') and operator:
        q = c.t0 + 2.0
        plan.items.append(Item(q, 'initialpose', None, c.name, 'operator_initialpose'))
        plan.sent[(c.name, 'operator_initialpose')] += 1
    plan.items.sort(key=lambda it: it.play)
    if c.kind in ('kidnap', 'loop') and operator:
        # the operator's pose is the truth at that play time (known once the segments exist)
        for it in plan.items:
            if it.case == c.name and it.kind == 'operator_initialpose':
                seg = plan.segment_at(it.play)
                true = gt_pose(plan.scenario, it.play + seg.source_offset)
                it.m = _pose_msg(plan.stamp_at(it.play) + EPOCH, 'map', true)
                plan.operator[c.name] = (it.play, true)

