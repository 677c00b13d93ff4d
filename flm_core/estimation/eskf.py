"""Planar error-state Kalman filter: IMU and/or wheel odometry propagation, pose and classical corrections, gating,
delayed measurements, reset.

State (nominal ``x``, shape (8,), and error state with the same layout, covariance ``P`` (8, 8))::

    0 x, 1 y        position of base_link in the map frame, m
    2 yaw           heading, rad (the error is additive: SO(2) commutes, so this is exact)
    3 vx, 4 vy      velocity of base_link in the map frame, m/s
    5 bg            gyro z bias, rad/s
    6 bax, 7 bay    accelerometer x/y bias in the IMU (= body) frame, m/s^2: what the IMU adds to the horizontal
                    specific force, including the gravity that a roll or pitch of the platform leaks into it

Two process models (``EskfConfig.process``):

* ``'imu'`` (default): the gyro z rate and the planar specific force drive the prediction at the IMU rate; wheel
  odometry is a body-velocity measurement (vx, vy in base_link) at its own rate, gated like any other.
* ``'odom'``: odometry pose increments drive the prediction (robots without an IMU); the velocity is the held odometry
  twist rotated into the map (its error is re-drawn at each step, not integrated); IMU samples are ignored.

Between samples the last input is held (zero-order hold), so the filter can be brought to any stamp. An IMU
sample older than ``imu_max_hold`` s is missing, not reporting: the filter then coasts on the last motion it
measured (the held sample less the bias estimate, as a known input) and the IMU biases, which no new sample carries,
no longer move the pose (their variance still grows; a blackout of every sensor does not turn an uncertain
accelerometer bias into metres of position).

Every input and measurement is an event at its own header stamp. Events are kept, sorted by stamp, for
``EskfConfig.history`` seconds, each with a snapshot of the filter after it. An event older than the newest one
(a delayed model pose, an ICP result, an IMU sample that arrived late) restores the snapshot before its stamp and
re-applies every later event, so the result is the same as if it had arrived on time. Events older than the kept
history are refused as ``too_late`` (counted).

Corrections are gated on the Mahalanobis distance of the innovation (chi-square quantile ``gate_prob`` for the
measurement's dimension); rejections are counted per source (:attr:`Eskf.counts`). :meth:`Eskf.reset` (a new
initial pose, a global relocalization) is an event too, so it also applies at its own stamp.

No ROS imports; SI units; REP-103 frames (x forward, y left, yaw counter-clockwise from the map's x axis).
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

from ..geometry import wrap_angle, wrap_angle_float
from ..imu import GRAVITY

#: State indices.
PX, PY, YAW, VX, VY, BG, BAX, BAY = range(8)
DIM = 8
_S = np.array([[0.0, -1.0], [1.0, 0.0]])  # d R(th) / d th = S R(th)
_I8 = np.eye(DIM)
_Z8 = np.zeros((DIM, DIM))
# flat indices of the IMU step's transition matrix entries, in the order _imu_step writes them
_F_ENTRIES = ((PX, VX), (PX, YAW), (PX, BG), (PX, BAX), (PX, BAY),
              (PY, VY), (PY, YAW), (PY, BG), (PY, BAX), (PY, BAY),
              (VX, YAW), (VX, BG), (VX, BAX), (VX, BAY),
              (VY, YAW), (VY, BG), (VY, BAX), (VY, BAY),
              (YAW, BG))
_F_IDX = np.array([r * DIM + c for r, c in _F_ENTRIES])
# those of them that are derivatives with respect to a bias (zero while coasting)
_F_BIAS = _F_IDX[[k for k, (_, c) in enumerate(_F_ENTRIES) if c >= BG]]
# flat indices of its process noise entries, grouped by value: position, position-velocity, velocity, yaw, biases
_Q_GROUPS = (((PX, PX), (PY, PY)), ((PX, VX), (VX, PX), (PY, VY), (VY, PY)), ((VX, VX), (VY, VY)), ((YAW, YAW),),
             ((BG, BG),), ((BAX, BAX), (BAY, BAY)))
_Q_IDX = np.array([r * DIM + c for g in _Q_GROUPS for r, c in g])
# flat indices of the odometry step's process noise: x, y, yaw, vx, vy, gyro bias, accel biases
_ODOM_Q_IDX = np.array([i * DIM + i for i in (PX, PY, YAW, VX, VY, BG, BAX, BAY)])

#: A measurement model: nominal state (8,) -> (predicted measurement (m,), Jacobian wrt the error state (m, 8)).
MeasurementModel = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def rot2(theta: float) -> np.ndarray:
    """(2, 2) rotation matrix of angle theta (rad)."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


class UpdateResult(str, Enum):
    """What the filter did with an input or a measurement."""

    ACCEPTED = 'accepted'
    REJECTED = 'rejected'              # gated out (Mahalanobis distance beyond the chi-square gate)
    TOO_LATE = 'too_late'              # older than the kept history (or than the last reset)
    INITIALIZED = 'initialized'        # the filter was not initialised; this pose initialised it
    NOT_INITIALIZED = 'not_initialized'  # a partial measurement before any initial pose: ignored
    IGNORED = 'ignored'                # an input the configured process model does not use

    @property
    def accepted(self) -> bool:
        return self in (UpdateResult.ACCEPTED, UpdateResult.INITIALIZED)


