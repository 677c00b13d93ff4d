"""Sensor subscriptions -> validated measurements in a time buffer, with every rejection counted.

Used by every FLM-ROS node that consumes sensors. Each configured stream (any subset of scan, points, depth,
uwb, imu, odom) is subscribed with sensor-data QoS; each message is converted (:mod:`flm_ros.conversions`),
checked (:mod:`flm_core.validation`), and offered to a :class:`flm_core.timebuffer.TimeBuffer` together with the
node clock's ``now`` (sim time under ``use_sim_time``). A bad message is dropped and counted by reason; it
never raises into the executor and never disturbs what is already buffered.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

from nav_msgs.msg import Odometry
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan, PointCloud2, Range

from flm_core.measurements import CameraIntrinsics, PointCloud
from flm_core.site import Site
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict
from flm_core.validation import MAX_POINTS, Expectations, rejection_reason
from flm_ros import conversions as conv


@dataclass(frozen=True)
class StreamDef:
    msg_type: type
    convert: Callable[[Any], Any]


STREAMS: dict[str, StreamDef] = {
    'scan': StreamDef(LaserScan, conv.scan_from_msg),
    'points': StreamDef(PointCloud2, conv.cloud_from_msg),
    'depth': StreamDef(Image, conv.image_from_msg),
    'uwb': StreamDef(Range, conv.range_from_msg),
    'imu': StreamDef(Imu, conv.imu_from_msg),
    'odom': StreamDef(Odometry, conv.odometry_from_msg),
}


def _stamp_of(m: Any) -> float:
    return float(m.stamp)


def buffer_config(params: dict[str, Any]) -> TimeBufferConfig:
    """TimeBufferConfig from the node parameters (see flm_ros.params)."""
    return TimeBufferConfig(window=float(params['buffer.window']), max_lateness=float(params['buffer.max_lateness']),
                            jump_back=float(params['buffer.jump_back']), max_future=float(params['buffer.max_future']),
                            max_per_stream=int(params['buffer.max_per_stream']))


class SensorInput:
    """Subscribes to the enabled sensor streams of ``params`` and fills :attr:`buffer`.

    Thread-safe: callbacks may run in a multi-threaded executor; readers take :attr:`lock`.
    """

    def __init__(self, node: Node, params: dict[str, Any], site: Site | None = None,
                 callback_group: CallbackGroup | None = None) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.buffer = TimeBuffer(buffer_config(params))
        self.expect = Expectations(
            odom_frame=params['odom_frame'], base_frame=params['base_frame'],
            anchor_ids=frozenset(a.id for a in site.anchors) if site else frozenset())
        self.rejections: Counter[tuple[str, str]] = Counter()   # (stream, reason) -> count
        self.received: Counter[str] = Counter()
        self.camera_info: CameraIntrinsics | None = None
        self._arrivals: dict[str, deque[float]] = {}
        self._subs = []
        self.enabled = [s for s in STREAMS if params.get(f'sensors.{s}.enabled', False)]
        for name in self.enabled:
            d = STREAMS[name]
            topic = params[f'sensors.{name}.topic']
            self._arrivals[name] = deque(maxlen=256)
            self._subs.append(node.create_subscription(
                d.msg_type, topic, self._callback(name, d), qos_profile_sensor_data, callback_group=callback_group))
        if 'depth' in self.enabled:
            self._subs.append(node.create_subscription(
                CameraInfo, params['sensors.depth.camera_info_topic'], self._on_camera_info,
                qos_profile_sensor_data, callback_group=callback_group))

    def destroy(self) -> None:
        for s in self._subs:
            self.node.destroy_subscription(s)
        self._subs = []

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.camera_info = conv.camera_info_from_msg(msg)
        except ValueError:
            self.rejections[('camera_info', 'malformed')] += 1

    def _callback(self, name: str, d: StreamDef) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            self.offer(name, msg, d.convert)
        return cb

    def offer(self, name: str, msg: Any, convert: Callable[[Any], Any] | None = None) -> Verdict | str:
        """Convert, check and buffer one message of stream ``name``; returns the verdict or rejection reason."""
        now = self._now()
        self.received[name] += 1
        try:
            m = (convert or STREAMS[name].convert)(msg)
        except (ValueError, TypeError, OverflowError) as e:
            return self._reject(name, 'malformed', str(e))
        reason = rejection_reason(m, self.expect)
        if reason is not None:
            return self._reject(name, reason)
        if isinstance(m, PointCloud) and m.xyz.shape[0] > MAX_POINTS:
            step = -(-m.xyz.shape[0] // MAX_POINTS)
            m = PointCloud(stamp=m.stamp, frame_id=m.frame_id, xyz=m.xyz[::step],
                           intensity=None if m.intensity is None else m.intensity[::step],
                           ring=None if m.ring is None else m.ring[::step],
                           time=None if m.time is None else m.time[::step])
            self.rejections[(name, 'decimated')] += 1
        with self.lock:
            # sim time starts at 0 until /clock arrives: do not judge stamps against an unset clock
            v = self.buffer.add(name, _stamp_of(m), m, now=now if now > 0 else None)
        if v in (Verdict.ACCEPTED, Verdict.RESET):
            self._arrivals[name].append(now)
            if v == Verdict.RESET:
                self.node.get_logger().warn(f'time jumped back on {name}: sensor buffers reset')
        return v

    def _reject(self, name: str, reason: str, detail: str = '') -> str:
        self.rejections[(name, reason)] += 1
        n = self.rejections[(name, reason)]
        if n in (1, 10, 100) or n % 1000 == 0:  # logged, but not once per message
            self.node.get_logger().warn(f'{name}: rejected message ({reason}{": " + detail if detail else ""}); '
                                        f'{n} so far')
        return reason

    def rate(self, name: str, now: float | None = None, horizon: float = 5.0) -> float:
        """Accepted messages per second over the last ``horizon`` s (by arrival on the node clock)."""
        now = self._now() if now is None else now
        arr = self._arrivals.get(name, ())
        recent = [t for t in arr if now - horizon <= t <= now]
        if len(recent) < 2:
            return 0.0
        span = max(recent[-1] - recent[0], 1e-9)
        return (len(recent) - 1) / span

    def age(self, name: str, now: float | None = None) -> float | None:
        """Seconds since the newest buffered stamp of ``name`` (None if nothing buffered)."""
        now = self._now() if now is None else now
        with self.lock:
            last = self.buffer.last_stamp(name)
        return None if last is None else now - last

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per stream: received, buffer verdict counts, rejections by reason, rate (Hz), age (s)."""
        now = self._now()
        with self.lock:
            counts = self.buffer.counts()
        out: dict[str, dict[str, Any]] = {}
        for name in self.enabled:
            out[name] = {
                'received': self.received[name],
                'rate_hz': self.rate(name, now),
                'age_s': self.age(name, now),
                **{f'buffer.{k}': v for k, v in counts.get(name, {}).items()},
                **{f'rejected.{r}': c for (s, r), c in self.rejections.items() if s == name},
            }
        return out
