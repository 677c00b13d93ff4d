"""Robot (and pedestrian) trajectories: collision-free waypoint runs with trapezoidal velocity profiles.

A trajectory is a list of segments evaluated analytically at any time (:meth:`Trajectory.sample`): ``hold`` (stand
still), ``rotate`` (turn in place; also full spins), ``translate`` (diff-drive: straight line along the heading) and
``move`` (holonomic: translation and rotation together, synchronised). Each has a trapezoidal (or triangular) speed
profile within the drawn speed/acceleration limits, so velocities are continuous and accelerations bounded.

Waypoints are drawn in the free space eroded by the robot radius (+5 cm), inside the largest connected free region,
and every straight run is checked cell by cell against that eroded space, so the robot never passes through walls or
obstacles. Kidnap events teleport the standing robot to a random free pose (a discontinuity in the ground truth,
recorded in ``Trajectory.kidnaps``). Revisits return to already visited waypoints; the waypoint choice prefers far
targets (long straight runs) with weight ``distance ** far_bias``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..geometry import wrap_angle
from ..site import OccupancyMap
from .config import MotionConfig

HOLD, ROTATE, TRANSLATE, MOVE = 0, 1, 2, 3


@dataclass
class MotionParams:
    """Drawn limits of one robot (SI units)."""

    robot: str = 'diff_drive'
    radius: float = 0.25
    max_speed: float = 0.8
    max_accel: float = 0.5
    max_yaw_rate: float = 1.0
    max_yaw_accel: float = 2.0
    stop_prob: float = 0.15
    stop_duration: tuple[float, float] = (0.5, 4.0)
    spin_prob: float = 0.05
    revisit_prob: float = 0.2
    far_bias: float = 1.0
    kidnap_times: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def draw_motion_params(cfg: MotionConfig, rng: np.random.Generator, duration: float) -> MotionParams:
    robot = str(cfg.robots[int(rng.integers(len(cfg.robots)))])
    u = lambda r: float(rng.uniform(r[0], r[1])) if r[0] != r[1] else float(r[0])  # noqa: E731
    p = MotionParams(robot=robot, radius=cfg.robot_radius, max_speed=u(cfg.max_speed), max_accel=u(cfg.max_accel),
                     max_yaw_rate=u(cfg.max_yaw_rate), max_yaw_accel=u(cfg.max_yaw_accel), stop_prob=cfg.stop_prob,
                     stop_duration=tuple(cfg.stop_duration), spin_prob=cfg.spin_prob, revisit_prob=cfg.revisit_prob,
                     far_bias=cfg.far_bias)
    times: list[float] = []
    if rng.random() < cfg.kidnap_prob and duration > 10.0:
        t = float(rng.uniform(0.2, 0.8) * min(duration, cfg.kidnap_interval * 2))
        while t < duration - 5.0:
            times.append(round(t, 6))
            t += float(rng.exponential(cfg.kidnap_interval)) + 5.0
    p.kidnap_times = tuple(times)
    return p


@dataclass
class TrajectorySample:
    """Ground truth at N times: pose (N, 3) x y yaw; vel (N, 2) world m/s; acc (N, 2) world m/s^2;
    yaw_rate (N,) rad/s; yaw_acc (N,) rad/s^2."""

    t: np.ndarray
    pose: np.ndarray
    vel: np.ndarray
    acc: np.ndarray
    yaw_rate: np.ndarray
    yaw_acc: np.ndarray

    def body_velocity(self) -> np.ndarray:
        """(N, 2) velocity in base_link (vx forward, vy left)."""
        c, s = np.cos(self.pose[:, 2]), np.sin(self.pose[:, 2])
        return np.stack([c * self.vel[:, 0] + s * self.vel[:, 1], -s * self.vel[:, 0] + c * self.vel[:, 1]], -1)


def _profile_time(L: float, vmax: float, a: float) -> float:
    """Minimum duration of a rest-to-rest run of length L with speed/accel limits."""
    if L <= 0:
        return 0.0
    if L >= vmax * vmax / a:
        return L / vmax + vmax / a
    return 2.0 * math.sqrt(L / a)


def _peak(L: np.ndarray, a: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Peak speed of the trapezoid of length L, acceleration a, lasting T (>= its minimum duration)."""
    disc = np.maximum(a * a * T * T - 4.0 * a * L, 0.0)
    return np.where(L > 0, (a * T - np.sqrt(disc)) / 2.0, 0.0)