@dataclass(frozen=True)
class EskfConfig:
    """Noise model and behaviour. Densities are continuous-time (per sqrt(Hz)); they include unmodelled effects
    (scale errors, lever arms, vibration), so they are larger than a datasheet's.

    process: 'imu' or 'odom' (see the module docstring).
    gyro_noise: rad/s/sqrt(Hz); accel_noise: m/s^2/sqrt(Hz); gyro_bias_rw: rad/s^2/sqrt(Hz);
    accel_bias_rw: m/s^3/sqrt(Hz).
    accel_tilt_time: s. A platform that rolls or pitches at rate r (the gyro's x, y rate, rad/s) turns gravity into
    the horizontal specific force at up to g r m/s^3, a change the accelerometer bias follows: its random walk
    gains g r sqrt(accel_tilt_time) m/s^3/sqrt(Hz), the change of a rate that keeps its direction for that long
    (0: off). A level platform (r is gyro noise) keeps a slow bias; a rocking one lets it move.
    odom_vel_rel / odom_vel_abs: std of an odometry body-velocity measurement = rel * |v| + abs (m/s), 'imu' mode.
    Odometry increments ('odom' mode) are random walks, so the uncertainty does not depend on the odometry rate:
    odom_trans_rel: m of position std after 1 m travelled (variance grows with the distance, m/sqrt(m));
    odom_rot_rel: rad of heading std after 1 rad turned (rad/sqrt(rad)); odom_rot_per_m: rad of heading std
    after 1 m travelled (rad/sqrt(m): wheel scale and track-width errors turn straight runs into arcs);
    odom_trans_floor (m/sqrt(s)) and odom_rot_floor (rad/sqrt(s)): floors over time.
    gate_prob: chi-square quantile of the Mahalanobis gate (<= 0 or >= 1 disables gating).
    history: s of events kept for delayed measurements.
    init_vel_sigma, init_gyro_bias_sigma, init_accel_bias_sigma: prior stds at construction and reset.
    max_step: s, longest single propagation step (longer gaps are split).
    odom_max_hold: s the last odometry twist is extrapolated when odometry stops ('odom' mode); after it the pose
    holds and its variance grows by odom_blind_pos (m/sqrt(s)) and odom_blind_yaw (rad/sqrt(s)) random walks.
    imu_max_hold: s after the last IMU sample when the filter starts to coast ('imu' mode; see the module
    docstring), with ``accel_noise`` and ``gyro_noise`` as its process noise.
    cv_accel_noise (m/s^2/sqrt(Hz)), cv_yaw_noise (rad/s/sqrt(Hz)): the process noise of the constant-velocity
    model that a pipeline without IMU and odometry runs (the 'imu' model with no IMU samples: the held input is
    zero, so these stand for the robot's own acceleration and turn rate; see flm_core.pipeline).
    auto_init: a full pose measurement initialises an uninitialised filter (else it is ignored).
    """

    process: str = 'imu'
    gyro_noise: float = 2e-3
    accel_noise: float = 0.05
    gyro_bias_rw: float = 1e-4
    accel_bias_rw: float = 2e-3
    accel_tilt_time: float = 1.0
    odom_vel_rel: float = 0.05
    odom_vel_abs: float = 0.02
    odom_trans_rel: float = 0.05
    odom_rot_rel: float = 0.07
    odom_rot_per_m: float = 0.07
    odom_trans_floor: float = 0.005
    odom_rot_floor: float = 0.002
    gate_prob: float = 0.9999
    history: float = 2.0
    init_vel_sigma: float = 0.5
    init_gyro_bias_sigma: float = 0.01
    init_accel_bias_sigma: float = 0.1
    max_step: float = 0.05
    odom_max_hold: float = 0.5
    odom_blind_pos: float = 0.3
    odom_blind_yaw: float = 0.1
    imu_max_hold: float = 0.5
    cv_accel_noise: float = 1.0
    cv_yaw_noise: float = 0.5
    auto_init: bool = True

    def __post_init__(self) -> None:
        if self.process not in ('imu', 'odom'):
            raise ValueError(f"EskfConfig.process must be 'imu' or 'odom', got {self.process!r}")
        for name in ('gyro_noise', 'accel_noise', 'gyro_bias_rw', 'accel_bias_rw', 'accel_tilt_time', 'odom_vel_rel',
                     'odom_vel_abs', 'odom_trans_rel', 'odom_rot_rel', 'odom_rot_per_m', 'odom_trans_floor',
                     'odom_rot_floor', 'init_vel_sigma', 'init_gyro_bias_sigma', 'init_accel_bias_sigma',
                     'odom_max_hold', 'imu_max_hold', 'odom_blind_pos', 'odom_blind_yaw', 'cv_accel_noise',
                     'cv_yaw_noise'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f'EskfConfig.{name} must be a finite number >= 0, got {v!r}')
        if not (self.history > 0 and self.max_step > 0):
            raise ValueError('EskfConfig.history and max_step must be > 0')


