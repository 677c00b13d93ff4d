"""REP-105 frames: the localizer publishes ``map -> odom`` and leaves ``odom -> base_link`` to the odometry source.

With ``T_map_base(t)`` the filter's estimate and ``T_odom_base(t)`` the odometry at the same stamp::

    T_map_odom(t) = T_map_base(t) * inverse(T_odom_base(t))

so that ``T_map_odom * T_odom_base == T_map_base`` at t. Corrections move ``map -> odom`` (the map frame may jump,
REP-105 allows it); ``odom -> base_link`` is never touched, so the odom frame stays continuous. Both poses must be
taken at the same stamp: :class:`MapOdomTracker` keeps a short history of odometry poses and interpolates the one
at the filter's stamp (extrapolating at most ``max_extrapolation`` s).

Planar poses are (3,) x, y, yaw (m, rad); :func:`planar_to_transform` gives the translation (3,) and quaternion
(4,) x y z w a TF message needs.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ..geometry import quat_to_yaw, se2_compose, se2_inverse, wrap_angle, yaw_to_quat


def map_to_odom(map_base: np.ndarray, odom_base: np.ndarray) -> np.ndarray:
    """(3,) map->odom from map->base_link (3,) and odom->base_link (3,) at the same stamp."""
    return se2_compose(np.asarray(map_base, dtype=np.float64), se2_inverse(np.asarray(odom_base, dtype=np.float64)))


def planar_to_transform(pose: np.ndarray, z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(3,) x y yaw -> (translation (3,), quaternion (4,) x y z w)."""
    p = np.asarray(pose, dtype=np.float64)
    return np.array([p[0], p[1], z]), yaw_to_quat(p[2])


def transform_to_planar(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    """(translation (3,), quaternion (4,) x y z w) -> (3,) x y yaw (roll, pitch and z dropped)."""
    t = np.asarray(translation, dtype=np.float64)
    return np.array([t[0], t[1], float(quat_to_yaw(np.asarray(quaternion, dtype=np.float64)))])


@dataclass(frozen=True)
class MapOdomConfig:
    """history: s of odometry kept; max_extrapolation: s an odometry pose may be extrapolated past the newest one
    (or before the oldest) when the filter's stamp is outside the buffer."""

    history: float = 5.0
    max_extrapolation: float = 0.2


class MapOdomTracker:
    """Computes the ``map -> odom`` the node publishes.

    ``add_odom`` with each odometry pose (odom -> base_link); ``update`` with each filter estimate
    (map -> base_link at its stamp) returns the new ``map -> odom``. ``map_pose`` composes the current
    ``map -> odom`` with an odometry pose (what a consumer of TF sees)."""

    def __init__(self, config: MapOdomConfig | None = None) -> None:
        self.config = config or MapOdomConfig()
        self._t: list[float] = []
        self._pose: list[np.ndarray] = []
        self._map_odom: np.ndarray | None = None
        self._stamp: float | None = None

    @property
    def map_odom(self) -> np.ndarray | None:
        """(3,) the latest map->odom, None before the first update."""
        return None if self._map_odom is None else self._map_odom.copy()

    @property
    def stamp(self) -> float | None:
        """Stamp of the filter estimate the latest map->odom was computed from."""
        return self._stamp

    def reset(self) -> None:
        """Forget the odometry history and map->odom (odometry restarted, time jumped back)."""
        self._t.clear()
        self._pose.clear()
        self._map_odom = None
        self._stamp = None

    def add_odom(self, stamp: float, pose: np.ndarray) -> None:
        """One odometry pose (3,) odom->base_link at ``stamp``; out-of-order stamps are inserted in order."""
        i = bisect.bisect_left(self._t, stamp)
        if i < len(self._t) and self._t[i] == stamp:
            self._pose[i] = np.asarray(pose, dtype=np.float64).copy()
            return
        self._t.insert(i, float(stamp))
        self._pose.insert(i, np.asarray(pose, dtype=np.float64).copy())
        horizon = self._t[-1] - self.config.history
        k = bisect.bisect_left(self._t, horizon)
        if k > 0 and len(self._t) - k >= 2:
            del self._t[:k], self._pose[:k]

    def odom_at(self, stamp: float) -> np.ndarray | None:
        """(3,) odom->base_link interpolated at ``stamp`` (linear in x, y, shortest-arc in yaw), extrapolated at
        most ``max_extrapolation`` s beyond the buffer; None when there is no odometry there."""
        t = self._t
        if not t:
            return None
        lim = self.config.max_extrapolation
        if stamp < t[0] - lim or stamp > t[-1] + lim:
            return None
        if len(t) == 1:
            return self._pose[0].copy()
        i = bisect.bisect_right(t, stamp)
        i0 = min(max(i - 1, 0), len(t) - 2)
        a, b = self._pose[i0], self._pose[i0 + 1]
        f = (stamp - t[i0]) / (t[i0 + 1] - t[i0])
        yaw = a[2] + f * float(wrap_angle(b[2] - a[2]))
        return np.array([a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), float(wrap_angle(yaw))])

    def update(self, stamp: float, map_base: np.ndarray) -> np.ndarray | None:
        """New map->base_link (3,) at ``stamp`` -> the map->odom to publish (3,), or None (keeping the previous
        one) when no odometry pose is available at that stamp."""
        odom = self.odom_at(stamp)
        if odom is None:
            return None
        self._map_odom = map_to_odom(map_base, odom)
        self._stamp = float(stamp)
        return self._map_odom.copy()

    def map_pose(self, odom_base: np.ndarray) -> np.ndarray | None:
        """(3,) map->base_link = map->odom * odom->base_link (odom_base (3,)), None before the first update."""
        if self._map_odom is None:
            return None
        return se2_compose(self._map_odom, np.asarray(odom_base, dtype=np.float64))


def odom_jump(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation m, |rotation| rad) between two planar poses (3,): the size of a frame discontinuity."""
    d = se2_compose(se2_inverse(np.asarray(a, dtype=np.float64)), np.asarray(b, dtype=np.float64))
    return math.hypot(d[0], d[1]), abs(float(d[2]))
