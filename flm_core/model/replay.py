"""Adapter: a generated :class:`flm_core.datagen.Scenario` seen exactly as the runtime sees a robot.

:class:`ScenarioReplay` exposes the scenario's sensor streams as stamp-sorted ``(stamp, measurement)`` lists under the
runtime stream names (``scan``, ``points``, ``depth``, ``uwb``, ``imu``, ``odom``), a :meth:`window` with the
semantics of ``TimeBuffer.window``, the :class:`~flm_core.model.tokens.Rig` (mounts + depth intrinsics) and the
ground truth. Training, the benches and the tests all go through it, so the model is trained on the same
measurement objects the ROS node hands it. (Written against the datagen API as of issue 3; the only datagen
objects used are ``Scenario.streams[*].measurements()/cloud()``, ``timing.stamp``, ``config.sensors.*.mount``,
``DepthStream.intrinsics``, ``trajectory.sample`` and ``building.free_space``.)
"""
from __future__ import annotations

import bisect
from typing import Any, Callable

import numpy as np

from ..measurements import Image
from ..site import Site
from .tokens import Rig

#: datagen stream name -> runtime stream name
STREAM_NAMES: dict[str, str] = {'lidar2d': 'scan', 'lidar3d': 'points', 'depth': 'depth', 'uwb': 'uwb',
                                'imu': 'imu', 'odom': 'odom'}


class _Lazy:
    """A stamp-sorted stream whose measurement objects are made on demand."""

    def __init__(self, stamps: np.ndarray, make: Callable[[int], Any]) -> None:
        self.order = np.argsort(stamps, kind='stable')
        self.stamps = [float(s) for s in np.asarray(stamps)[self.order]]
        self.make = make

    def slice(self, lo_t: float, hi_t: float) -> list[tuple[float, Any]]:
        lo = bisect.bisect_left(self.stamps, lo_t)
        hi = bisect.bisect_right(self.stamps, hi_t)
        return [(self.stamps[i], self.make(int(self.order[i]))) for i in range(lo, hi)]

    def nearest_index(self, t: float) -> int:
        i = min(max(bisect.bisect_left(self.stamps, t), 0), len(self.stamps) - 1)
        return int(self.order[i])


class ScenarioReplay:
    """Runtime view of a generated scenario (see the module docstring)."""

    def __init__(self, scenario: Any) -> None:
        sc = scenario
        self.scenario = sc
        self.duration = float(sc.config.duration)
        self.site: Site = sc.site()
        s = sc.config.sensors
        mounts = {}
        for dg in STREAM_NAMES:
            c = getattr(s, dg)
            if dg != 'odom':
                mounts[c.frame_id] = (c.mount.x, c.mount.y, c.mount.z, c.mount.yaw)
        depth = sc.streams.get('depth')
        self.rig = Rig(mounts=mounts, uwb_frame=s.uwb.frame_id,
                       depth_intrinsics=depth.intrinsics if depth is not None else None)
        self.streams: dict[str, _Lazy] = {}
        for dg, st in sc.streams.items():
            name = STREAM_NAMES.get(dg)
            if name is None:
                continue
            if dg == 'lidar3d':
                make = st.cloud
            elif dg == 'depth':
                make = (lambda d: (lambda i: Image(stamp=float(d.timing.stamp[i]), frame_id=d.frame_id,
                                                   encoding='32FC1', data=d.depth[i])))(st)
            else:
                items = list(st.measurements())
                make = items.__getitem__
            self.streams[name] = _Lazy(np.asarray(st.timing.stamp), make)

    def window(self, t: float, width: float = 2.0, streams: list[str] | None = None
               ) -> dict[str, list[tuple[float, Any]]]:
        """Measurements stamped in [t - width, t], per stream, oldest first (like ``TimeBuffer.window``)."""
        names = streams if streams is not None else list(self.streams)
        return {n: (self.streams[n].slice(t - width, t) if n in self.streams else []) for n in names}

    def measurement_near(self, stream: str, t: float) -> Any:
        """The measurement object of ``stream`` stamped nearest to t."""
        s = self.streams[stream]
        return s.make(s.nearest_index(t))

    def truth(self, t: float | np.ndarray) -> np.ndarray:
        """Ground-truth base_link pose(s) (x, y, yaw) at time(s) t: (3,) or (n, 3)."""
        tt = np.atleast_1d(np.asarray(t, dtype=np.float64))
        p = self.scenario.trajectory.sample(tt).pose
        return p[0] if np.ndim(t) == 0 else p

    def free_positions(self, clearance: float = 0.3) -> np.ndarray:
        """(M, 2) map-frame centres of free cells with the given clearance (for global-mode hypotheses)."""
        b = self.scenario.building
        rows, cols = np.nonzero(b.free_space(clearance))
        return b.map.cell_to_world(np.stack([cols, rows], -1))

    @property
    def family(self) -> str:
        return str(self.scenario.building.family)
