"""Real-world habits of one scenario (config.RealismConfig): whether realism applies to a seed, and the per-scenario
draws of the sensor habits (config.HabitsConfig) from the scenario's 'habits' and 'keyframes' streams.

Every value is drawn whatever the probabilities say, in a fixed order, so changing one habit's probability never
changes another habit of the same seed.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .anchors import AnchorSet
from .config import HabitsConfig, RealismConfig, ScenarioConfig
from .platform import Tilt, Wave
from .seeds import is_evaluation_seed
from .sensors.common import keyframe_times


def realism_applies(cfg: RealismConfig, seed: int) -> bool:
    """True where ``cfg.apply`` selects this seed ('always', or 'evaluation' and a reserved evaluation seed)."""
    return cfg.apply == 'always' or (cfg.apply == 'evaluation' and is_evaluation_seed(seed))


@dataclass
class Habits:
    """The drawn habits of one scenario (None / False where absent)."""

    uwb_shared_stamp: bool
    anchor_bias: np.ndarray | None     # (A,) m
    coplanar_height: float | None      # m
    tilt: Tilt | None
    tilt_max: float                    # rad (0 without tilt)
    imu_z_down: bool
    tag_height: Wave | None
    keyframes: np.ndarray | None       # (K,) s

    def to_dict(self) -> dict[str, Any]:
        return {'uwb_shared_stamp': self.uwb_shared_stamp,
                'anchor_bias': None if self.anchor_bias is None else self.anchor_bias.tolist(),
                'coplanar_height': self.coplanar_height, 'tilt_max_rad': self.tilt_max,
                'imu_z_down': self.imu_z_down, 'tag_height_moves': self.tag_height is not None,
                'keyframes': None if self.keyframes is None else int(len(self.keyframes))}


def _both_signs(bias: np.ndarray, lo: float, hi: float, v: float) -> np.ndarray:
    """Where lo < 0 < hi and every bias has the same sign, the smallest one is replaced by v * lo or v * hi
    (v in (0, 1]) so that both signs occur."""
    if len(bias) < 2 or not lo < 0 < hi or (bias.min() < 0 < bias.max()):
        return bias
    out = bias.copy()
    i = int(np.argmin(np.abs(out)))
    out[i] = v * (lo if out.max() > 0 else hi)
    return out


def draw_habits(h: HabitsConfig, n_anchors: int, ceiling: float, duration: float, rng: np.random.Generator,
                rng_keyframes: np.random.Generator) -> Habits:
    u = rng.random(4)                                        # coplanar, tilt, z-down, tag height
    height = float(rng.uniform(*h.coplanar_height))
    lo, hi = (h.anchor_bias if h.anchor_bias is not None else (0.0, 0.0))
    bias = rng.uniform(lo, hi, n_anchors)
    bias = _both_signs(bias, float(lo), float(hi), float(rng.uniform(0.2, 1.0)))
    tilt_max = float(rng.uniform(*h.tilt_max))
    tilt = Tilt.draw(rng, tilt_max, h.tilt_hz)
    zlo, zhi = h.tag_height[0], min(h.tag_height[1], ceiling - 0.1)
    tag = Wave.draw(rng, zlo, max(zlo, zhi), h.tag_height_hz)
    keyframes = keyframe_times(duration, h.keyframe_interval, h.keyframe_gap_prob, h.keyframe_gap, rng_keyframes) \
        if h.keyframe_interval > 0 else None
    tilted = bool(u[1] < h.tilt_prob) and tilt_max > 0
    return Habits(uwb_shared_stamp=bool(h.uwb_shared_stamp),
                  anchor_bias=bias if h.anchor_bias is not None else None,
                  coplanar_height=min(height, ceiling - 0.05) if u[0] < h.coplanar_anchor_prob else None,
                  tilt=tilt if tilted else None, tilt_max=tilt_max if tilted else 0.0,
                  imu_z_down=bool(u[2] < h.imu_z_down_prob),
                  tag_height=tag if u[3] < h.tag_height_prob else None, keyframes=keyframes)


def apply_to_anchors(anchors: AnchorSet, habits: Habits) -> AnchorSet:
    """The anchors with the habits' biases and common height."""
    pos = anchors.positions.copy()
    if habits.coplanar_height is not None:
        pos[:, 2] = habits.coplanar_height
    bias = habits.anchor_bias if habits.anchor_bias is not None else anchors.bias
    return AnchorSet(ids=anchors.ids, positions=pos, bias=np.asarray(bias, dtype=np.float64).copy(),
                     layout=anchors.layout)


def effective_config(cfg: ScenarioConfig, habits: Habits) -> ScenarioConfig:
    """A copy of cfg as this scenario was really set up: the IMU turned upside down where it is mounted z-down,
    the run-time people count range of the realism config."""
    out = copy.deepcopy(cfg)
    if habits.imu_z_down:
        m = out.sensors.imu.mount
        m.roll = float(m.roll + math.pi if m.roll <= 0 else m.roll - math.pi)
    if cfg.realism.people is not None:
        out.dynamics.people = tuple(cfg.realism.people)
    return out