# ------------------------------------------------------------------------------------------------ filter core
@dataclass
class _Core:
    """Everything that changes when events are applied (copied into each snapshot)."""

    t: float | None
    x: np.ndarray
    P: np.ndarray
    initialized: bool = False
    imu: tuple[float, tuple[float, float], float] | None = None  # held (gyro_z rad/s, (accel x, y) m/s^2, tilt rate)
    imu_t: float | None = None                           # stamp of the held IMU sample
    odom_t: float | None = None                          # stamp of the last odometry sample
    odom_pose: np.ndarray | None = None                  # (3,) odometry pose at odom_t (odom frame)
    odom_twist: np.ndarray | None = None                 # (3,) held body twist vx vy wz
    odom_at_t: np.ndarray | None = None                  # (3,) odometry pose at the core time t ('odom' mode)

    def copy(self) -> _Core:
        return _Core(self.t, self.x.copy(), self.P.copy(), self.initialized, self.imu, self.imu_t, self.odom_t,
                     self.odom_pose, self.odom_twist, self.odom_at_t)


@dataclass
class _Event:
    stamp: float
    order: int                  # tie-break at equal stamps: 0 inputs, 1 resets, 2 measurements
    seq: int
    kind: str                   # 'imu' | 'odom' | 'reset' | 'meas'
    source: str
    data: tuple[Any, ...]
    verdict: UpdateResult | None = None
    snapshot: _Core | None = None

    @property
    def key(self) -> tuple[float, int, int]:
        return (self.stamp, self.order, self.seq)


