"""The sensor front end, without ROS: checks each measurement, buffers it, and counts what it dropped and why.

Both the ROS nodes (through :class:`flm_ros.sensor_input.SensorInput`) and offline replay (``flm-eval``) feed
measurements through :meth:`SensorFrontEnd.offer`, so a message is judged the same way live and offline.
Thread-safe: writers and readers take :attr:`lock`.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Any

from flm_core.measurements import PointCloud
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict
from flm_core.validation import MAX_POINTS, Expectations, rejection_reason

STREAMS = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')


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

    def __init__(self, config: TimeBufferConfig, expect: Expectations) -> None:
        self.lock = threading.RLock()
        self.buffer = TimeBuffer(config)
        self.expect = expect
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
        reason = rejection_reason(m, self.expect)
        with self.lock:
            self.received[stream] += 1
            if reason is not None:
                self.rejections[(stream, reason)] += 1
                return reason
            if isinstance(m, PointCloud) and m.xyz.shape[0] > MAX_POINTS:
                m = decimate(m)
                self.rejections[(stream, 'decimated')] += 1
            resets = self.buffer.resets
            v = self.buffer.add(stream, float(m.stamp), m, now=now)
            if self.buffer.resets != resets:
                self._last_stamp = {}   # a new timeline: ages of the old one mean nothing
            if v in (Verdict.ACCEPTED, Verdict.RESET):
                self._last_stamp[stream] = max(self._last_stamp.get(stream, -math.inf), float(m.stamp))
                if now is not None:
                    self._arrivals.setdefault(stream, deque(maxlen=256)).append(now)
            return v

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
        """Per stream: received, rate_hz, age_s, buffer verdict counts, rejections by reason."""
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
        return out
