"""Running baselines on generated scenarios (:mod:`flm_core.datagen`): the glue the tests, ``bench/baselines.py``
and later ``flm-eval --compare`` share.

* :func:`scenario_messages` - every message of the chosen streams as measurement objects, in arrival order (the
  order a node would receive them: inputs and scans interleave, some arrive after later-stamped ones);
* :func:`scenario_extrinsics` - sensor mounts ``{frame_id: (x, y, z, yaw)}`` from the scenario's config;
* :func:`scenario_point_map` - the 2D (occupancy) or 3D map a scan-matching baseline registers against (generated
  sites carry no ``point_map``, so the 3D one is built from the building's extruded grid);
* :func:`run_baseline` - reset, feed everything, record the online estimate at the evaluation times.

Only duck-typed access to scenarios (``streams[name].timing.arrival``, ``.measurements()``, ``.cloud(i)``,
``config.sensors``, ``building``, ``site()``, ``trajectory.sample``), no import of datagen at module level.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..geometry import se2_compose
from .baselines import Baseline, Mount
from .icp import PointMap, extrusion_point_map

#: Streams the baselines can use (depth images are not used by any classical baseline here).
BASELINE_STREAMS = ('imu', 'odom', 'lidar2d', 'lidar3d', 'uwb')


def scenario_extrinsics(scenario: Any) -> dict[str, Mount]:
    """{frame_id: (x, y, z, yaw)} of every sensor of the scenario's config, in base_link."""
    out: dict[str, Mount] = {}
    sensors = scenario.config.sensors
    for name in ('lidar2d', 'lidar3d', 'depth', 'uwb', 'imu', 'odom'):
        sc = getattr(sensors, name, None)
        if sc is None or name == 'odom':
            continue
        m = sc.mount
        out[sc.frame_id] = (float(m.x), float(m.y), float(m.z), float(m.yaw))
    return out


def scenario_messages(scenario: Any, streams: tuple[str, ...] = BASELINE_STREAMS) -> Iterator[tuple[float, str, Any]]:
    """Yield (arrival s, stream name, measurement) for the chosen streams, sorted by arrival (ties by stamp)."""
    lists: dict[str, Any] = {}
    order = {n: k for k, n in enumerate(BASELINE_STREAMS)}
    keyed: list[tuple[float, float, int, str, int]] = []
    for name in streams:
        s = scenario.streams.get(name)
        if s is None:
            continue
        lists[name] = s
        keyed.extend((float(a), float(b), order.get(name, 9), name, i)
                     for i, (a, b) in enumerate(zip(s.timing.arrival, s.timing.stamp)))
    keyed.sort()
    materialised: dict[str, list[Any]] = {}
    for name, s in lists.items():
        if name != 'lidar3d':
            materialised[name] = list(s.measurements())
    for a, _, _, name, i in keyed:
        if name == 'lidar3d':
            yield a, name, lists[name].cloud(i)
        else:
            yield a, name, materialised[name][i]


def scenario_point_map(scenario: Any, dim: int, voxel: float = 0.15) -> PointMap:
    """The map a scan-matching baseline registers against: dim 2 from the site's occupancy map, dim 3 from the
    site's point map or, without one, from the building's extruded grid (floor, ceiling, walls, furniture)."""
    site = scenario.site()
    if dim == 2:
        if site.map is None:
            raise ValueError(f'site {site.name!r} has no occupancy map')
        return PointMap.from_occupancy(site.map)
    if site.point_map is not None:
        return PointMap.from_points(site.point_map, voxel=voxel)
    b = scenario.building
    pts, nrm = extrusion_point_map(b.zlo, b.zhi, b.map, b.ceiling, inside=b.inside)
    return PointMap.from_points(pts, nrm, voxel=voxel)


def perturbed_start(pose: np.ndarray, rng: np.random.Generator, trans: float = 0.3, rot: float = math.radians(10)
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A user's initial pose: ``pose`` (3,) moved by ``trans`` m in a random direction and turned by +-``rot`` rad;
    returns (pose (3,), cov (3, 3)): Nav2's default initial covariance (0.5 m, pi/12 rad std), widened when the
    offset is larger."""
    a = rng.uniform(-math.pi, math.pi)
    sgn = 1.0 if rng.random() < 0.5 else -1.0
    p = np.array([pose[0] + trans * math.cos(a), pose[1] + trans * math.sin(a), pose[2] + sgn * rot])
    sxy, syaw = max(0.5, trans), max(math.pi / 12, rot)
    cov = np.diag([sxy ** 2, sxy ** 2, syaw ** 2])
    return se2_compose(p, np.zeros(3)), cov


@dataclass
class RunResult:
    """t (E,) evaluation times; pose (E, 3) (NaN where the baseline had no estimate); cov (E, 3, 3);
    update_ms (K,) wall time of each absolute update; tracking_ms (T,) those of them made while tracking, where the
    baseline tells (else empty); cpu_s total wall time inside the baseline; duration s of data; diagnostics the
    baseline's counters."""

    name: str
    t: np.ndarray
    pose: np.ndarray
    cov: np.ndarray
    update_ms: np.ndarray
    cpu_s: float
    duration: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    tracking_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))


def run_baseline(baseline: Baseline, messages: Iterator[tuple[float, str, Any]], eval_t: np.ndarray,
                 start: tuple[float, np.ndarray, np.ndarray]) -> RunResult:
    """Reset ``baseline`` with ``start`` = (stamp, pose (3,), cov (3, 3)), feed ``messages`` (arrival, name,
    measurement) in order and, at each evaluation time, record ``estimate(t)`` after everything that arrived by
    then (the online estimate a consumer would have had)."""
    eval_t = np.asarray(eval_t, dtype=np.float64)
    E = len(eval_t)
    pose = np.full((E, 3), np.nan)
    cov = np.full((E, 3, 3), np.nan)
    cpu = 0.0
    t0 = time.perf_counter()
    baseline.reset(*start)
    cpu += time.perf_counter() - t0
    k = 0

    def record_until(arrival: float) -> None:
        nonlocal k, cpu
        while k < E and eval_t[k] < arrival:
            t1 = time.perf_counter()
            est = baseline.estimate(float(eval_t[k]))
            cpu += time.perf_counter() - t1
            if est is not None:
                pose[k], cov[k] = est.pose, est.cov
            k += 1

    for arrival, _, m in messages:
        record_until(arrival)
        t1 = time.perf_counter()
        baseline.step(m)
        cpu += time.perf_counter() - t1
    record_until(math.inf)
    dur = float(eval_t[-1] - eval_t[0]) if E > 1 else 0.0
    return RunResult(name=baseline.name, t=eval_t, pose=pose, cov=cov,
                     update_ms=np.asarray(baseline.update_times) * 1e3, cpu_s=cpu, duration=dur,
                     diagnostics=baseline.diagnostics(),
                     tracking_ms=np.asarray(getattr(baseline, 'tracking_times', []), dtype=np.float64) * 1e3)