def pose_model(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full planar pose measurement of base_link: h = (x, y, yaw), H = [I3 0]."""
    H = np.zeros((3, DIM))
    H[0, PX] = H[1, PY] = H[2, YAW] = 1.0
    return x[:3].copy(), H


def heading_model(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heading of base_link in the map: h = (yaw,), H = e_yaw."""
    H = np.zeros((1, DIM))
    H[0, YAW] = 1.0
    return x[YAW:YAW + 1].copy(), H


def position_model(lever_arm: Sequence[float] = (0.0, 0.0)) -> MeasurementModel:
    """Position (2,) in the map of a point at ``lever_arm`` (2,) m in base_link (e.g. a UWB tag)."""
    la = np.asarray(lever_arm, dtype=np.float64).reshape(2)

    def model(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        R = rot2(x[YAW])
        H = np.zeros((2, DIM))
        H[:, PX:PY + 1] = np.eye(2)
        H[:, YAW] = _S @ R @ la
        return x[:2] + R @ la, H
    return model


def body_velocity_model(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (2,) of base_link in base_link: h = R(yaw)^T v."""
    c, s = math.cos(x[YAW]), math.sin(x[YAW])
    Rt = np.array([[c, s], [-s, c]])
    dRt = np.array([[-s, c], [-c, -s]])
    H = np.zeros((2, DIM))
    H[:, VX:VY + 1] = Rt
    H[:, YAW] = dRt @ x[VX:VY + 1]
    return Rt @ x[VX:VY + 1], H


class Eskf:
    """The planar error-state Kalman filter (see the module docstring).

    Typical use (the node, or a baseline)::

        f = Eskf(EskfConfig())
        f.reset(pose0, cov0, stamp=t0)
        f.predict_imu(t, gyro_z, accel_xy)          # at the IMU rate
        f.predict_odom(t, odom_pose, twist)         # at the odometry rate
        f.update_pose(t_scan, pose, cov)            # a model pose, possibly delayed
        pose, cov = f.pose_at(now)                  # the smooth high-rate estimate
    """

    def __init__(self, config: EskfConfig | None = None) -> None:
        self.config = config or EskfConfig()
        c = self.config
        self._core = _Core(t=None, x=np.zeros(DIM), P=self._prior_cov(np.diag([1e6, 1e6, 1e2])))
        self._base = self._core.copy()          # the state before the first kept event
        self._events: list[_Event] = []
        self._keys: list[tuple[float, int, int]] = []
        self._seq = 0
        self._latest: float | None = None
        self._counts: dict[str, Counter[str]] = {}
        self._consecutive: Counter[str] = Counter()
        self.replays = 0            # events re-applied because of out-of-order arrivals
        self._gate: dict[int, float] = {}
        if 0.0 < c.gate_prob < 1.0:
            self._gate = {m: float(stats.chi2.ppf(c.gate_prob, m)) for m in range(1, 7)}

    # ------------------------------------------------------------------ state access
    @property
    def initialized(self) -> bool:
        return self._core.initialized

    @property
    def stamp(self) -> float | None:
        """Stamp of the newest applied event (s)."""
        return self._core.t

    @property
    def x(self) -> np.ndarray:
        """(8,) nominal state at :attr:`stamp` (a copy)."""
        return self._core.x.copy()

    @property
    def P(self) -> np.ndarray:
        """(8, 8) error-state covariance at :attr:`stamp` (a copy)."""
        return self._core.P.copy()

    @property
    def pose(self) -> np.ndarray:
        """(3,) x, y, yaw of base_link in the map at :attr:`stamp`."""
        return self._core.x[:3].copy()

    @property
    def pose_cov(self) -> np.ndarray:
        """(3, 3) covariance of :attr:`pose`."""
        return self._core.P[:3, :3].copy()

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Per source ('imu', 'odom', 'pose', 'uwb', 'icp', ...): how many events got each verdict."""
        return {k: dict(v) for k, v in self._counts.items()}

    def rejections(self, source: str | None = None) -> int:
        """Gated rejections of one source (or of all)."""
        if source is not None:
            return self._counts.get(source, Counter())['rejected']
        return sum(c['rejected'] for c in self._counts.values())

    def consecutive_rejections(self, source: str) -> int:
        """Rejections of ``source`` since its last accepted measurement (in arrival order): a recovery trigger."""
        return self._consecutive[source]

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(x (8,), P (8, 8)) at stamp t, without changing the filter: propagated with the held inputs from the
        newest event at or before t (or from the oldest kept state when t is before the history)."""
        core = self._core_at(t)
        return core.x, core.P

    def twist_at(self, t: float) -> np.ndarray:
        """(3,) body twist vx, vy (m/s, base_link) and wz (rad/s) at stamp t: the velocity state rotated into
        base_link and the held gyro rate minus its bias ('imu') or the held odometry yaw rate ('odom')."""
        core = self._core_at(t)
        c, s = math.cos(core.x[YAW]), math.sin(core.x[YAW])
        v = core.x[VX:VY + 1]
        if self.config.process == 'imu':
            wz = (core.imu[0] - core.x[BG]) if core.imu is not None else 0.0
        else:
            wz = float(core.odom_twist[2]) if core.odom_twist is not None else 0.0
        return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1], wz])

    def _core_at(self, t: float) -> _Core:
        if self._core.t is None or t >= self._core.t:
            core = self._core.copy()
        else:
            i = bisect.bisect_right(self._keys, (t, 3, 0))
            src = self._events[i - 1].snapshot if i > 0 else self._base
            assert src is not None
            core = src.copy()
        if core.t is not None and t > core.t:
            self._propagate(core, t)
        return core

    def pose_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(pose (3,), cov (3, 3)) of base_link in the map at stamp t (see :meth:`state_at`)."""
        x, P = self.state_at(t)
        return x[:3].copy(), P[:3, :3].copy()

    # ------------------------------------------------------------------ inputs
    def predict_imu(self, stamp: float, gyro_z: float, accel_xy: Sequence[float], tilt_rate: float = 0.0
                    ) -> UpdateResult:
        """One IMU sample at ``stamp`` (s): gyro z (rad/s) and specific force x, y (m/s^2) in base_link (IMU axes
        aligned with base_link; gravity along z is not used), and ``tilt_rate``: rad/s, the magnitude of the gyro's
        x, y rate (the platform rolling or pitching; see ``accel_tilt_time``). Propagates to ``stamp`` with the
        previous sample, then holds this one. Ignored in 'odom' mode."""
        if self.config.process != 'imu':
            return self._count('imu', UpdateResult.IGNORED)
        a = np.asarray(accel_xy, dtype=np.float64).reshape(-1)
        return self._add(_Event(float(stamp), 0, 0, 'imu', 'imu',
                                (float(gyro_z), (float(a[0]), float(a[1])), abs(float(tilt_rate)))))

    def predict_odom(self, stamp: float, pose: Sequence[float], twist: Sequence[float] | None = None
                     ) -> UpdateResult:
        """One odometry sample at ``stamp``: ``pose`` (3,) x y yaw of base_link in the odom frame and optionally
        ``twist`` (3,) vx vy wz in base_link (estimated from consecutive poses when None).
        'odom' mode: propagates with the pose increment. 'imu' mode: a gated body-velocity measurement."""
        p = np.asarray(pose, dtype=np.float64).reshape(3).copy()
        tw = None if twist is None else np.asarray(twist, dtype=np.float64).reshape(3).copy()
        return self._add(_Event(float(stamp), 0, 0, 'odom', 'odom', (p, tw)))

    # ------------------------------------------------------------------ measurements
    def update_pose(self, stamp: float, pose: Sequence[float], cov: np.ndarray, source: str = 'pose',
                    gate: bool = True, gate_cov: np.ndarray | None = None) -> UpdateResult:
        """A full pose of base_link in the map, (3,) x y yaw with (3, 3) covariance, at its own ``stamp``
        (a model output, an ICP result). Initialises an uninitialised filter when ``auto_init``.
        ``gate_cov``: covariance used for the gate instead of ``cov`` (see :meth:`update`)."""
        z = np.asarray(pose, dtype=np.float64).reshape(3).copy()
        R = np.asarray(cov, dtype=np.float64).reshape(3, 3).copy()
        return self._add(_Event(float(stamp), 2, 0, 'meas', source,
                                (z, pose_model, R, (2,), gate, True, _opt(gate_cov, 3))))

    def update_position(self, stamp: float, xy: Sequence[float], cov: np.ndarray,
                        lever_arm: Sequence[float] = (0.0, 0.0), source: str = 'position',
                        gate: bool = True, gate_cov: np.ndarray | None = None) -> UpdateResult:
        """A position (2,) in the map, covariance (2, 2), of a point at ``lever_arm`` (2,) in base_link (UWB
        multilateration of the tag). ``gate_cov``: see :meth:`update`."""
        z = np.asarray(xy, dtype=np.float64).reshape(2).copy()
        R = np.asarray(cov, dtype=np.float64).reshape(2, 2).copy()
        return self._add(_Event(float(stamp), 2, 0, 'meas', source, (z, position_model(lever_arm), R, (), gate,
                                                                       False, _opt(gate_cov, 2))))

    def update(self, stamp: float, z: Sequence[float], model: MeasurementModel, R: np.ndarray,
               source: str = 'generic', angle_indices: Sequence[int] = (), gate: bool = True,
               gate_R: np.ndarray | None = None) -> UpdateResult:
        """Any measurement z (m,) with covariance R (m, m): ``model(x) -> (h (m,), H (m, 8))`` must be a pure
        function of the nominal state (it is re-evaluated when a delayed measurement forces a replay).
        ``angle_indices``: components of z whose innovation is wrapped to [-pi, pi). ``gate_R``: the
        measurement covariance the gate uses instead of R (a measurement whose R is inflated for correlated
        errors is still gated on its own noise)."""
        zz = np.asarray(z, dtype=np.float64).reshape(-1).copy()
        RR = np.asarray(R, dtype=np.float64).reshape(len(zz), len(zz)).copy()
        return self._add(_Event(float(stamp), 2, 0, 'meas', source, (zz, model, RR, tuple(angle_indices), gate,
                                                                       False, _opt(gate_R, len(zz)))))

    def reset(self, pose: Sequence[float], cov: np.ndarray, stamp: float | None = None,
              velocity: Sequence[float] | None = None, keep_biases: bool = True) -> UpdateResult:
        """Re-initialise at ``pose`` (3,) with ``cov`` (3, 3): a new initial pose or a global relocalization.
        With ``stamp`` the reset is an event at that stamp (later events are re-applied on top of it; earlier
        ones can no longer change the state); without, it applies now. Velocity (2,) in the map defaults to 0;
        bias estimates are kept unless ``keep_biases`` is False. Measurements older than the reset are
        refused as ``too_late``."""
        p = np.asarray(pose, dtype=np.float64).reshape(3).copy()
        C = np.asarray(cov, dtype=np.float64).reshape(3, 3).copy()
        v = np.zeros(2) if velocity is None else np.asarray(velocity, dtype=np.float64).reshape(2).copy()
        if stamp is None:
            stamp = self._core.t if self._core.t is not None else (self._latest if self._latest is not None else 0.0)
        return self._add(_Event(float(stamp), 1, 0, 'reset', 'reset', (p, C, v, keep_biases)))

    # ------------------------------------------------------------------ event log
    def _add(self, ev: _Event) -> UpdateResult:
        if not math.isfinite(ev.stamp):
            raise ValueError(f'{ev.source}: stamp must be finite, got {ev.stamp!r}')
        self._seq += 1
        ev.seq = self._seq
        base_t = self._base.t
        if base_t is not None and ev.stamp < base_t:
            return self._count(ev.source, UpdateResult.TOO_LATE, ev.kind == 'meas')
        key = ev.key
        i = len(self._keys) if not self._keys or key > self._keys[-1] else bisect.bisect_right(self._keys, key)
        if i < len(self._events):
            # out of order: restore the state before it and re-apply everything after it
            src = self._events[i - 1].snapshot if i > 0 else self._base
            assert src is not None
            self._core = src.copy()
            self._events.insert(i, ev)
            self._keys.insert(i, key)
            for j in range(i, len(self._events)):
                e = self._events[j]
                old = e.verdict
                new = self._apply(self._core, e)
                if j > i:
                    self.replays += 1
                    if e.kind in ('meas', 'odom') and old is not None and new != old:
                        self._counts.setdefault(e.source, Counter())[old.value] -= 1
                        self._counts[e.source][new.value] += 1
                e.verdict = new
                e.snapshot = self._core.copy()
        else:
            self._events.append(ev)
            self._keys.append(key)
            ev.verdict = self._apply(self._core, ev)
            ev.snapshot = self._core.copy()
        assert ev.verdict is not None
        if ev.kind == 'reset':
            # nothing before a reset can change the state any more
            k = self._events.index(ev)
            self._base = ev.snapshot.copy()  # type: ignore[union-attr]
            del self._events[:k + 1], self._keys[:k + 1]
        self._latest = ev.stamp if self._latest is None else max(self._latest, ev.stamp)
        self._prune()
        return self._count(ev.source, ev.verdict, ev.kind in ('meas', 'odom'))

    def _count(self, source: str, v: UpdateResult, is_measurement: bool = False) -> UpdateResult:
        counts = self._counts.get(source)
        if counts is None:
            counts = self._counts[source] = Counter()
        counts[v.value] += 1
        if is_measurement:
            if v == UpdateResult.REJECTED:
                self._consecutive[source] += 1
            elif v.accepted:
                self._consecutive[source] = 0
        return v

    def _prune(self) -> None:
        assert self._latest is not None
        horizon = self._latest - self.config.history
        if not self._keys or self._keys[0][0] >= horizon:
            return
        k = bisect.bisect_left(self._keys, (horizon, -1, -1))
        if k > 0:
            self._base = self._events[k - 1].snapshot.copy()  # type: ignore[union-attr]
            del self._events[:k], self._keys[:k]

    # ------------------------------------------------------------------ applying events
    def _apply(self, core: _Core, ev: _Event) -> UpdateResult:
        if ev.kind == 'reset':
            if core.t is not None and ev.stamp > core.t:
                self._propagate(core, ev.stamp)
            self._do_reset(core, ev.stamp, *ev.data)
            return UpdateResult.ACCEPTED
        if core.t is None:
            core.t = ev.stamp
        elif ev.stamp > core.t:
            self._propagate(core, ev.stamp)
        if ev.kind == 'imu':
            core.imu, core.imu_t = ev.data, ev.stamp
            return UpdateResult.ACCEPTED
        if ev.kind == 'odom':
            return self._apply_odom(core, ev.stamp, *ev.data)
        z, model, R, angles, gate, full_pose, gate_R = ev.data
        if not core.initialized:
            if full_pose and self.config.auto_init:
                self._do_reset(core, ev.stamp, z, R, core.x[VX:VY + 1].copy() * 0.0, True)
                return UpdateResult.INITIALIZED
            return UpdateResult.NOT_INITIALIZED
        return self._correct(core, z, model, R, angles, gate, gate_R)

    def _prior_cov(self, pose_cov: np.ndarray) -> np.ndarray:
        c = self.config
        P = np.zeros((DIM, DIM))
        P[:3, :3] = pose_cov
        P[VX, VX] = P[VY, VY] = c.init_vel_sigma ** 2
        P[BG, BG] = c.init_gyro_bias_sigma ** 2
        P[BAX, BAX] = P[BAY, BAY] = c.init_accel_bias_sigma ** 2
        return P

    def _do_reset(self, core: _Core, stamp: float, pose: np.ndarray, cov: np.ndarray, vel: np.ndarray,
                  keep_biases: bool) -> None:
        P_old = core.P
        core.x[:3] = pose
        core.x[YAW] = float(wrap_angle(pose[2]))
        core.x[VX:VY + 1] = vel
        P = self._prior_cov(0.5 * (cov + cov.T))
        if keep_biases and core.initialized:
            P[BG:, BG:] = P_old[BG:, BG:]
        else:
            core.x[BG:] = 0.0
        core.P = P
        core.t = stamp
        core.initialized = True
        if core.odom_pose is not None and core.odom_t is not None:
            core.odom_at_t = self._odom_extrapolate(core, stamp)

    # ------------------------------------------------------------------ propagation
    def _propagate(self, core: _Core, t: float) -> None:
        """Bring ``core`` from core.t to t (> core.t) with the held inputs."""
        assert core.t is not None
        if self.config.process == 'odom':
            self._propagate_odom_to(core, t)
            return
        w, a, r = core.imu if core.imu is not None else (0.0, (0.0, 0.0), 0.0)
        held = t if core.imu_t is None else min(t, core.imu_t + self.config.imu_max_hold)
        if core.imu is not None and held > core.t:
            self._steps(core, held, lambda dt: self._imu_step(core, dt, w, a, r))
        if t > core.t:
            self._steps(core, t, lambda dt: self._imu_step(core, dt, w, a, r, coast=True))

    def _steps(self, core: _Core, t: float, step: Callable[[float], None]) -> None:
        """Bring ``core`` to t in equal steps of at most ``max_step``."""
        assert core.t is not None
        total = t - core.t
        n = max(1, int(math.ceil(total / self.config.max_step - 1e-9)))
        for _ in range(n):
            step(total / n)
        core.t = t

    def _imu_step(self, core: _Core, dt: float, w_m: float, a_m: Sequence[float], tilt_rate: float = 0.0,
                  coast: bool = False) -> None:
        """One step with the IMU input (w_m rad/s, a_m (2,) m/s^2 in base_link, tilt_rate rad/s). ``coast``: the
        input less the bias estimate is a known motion, so the biases do not enter the propagation of the error."""
        # scalar arithmetic and one fancy-index write per matrix: this runs for every IMU sample (200 Hz and more)
        c = self.config
        x = core.x
        px, py, th, vx, vy, bg, bax, bay = x.tolist()
        w = w_m - bg
        abx, aby = a_m[0] - bax, a_m[1] - bay
        cm, sm = math.cos(th + 0.5 * w * dt), math.sin(th + 0.5 * w * dt)
        awx, awy = cm * abx - sm * aby, sm * abx + cm * aby       # R(th + w dt / 2) (a - ba)
        dt2 = dt * dt
        x[PX] = px + vx * dt + 0.5 * awx * dt2
        x[PY] = py + vy * dt + 0.5 * awy * dt2
        x[VX] = vx + awx * dt
        x[VY] = vy + awy * dt
        x[YAW] = wrap_angle_float(th + w * dt)
        sx, sy = -awy, awx                                        # S aw
        h2, h3 = 0.5 * dt2, -0.25 * dt2 * dt
        F = _I8.copy()
        F.ravel()[_F_IDX] = (dt, h2 * sx, h3 * sx, -h2 * cm, h2 * sm,
                             dt, h2 * sy, h3 * sy, -h2 * sm, -h2 * cm,
                             dt * sx, -h2 * sx, -dt * cm, dt * sm,
                             dt * sy, -h2 * sy, -dt * sm, -dt * cm,
                             -dt)
        if coast:
            F.ravel()[_F_BIAS] = 0.0
        qa = c.accel_noise ** 2
        Q = _Z8.copy()
        q_b = (c.accel_bias_rw ** 2 + (GRAVITY * tilt_rate) ** 2 * c.accel_tilt_time) * dt
        q_p, q_pv, q_v = qa * dt2 * dt / 3.0, qa * dt2 / 2.0, qa * dt
        Q.ravel()[_Q_IDX] = (q_p, q_p, q_pv, q_pv, q_pv, q_pv, q_v, q_v, c.gyro_noise ** 2 * dt,
                             c.gyro_bias_rw ** 2 * dt, q_b, q_b)
        P = F @ core.P @ F.T
        P += Q
        P += P.T
        P *= 0.5
        core.P = P

    def _odom_extrapolate(self, core: _Core, t: float) -> np.ndarray:
        """Odometry pose at t >= odom_t by holding the last twist (arc) for at most ``odom_max_hold`` s: past that
        the odometry is missing, not moving (the covariance grows instead, see _propagate_odom_to)."""
        # scalar arithmetic: this runs for every odometry sample and every replayed one
        assert core.odom_pose is not None and core.odom_t is not None
        vx, vy, wz = core.odom_twist.tolist() if core.odom_twist is not None else (0.0, 0.0, 0.0)
        tau = min(t - core.odom_t, self.config.odom_max_hold)
        dth = wz * tau
        c, s = math.cos(0.5 * dth), math.sin(0.5 * dth)
        dx, dy = c * (vx * tau) - s * (vy * tau), s * (vx * tau) + c * (vy * tau)   # R(dth / 2) (v tau)
        ox, oy, oth = core.odom_pose.tolist()
        co, so = math.cos(oth), math.sin(oth)
        return np.array([ox + co * dx - so * dy, oy + so * dx + co * dy, wrap_angle_float(oth + dth)])

    def _propagate_odom_to(self, core: _Core, t: float) -> None:
        if core.odom_pose is None:
            # no odometry yet: the pose stands still (its covariance grows by the floors only)
            self._apply_increment(core, (0.0, 0.0, 0.0), t - core.t if core.t is not None else 0.0)
            core.t = t
            return
        target = self._odom_extrapolate(core, t)
        t_prev = core.t if core.t is not None else t
        self._odom_step(core, target, t)
        blind = t - max(t_prev, core.odom_t + self.config.odom_max_hold)
        if blind > 0.0:  # odometry silent for longer than the hold: unknown motion
            c = self.config
            core.P[PX, PX] += c.odom_blind_pos ** 2 * blind
            core.P[PY, PY] += c.odom_blind_pos ** 2 * blind
            core.P[YAW, YAW] += c.odom_blind_yaw ** 2 * blind

    def _odom_step(self, core: _Core, target: np.ndarray, t: float) -> None:
        assert core.t is not None
        dt = t - core.t
        ref = core.odom_at_t if core.odom_at_t is not None else target
        self._apply_increment(core, _relative(ref, target), dt)
        core.odom_at_t = target
        core.t = t

    def _apply_increment(self, core: _Core, delta: Sequence[float], dt: float) -> None:
        """Move the state by the body-frame pose increment ``delta`` (dx, dy, dyaw) over dt s, with the odometry
        random-walk noise; the velocity is the held twist rotated into the map. Scalar arithmetic and one write per
        matrix entry: this runs for every odometry sample and every replayed one."""
        c = self.config
        x = core.x
        d0, d1, d2 = float(delta[0]), float(delta[1]), float(delta[2])
        th = float(x[YAW])
        co, so = math.cos(th), math.sin(th)
        trans = math.hypot(d0, d1)
        dpx, dpy = co * d0 - so * d1, so * d0 + co * d1          # R(yaw) delta[:2]
        x[PX] += dpx
        x[PY] += dpy
        thn = wrap_angle_float(th + d2)
        x[YAW] = thn
        tx, ty = core.odom_twist[:2].tolist() if core.odom_twist is not None else (0.0, 0.0)
        cn, sn = math.cos(thn), math.sin(thn)
        vx, vy = cn * tx - sn * ty, sn * tx + cn * ty              # R(new yaw) twist[:2]
        x[VX], x[VY] = vx, vy
        F = _I8.copy()
        F[PX, YAW], F[PY, YAW] = -dpy, dpx                         # S dp
        F[VX, VX] = F[VY, VY] = 0.0
        F[VX, YAW], F[VY, YAW] = -vy, vx                           # S v
        dtp = max(dt, 0.0)
        v_t = c.odom_trans_rel ** 2 * trans + c.odom_trans_floor ** 2 * dtp
        v_r = c.odom_rot_rel ** 2 * abs(d2) + c.odom_rot_per_m ** 2 * trans + c.odom_rot_floor ** 2 * dtp
        sv2 = (c.odom_vel_rel * math.hypot(tx, ty) + c.odom_vel_abs) ** 2
        qa, qg = c.accel_bias_rw ** 2 * dtp, c.gyro_bias_rw ** 2 * dtp
        # G diag(v_t, v_t, v_r) G^T with G = [R(yaw) 0; 0 1] (rows x, y, yaw): rotation leaves v_t I unchanged
        Q = _Z8.copy()
        Q.ravel()[_ODOM_Q_IDX] = (v_t, v_t, v_r, sv2, sv2, qg, qa, qa)
        P = F @ core.P @ F.T
        P += Q
        P += P.T
        P *= 0.5
        core.P = P

    def _apply_odom(self, core: _Core, stamp: float, pose: np.ndarray, twist: np.ndarray | None) -> UpdateResult:
        c = self.config
        prev_t, prev = core.odom_t, core.odom_pose
        if twist is None:
            if prev is not None and prev_t is not None and stamp > prev_t:
                twist = np.array(_relative(prev, pose)) / (stamp - prev_t)
            else:
                twist = np.zeros(3)
        if c.process == 'odom':
            # the core was brought to `stamp` by extrapolating the previous twist; replace that by the real pose
            if core.odom_at_t is not None and prev is not None:
                # the extrapolated odometry pose at `stamp` was applied already; apply what it missed
                core.odom_twist = twist
                self._apply_increment(core, _relative(core.odom_at_t, pose), 0.0)
            core.odom_at_t = pose.copy()
            core.odom_t, core.odom_pose, core.odom_twist = stamp, pose, twist
            return UpdateResult.ACCEPTED
        core.odom_t, core.odom_pose, core.odom_twist = stamp, pose, twist
        if not core.initialized:
            return UpdateResult.NOT_INITIALIZED
        sv = c.odom_vel_rel * math.hypot(twist[0], twist[1]) + c.odom_vel_abs
        return self._correct(core, twist[:2].copy(), body_velocity_model, np.eye(2) * sv * sv, (), True)

    # ------------------------------------------------------------------ correction
    def _correct(self, core: _Core, z: np.ndarray, model: MeasurementModel, R: np.ndarray,
                 angles: tuple[int, ...], gate: bool, gate_R: np.ndarray | None = None) -> UpdateResult:
        h, H = model(core.x)
        y = z - h
        for k in angles:
            y[k] = wrap_angle(y[k])
        P = core.P
        PHt = P @ H.T
        S = H @ PHt + R
        Sg = S if gate_R is None else H @ PHt + gate_R
        try:
            Sinv = _inv(S)
            d2 = float(y @ (Sinv if gate_R is None else _inv(Sg)) @ y)
        except np.linalg.LinAlgError:
            return UpdateResult.REJECTED
        if gate and self._gate:
            thr = self._gate.get(len(y))
            if thr is None:
                thr = float(stats.chi2.ppf(self.config.gate_prob, len(y)))
                self._gate[len(y)] = thr
            if not math.isfinite(d2) or d2 > thr:
                return UpdateResult.REJECTED
        K = PHt @ Sinv
        dx = K @ y
        x = core.x
        x += dx
        x[YAW] = wrap_angle_float(float(x[YAW]))
        IKH = _I8 - K @ H
        Pn = IKH @ P @ IKH.T + K @ R @ K.T
        core.P = 0.5 * (Pn + Pn.T)
        return UpdateResult.ACCEPTED


def _relative(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Pose b (3,) expressed in pose a's frame, a^-1 (+) b, as floats."""
    ax, ay, ath = a.tolist()
    bx, by, bth = b.tolist()
    c, s = math.cos(ath), math.sin(ath)
    dx, dy = bx - ax, by - ay
    return c * dx + s * dy, -s * dx + c * dy, wrap_angle_float(bth - ath)


def _inv(S: np.ndarray) -> np.ndarray:
    """Inverse of a small symmetric innovation covariance (closed form up to 2x2; LinAlgError if singular)."""
    m = S.shape[0]
    if m == 1:
        if not S[0, 0] != 0.0:
            raise np.linalg.LinAlgError('singular')
        return 1.0 / S
    if m == 2:
        a, b, c, d = S.ravel().tolist()
        det = a * d - b * c
        if not (det != 0.0 and math.isfinite(det)):
            raise np.linalg.LinAlgError('singular')
        return np.array([[d, -b], [-c, a]]) / det
    return np.linalg.inv(S)


def state_error(x_est: np.ndarray, x_true: np.ndarray) -> np.ndarray:
    """Error-state difference x_true - x_est (..., 8) with the yaw wrapped (the convention of ``P``)."""
    e = np.asarray(x_true, dtype=np.float64) - np.asarray(x_est, dtype=np.float64)
    e[..., YAW] = wrap_angle(e[..., YAW])
    return e


def imu_propagate(x: np.ndarray, dt: float, gyro_z: float, accel_xy: np.ndarray) -> np.ndarray:
    """The nominal IMU step of the filter as a pure function (8,) -> (8,) (used to simulate consistent truth)."""
    w = gyro_z - x[BG]
    ab = np.asarray(accel_xy, dtype=np.float64) - x[BAX:BAY + 1]
    th = x[YAW]
    Rm = rot2(th + 0.5 * w * dt)
    aw = Rm @ ab
    out = x.copy()
    out[PX:PY + 1] += x[VX:VY + 1] * dt + 0.5 * aw * dt * dt
    out[VX:VY + 1] += aw * dt
    out[YAW] = wrap_angle(th + w * dt)
    return out


def _opt(cov: np.ndarray | None, m: int) -> np.ndarray | None:
    return None if cov is None else np.asarray(cov, dtype=np.float64).reshape(m, m).copy()