def _eval_profile(tau: np.ndarray, T: np.ndarray, L: np.ndarray, a: np.ndarray, vpk: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s, ds/dt, d2s/dt2) of trapezoid profiles at local times tau (all arrays broadcast)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        ta = np.where(a > 0, vpk / np.where(a > 0, a, 1.0), 0.0)
    tau = np.clip(tau, 0.0, T)
    acc_ph = tau < ta
    dec_ph = tau > T - ta
    tr = T - tau
    s = np.where(acc_ph, 0.5 * a * tau ** 2,
                 np.where(dec_ph, L - 0.5 * a * tr ** 2, 0.5 * a * ta ** 2 + vpk * (tau - ta)))
    v = np.where(acc_ph, a * tau, np.where(dec_ph, a * tr, vpk))
    acc = np.where(acc_ph, a, np.where(dec_ph, -a, 0.0))
    moving = L > 0
    return np.where(moving, s, 0.0), np.where(moving, v, 0.0), np.where(moving, acc, 0.0)


@dataclass
class Trajectory:
    """Piecewise-analytic trajectory. Per segment k: kind, t0, duration, start pose p0 (x, y, yaw), unit direction
    (world), length L, yaw change dyaw (signed), linear and angular accelerations and peak rates."""

    kind: np.ndarray
    t0: np.ndarray
    dur: np.ndarray
    p0: np.ndarray
    direction: np.ndarray
    L: np.ndarray
    a_lin: np.ndarray
    v_lin: np.ndarray
    dyaw: np.ndarray
    a_ang: np.ndarray
    w_ang: np.ndarray
    kidnaps: tuple[float, ...] = ()
    params: dict = field(default_factory=dict)

    @property
    def end_time(self) -> float:
        return float(self.t0[-1] + self.dur[-1])

    def sample(self, t: np.ndarray) -> TrajectorySample:
        t = np.asarray(t, dtype=np.float64)
        k = np.clip(np.searchsorted(self.t0, t, side='right') - 1, 0, len(self.t0) - 1)
        tau = t - self.t0[k]
        s, v, a = _eval_profile(tau, self.dur[k], self.L[k], self.a_lin[k], self.v_lin[k])
        sa, va, aa = _eval_profile(tau, self.dur[k], np.abs(self.dyaw[k]), self.a_ang[k], self.w_ang[k])
        sg = np.sign(self.dyaw[k])
        d = self.direction[k]
        pose = np.stack([self.p0[k, 0] + d[:, 0] * s, self.p0[k, 1] + d[:, 1] * s,
                         wrap_angle(self.p0[k, 2] + sg * sa)], axis=-1)
        return TrajectorySample(t=t, pose=pose, vel=d * v[:, None], acc=d * a[:, None], yaw_rate=sg * va,
                                yaw_acc=sg * aa)


class _Builder:
    def __init__(self, p: MotionParams) -> None:
        self.p = p
        self.rows: list[tuple] = []
        self.t = 0.0

    def add(self, kind: int, pose: np.ndarray, direction: tuple[float, float], L: float, dyaw: float,
            dur: float | None = None) -> np.ndarray:
        p = self.p
        T = max(_profile_time(L, p.max_speed, p.max_accel), _profile_time(abs(dyaw), p.max_yaw_rate, p.max_yaw_accel))
        if dur is not None:
            T = max(T, dur)
        if T <= 0:
            return pose
        vl = float(_peak(np.array(L), np.array(p.max_accel), np.array(T)))
        wa = float(_peak(np.array(abs(dyaw)), np.array(p.max_yaw_accel), np.array(T)))
        self.rows.append((kind, self.t, T, pose[0], pose[1], pose[2], direction[0], direction[1], L, p.max_accel, vl,
                          dyaw, p.max_yaw_accel, wa))
        self.t += T
        return np.array([pose[0] + direction[0] * L, pose[1] + direction[1] * L, float(wrap_angle(pose[2] + dyaw))])

    def build(self, kidnaps: tuple[float, ...]) -> Trajectory:
        r = np.array(self.rows, dtype=np.float64).reshape(-1, 14)
        return Trajectory(kind=r[:, 0].astype(np.int64), t0=r[:, 1], dur=r[:, 2], p0=r[:, 3:6], direction=r[:, 6:8],
                          L=r[:, 8], a_lin=r[:, 9], v_lin=r[:, 10], dyaw=r[:, 11], a_ang=r[:, 12], w_ang=r[:, 13],
                          kidnaps=kidnaps, params=self.p.to_dict())


