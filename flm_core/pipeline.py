"""The localizer, without ROS: the one class the node runs live and ``flm-eval`` runs offline.

Data flow::

    measurements --offer()--> SensorFrontEnd (checks, time buffer, counters)
                                 | accepted odometry / IMU: propagate the filter at their own stamps
                                 v
    update(t) --window [t-W, t]--> pose source (the FLM; tracking with the filter's prior, or global)
                                   | pose + covariance, gated into the filter at the window's stamp
                                   v
    estimate(t) <-- Eskf: pose + covariance of base_link in map, map->odom (REP-105)

``step(t)`` is ``update(t)`` then ``estimate(t)`` (``flm-eval``); the node publishes ``estimate`` on every tick and
runs ``update`` on its own thread, so the output never waits for the model.

States: ``initializing`` (no pose yet: global localization once enough data is buffered, or an initial pose),
``tracking``, ``lost`` (the model's poses keep failing the gate, or the covariance grew past a bound) which triggers
``relocalizing`` (global localization, then tracking again; until it succeeds the published position std is at least
half the site's extent, or ``lost_std``: the robot may be anywhere, as AMCL's spread-out particles say). A
relocalization after the model's poses kept failing the gate uses only exteroceptive data stamped from the first
failure on: data from before a kidnap describes another place and would pull the global result between the two. A
global result can be ambiguous (a symmetric building looks the same from several places): rival hypotheses that
scored close to the winner are kept, each with a filter of its own, tracked in one model batch with the winner's
prior and weighed by the model's scores over the following updates (a pose source that finds a hypothesis
inconsistent with the window scores it 0); the pipeline switches to a rival that pulls ahead, also when the winner's
own update is :class:`Inconsistent`, drops those that fall behind or fail the gate, and stays ``relocalizing`` with
a covariance that spans all of them until one is left. A global result is not trusted until tracking confirms it:
until ``confirm_updates`` consecutive model poses after it have been accepted (a pose the solve finds inconsistent,
or one the filter's gate rejects, starts the count again; so does a switch to a rival) the published covariance stays
as wide as while lost, so a wrong global result (a place that fits one window by chance) is never published as a
confident one. A time jump backwards (bag loop) resets everything to ``initializing``.

After a blackout (no measurement of any stream for ``blackout`` s) the filter has run on held inputs alone, so the
first data back (often an IMU sample, before the first scan) would publish that stale dead-reckoning and the pose
would jump when the model corrects it: until a model pose is accepted again (or the pipeline declares itself lost,
with the covariance that says so) :meth:`Pipeline.estimate` returns None, as before the first pose.

No ROS imports; SI units; REP-103/REP-105 frames; poses are planar (x, y, yaw).
"""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

from flm_core.estimation.course import MIN_LEVER_ARM, ROBOT_MODELS, Course
from flm_core.estimation.drift import HeadingDrift
from flm_core.estimation.eskf import VX, VY, YAW, Eskf, EskfConfig, heading_model
from flm_core.estimation.frames import map_to_odom
from flm_core.frontend import SensorFrontEnd
from flm_core.geometry import mixture_cov, quat_to_yaw, quat_to_yaw_float, wrap_angle
from flm_core.imu import tilt_rate
from flm_core.measurements import ImuSample, OdometrySample
from flm_core.site import Site
from flm_core.timebuffer import Verdict


class PoseSource(Protocol):
    """What the pipeline needs of a localizer (the FLM's ``Localizer`` or a classical baseline): the robot pose
    in the map at stamp ``t`` from the measurement window, with covariance; ``prior_pose`` None = global mode;
    ``rig`` says where the sensors sit on the robot (:class:`flm_core.model.tokens.Rig`). Returns an object with
    ``pose`` (3,), ``cov`` (3, 3) and optionally ``health`` (dict) and ``mode``; or None when it cannot localize
    from this window (nothing new in it, too little data); or, tracking, :class:`Inconsistent` when the window
    contradicts the poses it could solve from."""

    def localize(self, window: dict[str, list[tuple[float, Any]]], site: Site, t: float,
                 prior_pose: np.ndarray | None = None, prior_cov: np.ndarray | None = None,
                 rig: Any = None) -> Any: ...


@dataclass(frozen=True)
class Inconsistent:
    """What a pose source returns in tracking mode when the window's measurements contradict every pose it could
    solve from (a kidnap, a world that changed): nothing to fuse, and one more sign of being lost, counted like a
    model pose the filter's gate rejected (``lost_after_rejections``)."""

    why: str = 'inconsistent'


MAX_EVENTS = 500        # events kept: the first FIRST_EVENTS and the newest; all are counted by kind
FIRST_EVENTS = 50
ROUTINE_KEEP = 20       # routine events (blackouts: a sparse log has hundreds) listed per kind; the rest only counted
RIVAL_REJECTIONS = 3     # consecutive gated model poses that rule a rival hypothesis out


