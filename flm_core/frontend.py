"""The sensor front end, without ROS: checks each measurement, buffers it, and counts what it dropped and why.

On the way in it also takes inputs as real drivers send them: UWB ranges that share one stamp (one ranging frame)
are kept, one per anchor and tag; scans (clouds, images) of several sensors that share a stamp are kept, one per
frame; IMU samples are rotated by their TF mount and levelled (:mod:`flm_core.imu`), so the
filter and the model see base_link's horizontal acceleration and yaw rate whatever the mounting and the floor's
tilt; odometry whose pose increment implies an implausible speed (a 1 ms stamp gap with 7 cm of motion) is
rejected, counted as ``implausible_increment``.

Both the ROS nodes (through :class:`flm_ros.sensor_input.SensorInput`) and offline replay (``flm-eval``) feed
measurements through :meth:`SensorFrontEnd.offer`, so a message is judged the same way live and offline.
Thread-safe: writers and readers take :attr:`lock`.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Any, Callable

import numpy as np

from flm_core.geometry import quat_to_yaw_float, wrap_angle_float
from flm_core.imu import ImuLeveler
from flm_core.measurements import Image, ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict
from flm_core.validation import MAX_POINTS, Expectations, rejection_reason

#: (frame_id) -> (4,) quaternion x y z w of that sensor frame in base_link, or None while TF does not know it.
MountLookup = Callable[[str], 'np.ndarray | None']
IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])
IMPLAUSIBLE_RUN = 10   # consecutive implausible odometry increments after which the odometry is taken as it is

STREAMS = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')


def buffer_key(m: Any) -> Any:
    """What tells same-stamp items of one stream apart in the buffer (:meth:`TimeBuffer.add` ``key``): a UWB range
    by (tag frame, anchor id) - one ranging frame stamps every anchor alike, and two tags may range at one stamp -;
    a scan, cloud or image by its frame (two lidars may share a stamp); None otherwise (one item per stamp)."""
    if isinstance(m, RangeSample):
        return (m.tag_frame, m.anchor_id)
    if isinstance(m, (LaserScan2D, PointCloud, Image)):
        return m.frame_id
    return None


def decimate(cloud: PointCloud, max_points: int = MAX_POINTS) -> PointCloud:
    """Every k-th point so that at most ``max_points`` remain (k the smallest integer that does it)."""
    step = -(-cloud.xyz.shape[0] // max_points)
    if step <= 1:
        return cloud
    sub = (lambda a: None if a is None else a[::step])
    return PointCloud(stamp=cloud.stamp, frame_id=cloud.frame_id, xyz=cloud.xyz[::step],
                      intensity=sub(cloud.intensity), ring=sub(cloud.ring), time=sub(cloud.time))


class SensorFrontEnd:
    """Validated, time-ordered measurements of every stream, with counters (see the module docstring)."""

    def __init__(self, config: TimeBufferConfig, expect: Expectations, mount: MountLookup | None = None) -> None:
        """``mount``: where sensor frames sit (TF); the IMU's rotation comes from it (see the module docstring)."""
        self.lock = threading.RLock()
        self.buffer = TimeBuffer(config)
        self.expect = expect
        self.mount: MountLookup = mount or (lambda frame: None)
        self.leveler = ImuLeveler(base_frame=expect.base_frame)
        self.unmounted: set[str] = set()      # IMU frames TF did not know when their samples came: gravity only
        self._implausible = 0                  # current run of implausible odometry increments
        self.rejections: Counter[tuple[str, str]] = Counter()   # (stream, reason) -> count
        self.received: Counter[str] = Counter()
        self._arrivals: dict[str, deque[float]] = {}
        self._last_stamp: dict[str, float] = {}   # newest accepted stamp per stream (kept after buffer pruning)

    def reject(self, stream: str, reason: str) -> int:
        """Count a rejection decided before a measurement existed (e.g. a malformed message); returns the
        count for this (stream, reason) so far."""
        with self.lock:
            self.received[stream] += 1
            self.rejections[(stream, reason)] += 1
            return self.rejections[(stream, reason)]

    def offer(self, stream: str, m: Any, now: float | None) -> Verdict | str:
        """Check and buffer measurement ``m`` of ``stream`` at clock time ``now`` (None: no clock, e.g. offline
        replay without receive times). Returns the buffer verdict, or the rejection reason string."""
        return self.admit(stream, m, now)[0]

    def admit(self, stream: str, m: Any, now: float | None) -> tuple[Verdict | str, Any]:
        """:meth:`offer`, also returning the measurement as it was buffered (an IMU sample levelled, a cloud
        decimated): what the filter and the model see."""
        reason = rejection_reason(m, self.expect)
        with self.lock:
            self.received[stream] += 1
            if reason is not None:
                self.rejections[(stream, reason)] += 1
                return reason, m
            if isinstance(m, PointCloud) and m.xyz.shape[0] > MAX_POINTS:
                m = decimate(m)
                self.rejections[(stream, 'decimated')] += 1
            elif isinstance(m, ImuSample):
                m = self._level(m)
            elif isinstance(m, OdometrySample) and not self._plausible(stream, m):
                self.rejections[(stream, 'implausible_increment')] += 1
                return 'implausible_increment', m
            resets = self.buffer.resets
            key = buffer_key(m)
            v = self.buffer.add(stream, float(m.stamp), m, now=now, key=key)
            if self.buffer.resets != resets:
                self._last_stamp = {}   # a new timeline: ages of the old one mean nothing
            if v in (Verdict.ACCEPTED, Verdict.RESET):
                self._last_stamp[stream] = max(self._last_stamp.get(stream, -math.inf), float(m.stamp))
                if now is not None:
                    self._arrivals.setdefault(stream, deque(maxlen=256)).append(now)
            return v, m

    def _level(self, m: ImuSample) -> ImuSample:
        q = IDENTITY if m.frame_id.lstrip('/') == self.expect.base_frame else self.mount(m.frame_id)
        if q is None:
            self.unmounted.add(m.frame_id)
        return self.leveler.level(m, q)

    def _plausible(self, stream: str, m: OdometrySample) -> bool:
        """Whether the pose increment from the buffered odometry sample before ``m`` is one a robot can make
        (``Expectations.max_speed`` / ``max_yaw_rate``, with 1 cm / 0.01 rad of slack for quantised poses). After
        ``IMPLAUSIBLE_RUN`` rejections in a row the odometry itself jumped (a reset): it is taken from there on."""
        prev = self.buffer.before(stream, float(m.stamp))
        if prev is None or self._implausible >= IMPLAUSIBLE_RUN:
            self._implausible = 0
            return True
        dt = float(m.stamp) - prev[0]
        p = prev[1]
        d = math.hypot(float(m.position[0] - p.position[0]), float(m.position[1] - p.position[1]))
        dyaw = abs(wrap_angle_float(quat_to_yaw_float(m.orientation.tolist())
                                    - quat_to_yaw_float(p.orientation.tolist())))
        if d > self.expect.max_speed * dt + 0.01 or dyaw > self.expect.max_yaw_rate * dt + 0.01:
            self._implausible += 1
            return False
        self._implausible = 0
        return True

    def rate(self, stream: str, now: float, horizon: float = 5.0) -> float:
        """Accepted messages per second over the last ``horizon`` s of arrival (clock) time."""
        with self.lock:
            recent = [t for t in self._arrivals.get(stream, ()) if now - horizon <= t <= now]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def age(self, stream: str, now: float) -> float | None:
        """Seconds from the newest accepted stamp of ``stream`` to ``now`` (None if nothing was ever accepted, or
        nothing since time jumped back). Kept after the buffer forgot the data, so a stream that stopped reads as
        stale, not as absent."""
        with self.lock:
            last = self._last_stamp.get(stream)
        return None if last is None else now - last

    def stats(self, streams: list[str], now: float) -> dict[str, dict[str, Any]]:
        """Per stream: received, rate_hz, age_s, buffer verdict counts, rejections by reason; for the IMU also the
        frames levelled by gravity alone (TF did not know their mount) and the orientations ignored."""
        with self.lock:
            counts = self.buffer.counts()
            rejections = dict(self.rejections)
            received = dict(self.received)
        out: dict[str, dict[str, Any]] = {}
        for name in streams:
            out[name] = {
                'received': received.get(name, 0),
                'rate_hz': self.rate(name, now),
                'age_s': self.age(name, now),
                **{f'buffer.{k}': v for k, v in counts.get(name, {}).items()},
                **{f'rejected.{r}': c for (s, r), c in rejections.items() if s == name},
            }
        if 'imu' in out:   # how the IMU was levelled: frames TF did not know, orientations that contradicted gravity
            out['imu']['levelled_by_gravity_only'] = ','.join(sorted(self.unmounted))
            out['imu']['orientation_ignored'] = self.leveler.disagreements
        return out