def navigable(free: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a free-space mask."""
    lab, n = ndimage.label(free)
    if n == 0:
        return free
    counts = np.bincount(lab.ravel())
    counts[0] = 0
    return lab == int(np.argmax(counts))


def segment_clear(m: OccupancyMap, ok: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,) bool: straight segments a (2,) -> b (K, 2) stay inside mask ``ok`` (sampled every half cell)."""
    b = np.atleast_2d(b)
    L = np.linalg.norm(b - a, axis=1)
    n = int(np.ceil(L.max(initial=0.0) / (0.5 * m.resolution))) + 2
    f = np.linspace(0.0, 1.0, n)
    pts = a[None, None, :] + (b - a)[:, None, :] * f[None, :, None]
    cr = m.world_to_cell(pts)
    H, W = ok.shape
    inb = (cr[..., 0] >= 0) & (cr[..., 0] < W) & (cr[..., 1] >= 0) & (cr[..., 1] < H)
    vals = ok[np.clip(cr[..., 1], 0, H - 1), np.clip(cr[..., 0], 0, W - 1)] & inb
    return vals.all(axis=1)


def plan_trajectory(m: OccupancyMap, free: np.ndarray, p: MotionParams, duration: float,
                    rng: np.random.Generator, n_candidates: int = 150) -> Trajectory:
    """A trajectory of at least ``duration`` + 2 s in mask ``free`` (already eroded by the robot's clearance)."""
    nav = navigable(free)
    cells = np.argwhere(nav)  # (row, col)
    if len(cells) == 0:
        raise ValueError('no navigable free space')

    def draw(k: int) -> np.ndarray:
        rc = cells[rng.integers(len(cells), size=k)]
        return m.cell_to_world(rc[:, ::-1])

    b = _Builder(p)
    pose = np.array([*draw(1)[0], float(rng.uniform(-math.pi, math.pi))])
    pose = b.add(HOLD, pose, (1.0, 0.0), 0.0, 0.0, dur=1.0)
    visited = [pose[:2].copy()]
    kid = list(p.kidnap_times)
    end = duration + 2.0
    stuck = 0
    while b.t < end:
        if kid and b.t >= kid[0]:
            kid.pop(0)
            pose = np.array([*draw(1)[0], float(rng.uniform(-math.pi, math.pi))])
            pose = b.add(HOLD, pose, (1.0, 0.0), 0.0, 0.0, dur=float(rng.uniform(1.0, 2.0)))
            visited.append(pose[:2].copy())
            continue
        if rng.random() < p.revisit_prob and len(visited) > 2:
            cand = np.array(visited)[rng.integers(len(visited), size=min(len(visited), 20))]
        else:
            cand = draw(n_candidates)
        dist = np.linalg.norm(cand - pose[:2], axis=1)
        good = (dist > 0.5) & segment_clear(m, nav, pose[:2], cand)
        if not good.any():
            stuck += 1
            near = draw(n_candidates)
            near = pose[:2] + (near - pose[:2]) * 0.1  # short hops out of tight spots
            good_n = segment_clear(m, nav, pose[:2], near) & (np.linalg.norm(near - pose[:2], axis=1) > 0.05)
            if not good_n.any() or stuck > 50:
                pose = b.add(HOLD, pose, (1.0, 0.0), 0.0, 0.0, dur=1.0)
                continue
            cand, dist, good = near, np.linalg.norm(near - pose[:2], axis=1), good_n
        stuck = 0
        w = np.where(good, np.maximum(dist, 1e-3) ** p.far_bias, 0.0)
        j = int(rng.choice(len(cand), p=w / w.sum()))
        target, L = cand[j], float(dist[j])
        u = ((target - pose[:2]) / L)
        heading = math.atan2(u[1], u[0])
        if p.robot == 'diff_drive':
            pose = b.add(ROTATE, pose, (1.0, 0.0), 0.0, float(wrap_angle(heading - pose[2])))
            pose = b.add(TRANSLATE, pose, (float(u[0]), float(u[1])), L, 0.0)
            pose[:2] = target  # remove rounding drift
        else:
            dyaw = float(wrap_angle(rng.uniform(-math.pi, math.pi) - pose[2])) * float(rng.uniform(0.2, 1.0))
            pose = b.add(MOVE, pose, (float(u[0]), float(u[1])), L, dyaw)
            pose[:2] = target
        visited.append(pose[:2].copy())
        if rng.random() < p.stop_prob:
            pose = b.add(HOLD, pose, (1.0, 0.0), 0.0, 0.0, dur=float(rng.uniform(*p.stop_duration)))
        if rng.random() < p.spin_prob:
            pose = b.add(ROTATE, pose, (1.0, 0.0), 0.0, float(rng.choice([-1.0, 1.0])) * 2 * math.pi)
    b.add(HOLD, pose, (1.0, 0.0), 0.0, 0.0, dur=2.0)
    return b.build(tuple(p.kidnap_times))