class State(str, Enum):
    INITIALIZING = 'initializing'
    TRACKING = 'tracking'
    LOST = 'lost'
    RELOCALIZING = 'relocalizing'


@dataclass(frozen=True)
class PipelineConfig:
    """global_on_start: localize globally when no initial pose is given (at start and after a time jump back; when
    False the pipeline waits for :meth:`set_initial_pose`, as AMCL without global initialisation); min_global_data:
    s of buffered absolute (exteroceptive) data before a global attempt; global_max_std: m, a global result is
    accepted when its position std is below this; lost_after_rejections: consecutive gated or inconsistent model
    poses that mean 'lost' (10, a second at 10 Hz: with 5, half a second of a depth camera's view filled by unmapped
    clutter threw a 2 cm-accurate track away for a wrong global result); lost_std: m of filter position std that
    means 'lost'; max_hypotheses: poses kept after a global result (the winner and rivals whose score is within
    ``hypothesis_margin`` of it and that lie >= 1 m / 0.5 rad away; 1 = the winner only); hypothesis_lead: the
    lead in accumulated log-score (forgetting factor 0.9 per update) that decides between them; confirm_updates:
    consecutive accepted model poses after a global result before its covariance is published (until then: as wide
    as while lost; 0: at once); process: the filter's process model,
    'auto' (IMU-driven from the first IMU sample on, odometry-driven from the first odometry sample while there is
    no IMU, constant velocity while there is neither), 'odom', 'imu' or 'cv'; model_streams: streams handed to the
    model (others only drive the filter); absolute_streams: the streams that localize (without any of them in the
    window the pose source is not asked: IMU/odometry only propagate); blackout: s without any measurement after
    which nothing is published until the sensors have re-anchored the estimate (see the module docstring);
    robot_model: 'differential' (base_link does not slide sideways) or 'omnidirectional', as AMCL's
    robot_model_type: a differential robot whose pose source does not observe the heading (one UWB tag, off
    base_link) takes it from its track (:mod:`flm_core.estimation.course`: the straight-line fit of the last
    ``course_window`` s of positions, forward while the heading is unknown, ``course_slip`` rad the std of its side
    slip); odom_heading_drift: rad/m, std of the odometry's systematic heading error per metre driven (unequal
    wheels): while an odometry-driven filter dead-reckons, the published covariance includes it
    (:mod:`flm_core.estimation.drift`; the filter's own random walk does not grow like a bias; 0: off)."""

    global_on_start: bool = True
    min_global_data: float = 1.0
    global_max_std: float = 1.0
    lost_after_rejections: int = 10
    lost_std: float = 3.0
    max_hypotheses: int = 4
    hypothesis_margin: float = 0.3
    hypothesis_lead: float = 3.0
    confirm_updates: int = 3
    blackout: float = 1.0
    process: str = 'auto'
    model_streams: tuple[str, ...] = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')
    absolute_streams: tuple[str, ...] = ('scan', 'points', 'depth', 'uwb')
    robot_model: str = 'differential'
    course_window: float = 1.0
    course_slip: float = 0.1
    odom_heading_drift: float = 0.05
    eskf: EskfConfig = field(default_factory=EskfConfig)


@dataclass
class StepResult:
    """The output of :meth:`Pipeline.estimate` (and :meth:`Pipeline.step`): the estimate at ``stamp``."""

    stamp: float                     # s, the stamp the estimate is for
    pose: np.ndarray                 # (3,) x, y, yaw of base_link in map
    cov: np.ndarray                  # (3, 3)
    map_to_odom: np.ndarray          # (3,) x, y, yaw of odom in map
    state: State
    model_latency: float | None      # s of wall time the pose source took this step (None if not run)
    update: str                      # what the filter did with the model pose ('accepted', 'rejected', ...)
    health: dict[str, float] = field(default_factory=dict)
    hypotheses: int = 1              # poses still in the running after an ambiguous global result (cov spans them)


@dataclass
class Update:
    """What one :meth:`Pipeline.update` did at ``stamp``."""

    stamp: float                     # s, the stamp of the window the pose source saw
    model_latency: float | None      # s of wall time the pose source took (None if not run)
    update: str                      # what the filter did with the model pose ('accepted', 'rejected', 'global', ...)
    health: dict[str, float] = field(default_factory=dict)


@dataclass
class Rival:
    """A rival hypothesis after an ambiguous global result: a filter of its own (fed the same odometry/IMU and
    its own model updates) and its accumulated model log-score."""

    filter: Eskf
    logscore: float = 0.0


def odom_pose(m: OdometrySample) -> np.ndarray:
    """(3,) x, y, yaw of an odometry sample."""
    return np.array([float(m.position[0]), float(m.position[1]), quat_to_yaw_float(m.orientation.tolist())])


