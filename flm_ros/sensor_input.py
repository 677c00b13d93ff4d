"""Sensor subscriptions -> :class:`flm_core.frontend.SensorFrontEnd`.

Each configured stream (any subset of scan, points, depth, uwb, imu, odom) is subscribed with sensor-data QoS, on
its topic and its further topics (``sensors.<kind>.extra_topics``: several lidars feed the one scan or points
stream, each message in its own frame; each UWB topic is a tag of its own, its ranges tagged with that tag's frame);
each message is converted (:mod:`flm_ros.conversions`) and offered to the front end with the node clock's
``now`` (sim time under ``use_sim_time``); what came on each topic is counted (:meth:`SensorInput.stats`). A bad
message is dropped, counted by reason and logged (rate-limited); it never raises into the executor and never
disturbs what is already buffered.
"""
from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Callable

from nav_msgs.msg import Odometry
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan, PointCloud2, Range

from flm_core.config import load_config, make_front_end
from flm_core.frontend import STREAMS, SensorFrontEnd
from flm_core.measurements import CameraIntrinsics, RangeSample
from flm_core.site import Site
from flm_core.timebuffer import Verdict
from flm_ros import conversions as conv

MESSAGES: dict[str, tuple[type, Callable[[Any], Any]]] = {
    'scan': (LaserScan, conv.scan_from_msg),
    'points': (PointCloud2, conv.cloud_from_msg),
    'depth': (Image, conv.image_from_msg),
    'uwb': (Range, conv.range_from_msg),
    'imu': (Imu, conv.imu_from_msg),
    'odom': (Odometry, conv.odometry_from_msg),
}
assert set(MESSAGES) == set(STREAMS)

#: Where converted measurements go: (stream, measurement, clock now or None) -> verdict or rejection reason.
Sink = Callable[[str, Any, 'float | None'], 'Verdict | str']


def sensor_topics(params: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(stream, topic, UWB tag frame or '') of every topic of the enabled streams: ``sensors.<kind>.topic`` first,
    then its ``extra_topics`` (UWB: each with its ``extra_tag_frames`` entry; the main topic with ``tag_frame``).
    Assumes :func:`flm_ros.params.check` passed (one tag frame per further UWB topic)."""
    out = []
    for s in STREAMS:
        if not params.get(f'sensors.{s}.enabled', False):
            continue
        extra = list(params.get(f'sensors.{s}.extra_topics') or [])
        tags = [params['sensors.uwb.tag_frame'], *(params.get('sensors.uwb.extra_tag_frames') or [])] \
            if s == 'uwb' else [''] * (1 + len(extra))
        out.extend((s, t, tag) for t, tag in zip([params[f'sensors.{s}.topic'], *extra], tags))
    return out


def convert(stream: str, msg: Any, tag_frame: str = '') -> Any:
    """The measurement of a ROS message of ``stream`` (ValueError/TypeError if malformed); a UWB range is tagged
    with ``tag_frame``, the frame of the tag whose topic it came on ('' = the primary tag)."""
    m = MESSAGES[stream][1](msg)
    if tag_frame and isinstance(m, RangeSample):
        m.tag_frame = tag_frame
    return m


class SensorInput:
    """Subscribes to the enabled sensor streams of ``params`` and feeds ``front`` (a new front end if None)."""

    def __init__(self, node: Node, params: dict[str, Any], site: Site | None = None,
                 front: SensorFrontEnd | None = None, sink: Sink | None = None,
                 callback_group: CallbackGroup | None = None) -> None:
        """``sink(stream, measurement, now)`` receives each converted message (default: ``front.offer``; the
        localizer passes its pipeline's ``offer`` so odometry/IMU also drive its filter)."""
        self.node = node
        self.front = front or make_front_end(load_config(params), site)
        self.sink: Sink = sink or self.front.offer
        self.camera_info: CameraIntrinsics | None = None
        self._subs: list[Any] = []
        self.enabled = [s for s in STREAMS if params.get(f'sensors.{s}.enabled', False)]
        self.topics: dict[str, list[str]] = {}                # stream -> resolved topic names
        self.topic_counts: Counter[tuple[str, str]] = Counter()   # (topic, 'received'|'accepted') -> count
        for name, topic, tag in sensor_topics(params):
            msg_type, _ = MESSAGES[name]
            sub = node.create_subscription(msg_type, topic, partial(self._on_message, name, len(self._subs), tag),
                                           qos_profile_sensor_data, callback_group=callback_group)
            self._subs.append(sub)
            self.topics.setdefault(name, []).append(sub.topic_name)
        if 'depth' in self.enabled:
            self._subs.append(node.create_subscription(
                CameraInfo, params['sensors.depth.camera_info_topic'], self._on_camera_info,
                qos_profile_sensor_data, callback_group=callback_group))

    def destroy(self) -> None:
        for s in self._subs:
            self.node.destroy_subscription(s)
        self._subs = []

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.camera_info = conv.camera_info_from_msg(msg)
        except ValueError as e:
            self._log_rejection('camera_info', 'malformed', self.front.reject('camera_info', 'malformed'), str(e))

    def _on_message(self, name: str, k: int, tag: str, msg: Any) -> None:
        topic = self._subs[k].topic_name
        self.topic_counts[(topic, 'received')] += 1
        if self.offer(name, msg, tag) in (Verdict.ACCEPTED, Verdict.RESET):
            self.topic_counts[(topic, 'accepted')] += 1

    def offer(self, name: str, msg: Any, tag_frame: str = '') -> Verdict | str:
        """Convert and offer one message of stream ``name`` (a UWB range: of the tag in ``tag_frame``, '' = the
        primary tag); returns the verdict or the rejection reason."""
        now = self.now()
        try:
            m = convert(name, msg, tag_frame)
        except (ValueError, TypeError, OverflowError) as e:
            self._log_rejection(name, 'malformed', self.front.reject(name, 'malformed'), str(e))
            return 'malformed'
        # sim time reads 0 until /clock arrives: do not judge stamps against an unset clock
        v = self.sink(name, m, now if now > 0 else None)
        if isinstance(v, str) and not isinstance(v, Verdict):
            self._log_rejection(name, v, self.front.rejections[(name, v)])
        elif v == Verdict.RESET:
            self.node.get_logger().warn(f'time jumped back on {name}: sensor buffers reset')
        return v

    def _log_rejection(self, name: str, reason: str, n: int, detail: str = '') -> None:
        if n in (1, 10, 100) or n % 1000 == 0:  # logged, but not once per message
            self.node.get_logger().warn(
                f'{name}: rejected message ({reason}{": " + detail if detail else ""}); {n} so far')

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per stream: the front end's figures (:meth:`SensorFrontEnd.stats`), its topics, and per topic the
        messages received and accepted (``topic./front/scan.received``)."""
        out = self.front.stats(self.enabled, self.now())
        counts = dict(self.topic_counts)
        for name, topics in self.topics.items():
            out[name]['topics'] = ','.join(topics)
            for t in topics:
                out[name][f'topic.{t}.received'] = counts.get((t, 'received'), 0)
                out[name][f'topic.{t}.accepted'] = counts.get((t, 'accepted'), 0)
        return out
