"""Moving people: vertical cylinders walking collision-free waypoint runs (holonomic, no stops of note).

They occlude lidar and depth rays (:func:`raycast.cast_cylinders`) and block or delay UWB links whose line of sight
passes through them. Positions are analytic in time (``People.positions``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .buildings import Building
from .config import DynamicsConfig
from .motion import MotionParams, Trajectory, plan_trajectory


@dataclass
class People:
    trajectories: tuple[Trajectory, ...]
    radius: float
    height: float
    speeds: tuple[float, ...] = ()

    @property
    def count(self) -> int:
        return len(self.trajectories)

    def positions(self, t: np.ndarray) -> np.ndarray:
        """(..., P, 2) positions at times t (...)."""
        t = np.asarray(t, dtype=np.float64)
        if not self.trajectories:
            return np.zeros(t.shape + (0, 2))
        flat = t.ravel()
        out = np.stack([tr.sample(flat).pose[:, :2] for tr in self.trajectories], axis=1)
        return out.reshape(t.shape + (len(self.trajectories), 2))


def generate_people(cfg: DynamicsConfig, b: Building, duration: float, rng: np.random.Generator) -> People:
    n = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    trajs, speeds = [], []
    free = b.free_space(cfg.radius + 0.05)
    for _ in range(n):
        v = float(rng.uniform(*cfg.speed))
        p = MotionParams(robot='holonomic', radius=cfg.radius, max_speed=v, max_accel=1.0, max_yaw_rate=2.0,
                         max_yaw_accel=4.0, stop_prob=0.1, stop_duration=(1.0, 5.0), spin_prob=0.0,
                         revisit_prob=0.1, far_bias=0.5)
        trajs.append(plan_trajectory(b.map, free, p, duration, rng, n_candidates=60))
        speeds.append(round(v, 4))
    return People(trajectories=tuple(trajs), radius=cfg.radius, height=cfg.height, speeds=tuple(speeds))