class Pipeline:
    """See the module docstring. Thread-safe: ``offer`` (sensor threads) and ``step`` (the inference thread)
    may run concurrently."""

    def __init__(self, config: PipelineConfig, site: Site, source: PoseSource | None,
                 front: SensorFrontEnd, enabled: list[str]) -> None:
        self.config = config
        self.site = site
        self.source = source
        self.front = front
        self.enabled = list(enabled)
        if config.process not in ('auto', 'odom', 'imu', 'cv'):
            raise ValueError(f"PipelineConfig.process must be 'auto', 'odom', 'imu' or 'cv', got {config.process!r}")
        if config.robot_model not in ROBOT_MODELS:
            raise ValueError(f'PipelineConfig.robot_model must be one of {ROBOT_MODELS}, got {config.robot_model!r}')
        self._process = 'cv'   # the process model of the current filter (set by _new_filter)
        self._course = Course(config.course_window, slip=config.course_slip)
        self._course_t: float | None = None               # stamp of the last course fused
        self._course_filter: Eskf | None = None           # the filter whose positions the track holds
        self._drift = HeadingDrift()                      # the odometry's heading drift since the heading was known
        self._drift_filter: Eskf | None = None            # the filter whose path it follows
        self.lock = threading.RLock()   # hold it to read the filter and the hypotheses together
        self._retired_counts: dict[str, Counter[str]] = {}
        self.filter = self._new_filter()
        self.state = State.INITIALIZING
        self.events: list[tuple[float, str]] = []       # (stamp, what): relocalizations, resets, initial poses
        self.events_total = 0                           # events ever listed; ``events`` keeps the first and newest
        self.event_counts: Counter[str] = Counter()     # every event by kind (see _event)
        self._global_requested = config.global_on_start
        self._global_since: float | None = None          # relocalize from absolute data stamped at or after this
        self._suspect_since: float | None = None         # stamp of the first of the current run of gated model poses
        self._rivals: list[Rival] = []                    # after an ambiguous global result
        self._logscore = 0.0                              # the filter's hypothesis, accumulated like the rivals'
        self._last_step_t: float | None = None
        self._reanchor = False                            # after a blackout: publish again once re-anchored
        self._pending_initial: tuple[np.ndarray, np.ndarray] | None = None   # an initial pose before any data
        self._inconsistent = 0                            # consecutive Inconsistent answers of the pose source
        self._health: dict[str, float] = {}               # per-modality health of the last model pose
        self._floor: np.ndarray | None = None              # (3,) std no filter averages away (the last pose's floor)
        self._unconfirmed = 0                               # accepted model poses a global result still needs
        self.rig: Any = None  # where the sensors sit on the robot, handed to the pose source (set by the caller)

    # ------------------------------------------------------------------ inputs
    def offer(self, stream: str, m: Any, now: float | None) -> Verdict | str:
        """Check and buffer a measurement; odometry/IMU that are accepted also drive the filter."""
        return self.admit(stream, m, now)[0]

    def admit(self, stream: str, m: Any, now: float | None) -> tuple[Verdict | str, Any]:
        """:meth:`offer`, also returning the measurement as the front end buffered it (an IMU sample levelled)."""
        with self.lock:
            resets, before = self.front.buffer.resets, self.front.buffer.latest
            v, m = self.front.admit(stream, m, now)
            if self._pending_initial is not None and v in (Verdict.ACCEPTED, Verdict.RESET):
                self.set_initial_pose(*self._pending_initial, stamp=float(m.stamp))
            if v == Verdict.RESET or self.front.buffer.resets != resets:  # (the message may be from before it)
                self._restart(float(m.stamp) if v == Verdict.RESET else float(now if now is not None else m.stamp),
                              'time jumped back: restarted')
            if v == Verdict.ACCEPTED and before is not None and float(m.stamp) - before > self.config.blackout \
                    and self.filter.initialized and self.source is not None and not self._reanchor:
                self._reanchor = True
                self._event(float(m.stamp), f'blackout of {float(m.stamp) - before:.1f} s: waiting for the sensors',
                            routine='blackout')
            if v == Verdict.ACCEPTED and stream in ('imu', 'odom') and self.config.process == 'auto' \
                    and self.filter.initialized and self._process != self._auto_process():
                self._switch_process(float(m.stamp))
            if v in (Verdict.ACCEPTED, Verdict.RESET) and self.filter.initialized:
                for filt in [self.filter] + [r.filter for r in self._rivals]:
                    self._propagate(filt, stream, m)
            return v, m

    def _switch_process(self, stamp: float) -> None:
        """Process model 'auto' and the first IMU (or odometry) sample after the filter started without one (an
        initial pose given before any such data, e.g. ``set_initial_pose`` at activation): carry the pose, its
        covariance and the velocity over to a filter of the process the data now calls for, at the sample's stamp,
        so that 'auto' means the same whichever came first. Inputs stamped after the sample and already buffered
        are re-applied on top."""
        def carried(filt: Eskf) -> Eskf:
            x, P = filt.state_at(stamp)
            return self._new_filter_at(x[:3], P[:3, :3], stamp, velocity=x[VX:VY + 1])
        self._retire(self.filter)
        self.filter = carried(self.filter)
        for r in self._rivals:
            r.filter = carried(r.filter)
        label = {'imu': 'IMU', 'odom': 'odometry'}[self._process]   # 'cv' is never switched to: it means no data
        self._event(stamp, f'{label} data: the filter is {label}-driven from now on', routine='process switch')

    @staticmethod
    def _propagate(filt: Eskf, stream: str, m: Any) -> None:
        if stream == 'odom' and isinstance(m, OdometrySample):
            tw = np.array([m.linear_velocity[0], m.linear_velocity[1], m.angular_velocity[2]])
            filt.predict_odom(m.stamp, odom_pose(m), tw)
        elif stream == 'imu' and isinstance(m, ImuSample):
            w = m.angular_velocity
            filt.predict_imu(m.stamp, float(w[2]), m.linear_acceleration[:2], tilt_rate(w))

    @property
    def process(self) -> str:
        """The process model of the current filter: 'imu', 'odom' or 'cv' (what 'auto' resolved to)."""
        return self._process

    def _auto_process(self) -> str:
        """The process model 'auto' stands for now: 'imu' when IMU data is arriving (the gyro is not fooled by
        wheel slip and the filter keeps moving through an odometry gap; odometry becomes a velocity measurement),
        else 'odom' when odometry is, else 'cv' (neither: a constant-velocity model whose process noise is the
        robot's own acceleration, as a UWB-only tag needs)."""
        buf = self.front.buffer
        if 'imu' in self.enabled and buf.last_stamp('imu') is not None:
            return 'imu'
        if 'odom' in self.enabled and buf.last_stamp('odom') is not None:
            return 'odom'
        return 'cv'

    def _new_filter(self) -> Eskf:
        """A fresh filter of the configured process model (see :meth:`_auto_process` for 'auto')."""
        proc = self.config.process
        if proc == 'auto':
            proc = self._auto_process()
        self._process = proc
        return Eskf(_with_process(self.config.eskf, proc))

    def _follow_course(self, t: float, pose: np.ndarray, cov: np.ndarray) -> None:
        """A differential robot whose UWB tag sits off base_link: the pose at t joins the track, and the heading the
        track gives is fused (at the track's mean stamp) where it says more than the pose source's own (one tag:
        nothing), so that the tag's lever arm can be taken off (see :mod:`flm_core.estimation.course`). Consecutive
        courses share most of their positions: each is weighted as one per ``course_window`` (its variance times
        the window over the time since the last one fused, at least 1), gated on its own variance. A tag at
        base_link needs no heading for the position, and the course is not fused there: on generated robots that
        also back up, a heading guessed forward did more harm than good (docs/benchmarks.md). The track belongs to
        one filter: any other (a reset, a restart, a switch to a rival or to another process model) starts a new
        one."""
        if self._course_filter is not self.filter:
            self._course.clear()
            self._course_t, self._course_filter = None, self.filter
        tag = getattr(self.rig, 'tag_mount', None)
        if self.config.robot_model != 'differential' or tag is None or cov[2, 2] <= self._course.slip ** 2 \
                or math.hypot(*tag('')[:2]) < MIN_LEVER_ARM:
            return                    # (no course is better than the slip: a heading that good needs none)
        self._course.add(t, pose[:2])
        x, P = self.filter.state_at(t)
        known = P[YAW, YAW] < (math.pi / 4) ** 2
        h = self._course.heading(float(x[YAW]) if known else None)
        if h is None or h[2] >= cov[2, 2]:
            return
        stamp, yaw, var = h
        since = t - self._course_t if self._course_t is not None and t > self._course_t else math.inf
        r = self.filter.update(stamp, [yaw], heading_model, np.array([[var * max(1.0, self._course.window / since)]]),
                               source='course', angle_indices=(0,), gate_R=np.array([[var]]))
        if r.accepted:
            self._course_t = t

    def _follow_drift(self, t: float, est: Any) -> None:
        """An odometry-driven filter's path for the odometry's heading drift (:mod:`flm_core.estimation.drift`):
        the filter's pose at t joins it, or, with ``est`` (a model pose the filter accepted at t), corrects it. A
        new filter starts a new path."""
        sigma = self.config.odom_heading_drift
        if sigma <= 0 or self._process != 'odom' or not self.filter.initialized:
            return
        pose = self.filter.pose_at(t)[0]
        if self._drift_filter is not self.filter:
            self._drift.restart(pose)
            self._drift_filter = self.filter
        elif est is not None:
            self._drift.observe(pose, est.cov, sigma)
        else:
            self._drift.add(pose)

    def _restart(self, stamp: float, why: str) -> None:
        self._inconsistent = 0
        self._retire(self.filter)
        self.filter = self._new_filter()
        self.state = State.INITIALIZING
        self._global_requested = self.config.global_on_start  # as at start: else wait for an initial pose
        self._global_since = self._suspect_since = None
        self._rivals = []
        self._reanchor = False
        self._event(stamp, why)

    def set_site(self, site: Site, source: PoseSource | None) -> np.ndarray | None:
        """A new site (a new map) and the pose source built for it, between two updates; returns the current pose
        (3,) (None before the first) so the caller can tell whether it is still on the new map."""
        with self.lock:
            self.site, self.source = site, source
            return self.filter.pose.copy() if self.filter.initialized else None

    def hypotheses(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(poses (K, 3) x, y, yaw in the map, weights (K,) summing to 1) at stamp t: the filter's pose first, then
        the rival hypotheses kept after an ambiguous global localization, weighted by their share of the accumulated
        model likelihood (softmax of the log-scores); with one hypothesis its weight is 1. None before the first
        pose."""
        with self.lock:
            if not self.filter.initialized:
                return None
            poses = [self.filter.pose_at(t)[0]] + [r.filter.pose_at(t)[0] for r in self._rivals]
            logs = np.array([self._logscore] + [r.logscore for r in self._rivals], dtype=np.float64)
        w = np.exp(logs - logs.max())
        return np.stack(poses), w / w.sum()

    def set_initial_pose(self, pose: np.ndarray, cov: np.ndarray, stamp: float | None = None) -> None:
        """A user's initial pose (``/initialpose``): re-initialise the filter there and track from it. Without a
        stamp and before any data it waits for the first accepted measurement and applies at its stamp (a filter
        reset at stamp 0 would have to propagate up to the first real stamp)."""
        with self.lock:
            if stamp is None and self.front.buffer.latest is None:
                self._pending_initial = (np.asarray(pose, float), np.asarray(cov, float))
                return
            self._pending_initial = None
            t = stamp if stamp is not None else self.front.buffer.latest
            if self.filter.stamp is not None and t < self.filter.stamp:
                t = self.filter.stamp  # the filter cannot reset before what it already applied
            self._reset_filter(pose, cov, t)
            self.state = State.TRACKING
            self._unconfirmed = 0      # the user's pose needs no confirmation
            self._global_requested = False
            self._global_since = self._suspect_since = None
            self._rivals = []
            self._reanchor = False
            self._event(t, 'initial pose')

    def request_global(self) -> None:
        """Relocalize globally at the next step (the ``reinitialize_global_localization`` service)."""
        with self.lock:
            self._global_requested = True
            self._global_since = None
            if self.state == State.TRACKING:
                self.state = State.RELOCALIZING

    def _replay_inputs(self, filt: Eskf, t0: float) -> None:
        """Feed buffered odometry/IMU after t0 to a freshly reset filter."""
        latest = self.front.buffer.latest
        if latest is None:
            return
        w = self.front.buffer.window(latest, latest - t0, streams=['odom', 'imu'])
        items = sorted(((s, name, m) for name in ('odom', 'imu') for s, m in w[name] if s > t0),
                       key=lambda e: e[0])
        for _, name, m in items:
            self._propagate(filt, name, m)

    # ------------------------------------------------------------------ outputs
    def map_to_odom(self, pose: np.ndarray, t: float) -> np.ndarray:
        """(3,) odom in map, from the map pose of base_link and the odometry pose at stamp t (REP-105). Without
        odometry, odom coincides with base_link's estimate (map->odom = map->base)."""
        try:
            p, q = self.front.buffer.interpolate_pose(
                'odom', t, lambda m: (m.position, m.orientation), max_extrapolation=0.2)
        except LookupError:
            return np.asarray(pose, float).copy()
        return map_to_odom(pose, np.array([p[0], p[1], float(quat_to_yaw(q))]))

    def step(self, t: float | None = None) -> StepResult | None:
        """Localize at stamp t (default: the newest buffered stamp): :meth:`update`, then :meth:`estimate` at the
        same stamp. Returns None before the first pose (and while re-anchoring after a blackout)."""
        u = self.update(t)
        return None if u is None else self.estimate(u.stamp, u)

    def update(self, t: float | None = None) -> Update | None:
        """Run the pose source on the window that ends at stamp t (default: the newest buffered stamp) and fuse its
        answer into the filter; no output (see :meth:`estimate`). None when there is no data yet, or when the
        filter was reset while the pose source ran (an initial pose, a time jump: the result is obsolete).

        The pose source runs only on new data (an update at the stamp of the previous one does nothing: the same
        window fused twice would shrink the covariance with no information) and only when the window holds data of
        an absolute sensor (``absolute_streams``); otherwise the filter dead-reckons on odometry/IMU and its
        covariance grows. The pose source runs outside the lock, so :meth:`offer` (sensor callbacks) and
        :meth:`estimate` never wait for inference."""
        with self.lock:
            buf = self.front.buffer
            t = buf.latest if t is None else t
            if t is None:
                return None
            fresh = t != self._last_step_t
            self._last_step_t = t
            window = buf.window(t, streams=[s for s in self.config.model_streams if s in self.enabled])
            absolute = any(window.get(s) for s in self.config.absolute_streams)
            filt, mode, prior, prior_cov = self.filter, None, None, None
            if self.source is not None and fresh and absolute:
                if self._global_requested or not filt.initialized:
                    wanted = self._global_requested or self.config.global_on_start  # else: wait for a pose
                    if self._global_since is not None:
                        window = self._since(window, self._global_since)
                    if wanted and self._data_span(window) >= self.config.min_global_data:
                        mode = 'global'
                        self.state = State.RELOCALIZING if self.state != State.INITIALIZING else self.state
                else:
                    mode = 'tracking'
                    prior, prior_cov = filt.pose_at(t)
            rivals = list(self._rivals) if mode == 'tracking' else []
            rival_priors = [r.filter.pose_at(t) for r in rivals]
        latency, est, rival_out, score = None, None, None, 0.0
        if mode is not None:
            t0 = time.perf_counter()
            if mode == 'global':
                est = self.source.localize(window, self.site, t, rig=self.rig)
            else:
                est = self.source.localize(window, self.site, t, prior, prior_cov, rig=self.rig)
                if rivals and est is not None:   # the winner scored by the same call as its rivals, from its prior
                    out = self.source.track_many(window, self.site, t,
                                                 np.stack([prior] + [p for p, _ in rival_priors]),
                                                 np.stack([prior_cov] + [c for _, c in rival_priors]), rig=self.rig)
                    score, rival_out = float(out[2][0]), tuple(a[1:] for a in out)
            latency = time.perf_counter() - t0
        with self.lock:
            update, health = 'none', {}
            if mode is not None and self.filter is not filt:
                return None  # reset while the pose source ran (initial pose, time jump): the result is obsolete
            elif mode == 'global':
                if est is not None and max_position_std(est.cov) <= self.config.global_max_std:
                    self._reset_at(est.pose, est.cov, t)
                    self._floor = getattr(est, 'floor', None)
                    self._keep_rivals(est, t)
                    update, health = 'global', dict(getattr(est, 'health', {}) or {})
            elif mode == 'tracking' and isinstance(est, Inconsistent):
                update = 'inconsistent'
                self._confirm(t, False)
                if rival_out is not None and len(rivals) == len(self._rivals) \
                        and self._weigh_rivals(t, 0.0, rival_out):
                    self._inconsistent = 0      # the data ruled the winner out and a rival in: go on from the rival
                    self._suspect_since = None
                else:
                    self._inconsistent += 1
                    if self._suspect_since is None:
                        self._suspect_since = t
            elif mode == 'tracking' and est is not None:
                r = self.filter.update_pose(t, est.pose, est.cov, source='model')
                if r.accepted:
                    self._floor = getattr(est, 'floor', None)
                    self._follow_course(t, est.pose, est.cov)
                self._confirm(t, r.accepted)
                self._inconsistent = 0
                update, health = r.value, dict(getattr(est, 'health', {}) or {})
                if self.filter.consecutive_rejections('model') == 0:
                    self._suspect_since = None
                elif self._suspect_since is None:
                    self._suspect_since = t
                if rival_out is not None and len(rivals) == len(self._rivals):
                    self._weigh_rivals(t, score, rival_out)
            if fresh:
                self._follow_drift(t, est if update == 'accepted' else None)
            if fresh and self.state in (State.TRACKING, State.RELOCALIZING) and not self._global_requested \
                    and self.filter.initialized and self._diverged():
                self.state = State.LOST
                self._event(t, 'lost')
                self._global_requested = True
                self._global_since = self._suspect_since
                self._rivals = []
            if self._reanchor and (update == 'accepted' or self.state == State.LOST):
                self._reanchor = False
            if health:
                self._health = health
            return Update(stamp=t, model_latency=latency, update=update, health=health)

    def estimate(self, t: float | None = None, update: Update | None = None) -> StepResult | None:
        """The estimate at stamp t (default: the newest buffered stamp) from the filter as it stands: every
        odometry/IMU sample and every fused pose so far, without running the pose source (cheap: the node publishes
        it on every tick while the model runs on its own thread). ``update``: the :class:`Update` this estimate
        follows, whose latency, verdict and health it reports. None before the first pose and while re-anchoring
        after a blackout. While rival hypotheses remain the covariance spans them; while lost (or asked to
        relocalize) it spans the site."""
        with self.lock:
            t = self.front.buffer.latest if t is None else t
            if t is None or not self.filter.initialized or (self._reanchor and not self._global_requested):
                return None
            pose, cov = self.filter.pose_at(t)
            if self._drift_filter is self.filter and self._process == 'odom':
                cov = cov + self._drift.covariance(pose, self.config.odom_heading_drift)
            cov = floored(cov, self._floor)
            if self._rivals:
                cov = self._spread(t, pose, cov)
            if self._global_requested or self._unconfirmed:
                # lost, asked to relocalize, or a global result not yet confirmed: the robot may be anywhere
                cov = cov.copy()
                var = max(self.config.lost_std, self.site.extent() / 2.0) ** 2
                cov[0, 0], cov[1, 1] = max(cov[0, 0], var), max(cov[1, 1], var)
                cov[2, 2] = max(cov[2, 2], (np.pi / 2) ** 2)
            return StepResult(stamp=t, pose=pose, cov=cov, map_to_odom=self.map_to_odom(pose, t), state=self.state,
                              model_latency=update.model_latency if update else None,
                              update=update.update if update else 'none',
                              health=update.health if update else dict(self._health),
                              hypotheses=1 + len(self._rivals))

    def pose_at(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(pose (3,), cov (3, 3)) of the filter at stamp t (e.g. the clock's now: the uncertainty while no data
        arrives), or None before the first pose."""
        with self.lock:
            if not self.filter.initialized:
                return None
            return self.filter.pose_at(t)

    def _event(self, stamp: float, what: str, routine: str | None = None) -> None:
        """Record an event. Every one is counted by kind (``routine``, else the text before its first ':');
        routine ones (that recur with the data, as blackouts in a log of sparse keyframes) are listed only
        ROUTINE_KEEP times, so that the first and the important ones (global localization, lost, ambiguous,
        resolved) are never pushed out by them."""
        kind = routine or what.split(':')[0]
        self.event_counts[kind] += 1
        if routine and self.event_counts[kind] > ROUTINE_KEEP:
            return
        self.events.append((stamp, what))
        self.events_total += 1
        if len(self.events) > MAX_EVENTS:
            del self.events[FIRST_EVENTS]

    def _new_filter_at(self, pose: np.ndarray, cov: np.ndarray, t: float,
                       velocity: np.ndarray | None = None) -> Eskf:
        """A fresh filter reset at pose/cov (and velocity (2,) in the map, default 0) at stamp t, brought up to date
        with the buffered odometry/IMU."""
        fresh = self._new_filter()
        fresh.reset(np.asarray(pose, float), np.asarray(cov, float), stamp=t, velocity=velocity)
        self._replay_inputs(fresh, t)
        return fresh

    def _reset_filter(self, pose: np.ndarray, cov: np.ndarray, t: float) -> None:
        self._inconsistent = 0
        self._retire(self.filter)
        self.filter = self._new_filter_at(pose, cov, t)

    def _retire(self, filt: Eskf) -> None:
        """Keep the counters of a filter that is replaced (a reset, a relocalization), for :meth:`filter_counts`."""
        for source, c in filt.counts.items():
            self._retired_counts.setdefault(source, Counter()).update(c)

    def filter_counts(self) -> dict[str, dict[str, int]]:
        """What the filters did with each source (accepted, rejected, ...) over the whole run: the current filter's
        counters plus those of every filter it replaced."""
        with self.lock:
            out = {k: Counter(v) for k, v in self._retired_counts.items()}
            for source, c in self.filter.counts.items():
                out.setdefault(source, Counter()).update(c)
            return {k: dict(v) for k, v in out.items()}

    def _reset_at(self, pose: np.ndarray, cov: np.ndarray, t: float) -> None:
        self._reset_filter(pose, cov, t)
        self._event(t, 'global localization' if self.state == State.INITIALIZING else 'relocalized')
        self.state = State.TRACKING
        self._global_requested = False
        self._global_since = self._suspect_since = None
        self._reanchor = False
        self._unconfirmed = self.config.confirm_updates

    def _confirm(self, t: float, accepted: bool) -> None:
        """Count a tracking pose toward confirming the global result (``confirm_updates`` in a row)."""
        if not self._unconfirmed:
            return
        self._unconfirmed = self._unconfirmed - 1 if accepted else self.config.confirm_updates
        if not self._unconfirmed:
            self._event(t, 'global result confirmed by tracking')

    # ------------------------------------------------------------------ rival hypotheses
    def _keep_rivals(self, est: Any, t: float) -> None:
        """After a global reset at ``est.pose``: keep the distinct alternatives that scored close to it, each with a
        filter of its own."""
        self._rivals, self._logscore = [], 0.0
        alt = getattr(est, 'alternatives', None)
        if alt is None or self.config.max_hypotheses <= 1 or not hasattr(self.source, 'track_many'):
            return
        best = float(getattr(est, 'score', 0.0))
        kept = [np.asarray(est.pose, float)]
        for pose, cov, score in zip(*alt):
            if len(kept) >= self.config.max_hypotheses or score < best - self.config.hypothesis_margin:
                break
            if any(np.hypot(*(pose[:2] - k[:2])) < 1.0 and abs(wrap_angle(pose[2] - k[2])) < 0.5 for k in kept):
                continue
            kept.append(np.asarray(pose, float))
            self._rivals.append(Rival(self._new_filter_at(pose, cov, t)))
        if self._rivals:
            self.state = State.RELOCALIZING
            self._event(t, f'ambiguous: {1 + len(self._rivals)} hypotheses')

    def _weigh_rivals(self, t: float, score: float, out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
        """Update the rivals' filters and accumulated scores (forgetting factor 0.9); switch to a rival that leads
        by ``hypothesis_lead``, drop those that trail by it or keep failing the gate. ``score``: the winner's (0 when
        its pose source found the window inconsistent with it). Returns whether it switched."""
        lead = self.config.hypothesis_lead
        self._logscore = 0.9 * self._logscore + float(np.log(max(score, 1e-3)))
        for r, p, c, sc in zip(self._rivals, *out):
            r.filter.update_pose(t, p, c, source='model')
            r.logscore = 0.9 * r.logscore + float(np.log(max(float(sc), 1e-3)))
        best = max(self._rivals, key=lambda r: r.logscore)
        switched = best.logscore - self._logscore > lead
        if switched:
            self._rivals.remove(best)
            self._rivals.append(Rival(self.filter, self._logscore))
            self.filter, self._logscore = best.filter, best.logscore
            self._unconfirmed = self.config.confirm_updates
            self._event(t, 'switched to a rival hypothesis')
        self._rivals = [r for r in self._rivals if r.logscore >= self._logscore - lead
                        and r.filter.consecutive_rejections('model') < RIVAL_REJECTIONS]
        if not self._rivals:
            self.state = State.TRACKING
            self._event(t, 'ambiguity resolved')
        return switched

    def _spread(self, t: float, pose: np.ndarray, cov: np.ndarray) -> np.ndarray:
        """The covariance about ``pose`` of an equal mixture of it and the rivals (the model's scores are not
        calibrated probabilities: while undecided, every hypothesis counts)."""
        rivals = [r.filter.pose_at(t) for r in self._rivals]
        return mixture_cov(pose, [pose] + [p for p, _ in rivals], [cov] + [c for _, c in rivals],
                           np.ones(1 + len(rivals)))

    def _diverged(self) -> bool:
        if self.filter.consecutive_rejections('model') + self._inconsistent >= self.config.lost_after_rejections:
            return True
        return max_position_std(self.filter.pose_cov) > self.config.lost_std

    def _since(self, window: dict[str, list[tuple[float, Any]]], t0: float) -> dict[str, list[tuple[float, Any]]]:
        """The window with its absolute (exteroceptive) streams cut to stamps >= t0."""
        return {name: ([(s, m) for s, m in items if s >= t0] if name in self.config.absolute_streams else items)
                for name, items in window.items()}

    def _data_span(self, window: dict[str, list[tuple[float, Any]]]) -> float:
        """s between the oldest and the newest absolute (exteroceptive) measurement in the window."""
        stamps = [s for name, items in window.items() if name in self.config.absolute_streams for s, _ in items]
        return (max(stamps) - min(stamps)) if len(stamps) > 1 else 0.0


def floored(cov: np.ndarray, floor: np.ndarray | None) -> np.ndarray:
    """cov (3, 3) with each variance raised to at least floor**2 (floor: (3,) std m, m, rad, or None: cov as it
    is). The floor is the error consecutive poses share (the map's disagreement with the world): fusing ten poses a
    second does not average it away, however small the filter's covariance gets. Raising the diagonal adds a
    non-negative diagonal matrix, so the result stays positive semi-definite."""
    if floor is None:
        return cov
    out = np.array(cov, dtype=np.float64, copy=True)
    idx = np.arange(3)
    out[idx, idx] = np.maximum(out[idx, idx], np.square(floor))
    return out


def max_position_std(cov: np.ndarray) -> float:
    """Largest position standard deviation (m) of a pose covariance (3, 3); inf when it is not finite."""
    c = np.asarray(cov, float)[:2, :2]
    if not np.all(np.isfinite(c)):
        return float('inf')
    return float(np.sqrt(max(np.linalg.eigvalsh(0.5 * (c + c.T)).max(), 0.0)))


def _with_process(cfg: EskfConfig, process: str) -> EskfConfig:
    """The filter configuration of a process model; 'cv' is the IMU model with no IMU: zero held input, and the
    robot's own acceleration and turn rate (``cv_accel_noise``, ``cv_yaw_noise``) as its process noise."""
    import dataclasses
    if process == 'cv':
        return dataclasses.replace(cfg, process='imu', accel_noise=cfg.cv_accel_noise, gyro_noise=cfg.cv_yaw_noise)
    return dataclasses.replace(cfg, process=process)
