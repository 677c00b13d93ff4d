"""Sensor subscriptions -> :class:`flm_core.frontend.SensorFrontEnd`.

Each configured stream (any subset of scan, points, depth, uwb, imu, odom) is subscribed with sensor-data QoS;
each message is converted (:mod:`flm_ros.conversions`) and offered to the front end with the node clock's
``now`` (sim time under ``use_sim_time``). A bad message is dropped, counted by reason and logged (rate-limited);
it never raises into the executor and never disturbs what is already buffered.
"""
from __future__ import annotations

from typing import Any, Callable

from nav_msgs.msg import Odometry
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan, PointCloud2, Range

from flm_core.config import load_config, make_front_end
from flm_core.frontend import STREAMS, SensorFrontEnd
from flm_core.measurements import CameraIntrinsics
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


def convert(stream: str, msg: Any) -> Any:
    """The measurement of a ROS message of ``stream`` (ValueError/TypeError if malformed)."""
    return MESSAGES[stream][1](msg)


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
        for name in self.enabled:
            msg_type, _ = MESSAGES[name]
            self._subs.append(node.create_subscription(
                msg_type, params[f'sensors.{name}.topic'], self._callback(name), qos_profile_sensor_data,
                callback_group=callback_group))
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

    def _callback(self, name: str) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            self.offer(name, msg)
        return cb

    def offer(self, name: str, msg: Any) -> Verdict | str:
        """Convert and offer one message of stream ``name``; returns the verdict or the rejection reason."""
        now = self.now()
        try:
            m = convert(name, msg)
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
        return self.front.stats(self.enabled, self.now())
