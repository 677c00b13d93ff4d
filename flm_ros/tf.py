"""TF for flm_ros: broadcasters for /tf and /tf_static, and a buffer + listener with tf2's semantics.

``tf2_ros`` is used when it is importable (a normal ROS 2 install). Otherwise the project's own classes below
stand in with the same names, constructor arguments and behaviour for what the project uses:

* ``TransformBroadcaster(node).sendTransform(t | [t, ...])`` on ``/tf`` (depth 100);
* ``StaticTransformBroadcaster(node).sendTransform(...)`` on ``/tf_static`` (reliable, transient local, depth 1),
  latching every static transform sent so far, keyed by child frame;
* ``Buffer(cache_time=Duration)`` with ``lookup_transform(target, source, time, timeout=None)`` and
  ``can_transform(...)``; ``Time()`` (zero) means the latest common time; errors are ``LookupException``,
  ``ConnectivityException``, ``ExtrapolationException``, all ``TransformException``;
* ``TransformListener(buffer, node)`` subscribing to both topics (static QoS for ``/tf_static``).

The tree logic lives in :mod:`flm_core.tftree`; this module only converts messages.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from flm_core import tftree

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


def transform_to_arrays(t: TransformStamped) -> tuple[float, np.ndarray, np.ndarray]:
    """TransformStamped -> (stamp s, translation (3,), quaternion (4,) xyzw)."""
    tr, r = t.transform.translation, t.transform.rotation
    stamp = t.header.stamp.sec + t.header.stamp.nanosec * 1e-9
    return stamp, np.array([tr.x, tr.y, tr.z]), np.array([r.x, r.y, r.z, r.w])


def make_transform(parent: str, child: str, stamp: Time | float, translation: Iterable[float],
                   rotation: Iterable[float]) -> TransformStamped:
    """Build a TransformStamped from arrays (translation (3,) m, rotation (4,) xyzw)."""
    t = TransformStamped()
    if isinstance(stamp, Time):
        t.header.stamp = stamp.to_msg()
    else:
        ns = int(round(float(stamp) * 1e9))
        t.header.stamp.sec, t.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
    t.header.frame_id = parent
    t.child_frame_id = child
    x, y, z = (float(v) for v in translation)
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = x, y, z
    qx, qy, qz, qw = (float(v) for v in rotation)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = qx, qy, qz, qw
    return t


class _OwnTransformBroadcaster:
    """Publishes TransformStamped on /tf (tf2_ros.TransformBroadcaster semantics)."""

    def __init__(self, node: Node, qos: QoSProfile | int = TF_QOS) -> None:
        self._pub = node.create_publisher(TFMessage, '/tf', qos)

    def sendTransform(self, transform: TransformStamped | list[TransformStamped]) -> None:  # noqa: N802 (tf2 name)
        ts = transform if isinstance(transform, list) else [transform]
        self._pub.publish(TFMessage(transforms=ts))


class _OwnStaticTransformBroadcaster:
    """Latches static transforms on /tf_static; each call republishes all of them (tf2_ros semantics)."""

    def __init__(self, node: Node, qos: QoSProfile | int = TF_STATIC_QOS) -> None:
        self._pub = node.create_publisher(TFMessage, '/tf_static', qos)
        self._net: dict[str, TransformStamped] = {}

    def sendTransform(self, transform: TransformStamped | list[TransformStamped]) -> None:  # noqa: N802
        for t in transform if isinstance(transform, list) else [transform]:
            self._net[t.child_frame_id] = t
        self._pub.publish(TFMessage(transforms=list(self._net.values())))


class _OwnBuffer:
    """tf2_ros.Buffer stand-in backed by :class:`flm_core.tftree.TransformTree`."""

    def __init__(self, cache_time: Duration | None = None, node: Node | None = None) -> None:
        secs = 10.0 if cache_time is None else cache_time.nanoseconds * 1e-9
        self._tree = tftree.TransformTree(cache_time=secs)

    def set_transform(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, static=False)

    def set_transform_static(self, transform: TransformStamped, authority: str) -> bool:
        return self._set(transform, static=True)

    def _set(self, transform: TransformStamped, static: bool) -> bool:
        stamp, tr, q = transform_to_arrays(transform)
        try:
            self._tree.set_transform(transform.header.frame_id, transform.child_frame_id, stamp, tr, q, static)
        except ValueError:
            return False  # tf2 logs and ignores invalid transforms
        return True

    def clear(self) -> None:
        self._tree.clear()

    def lookup_transform(self, target_frame: str, source_frame: str, time: Time,
                         timeout: Duration | None = None) -> TransformStamped:
        stamp = time.nanoseconds * 1e-9
        try:
            tr, q = self._tree.lookup(target_frame, source_frame, stamp)
            if stamp == 0.0:
                stamp = self._tree.latest_common_time(target_frame, source_frame)
        except tftree.LookupError_ as e:
            raise LookupException(str(e)) from None
        except tftree.ConnectivityError as e:
            raise ConnectivityException(str(e)) from None
        except tftree.ExtrapolationError as e:
            raise ExtrapolationException(str(e)) from None
        return make_transform(target_frame, source_frame, stamp, tr, q)

    def can_transform(self, target_frame: str, source_frame: str, time: Time,
                      timeout: Duration | None = None) -> bool:
        return self._tree.can_transform(target_frame, source_frame, time.nanoseconds * 1e-9)


class _OwnTransformListener:
    """Fills a buffer from /tf and /tf_static."""

    def __init__(self, buffer: _OwnBuffer, node: Node, *, spin_thread: bool = False,
                 qos: QoSProfile | int = TF_QOS, static_qos: QoSProfile | int = TF_STATIC_QOS) -> None:
        self.buffer = buffer
        self._subs = [
            node.create_subscription(TFMessage, '/tf', lambda m: self._cb(m, False), qos),
            node.create_subscription(TFMessage, '/tf_static', lambda m: self._cb(m, True), static_qos),
        ]

    def _cb(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            if static:
                self.buffer.set_transform_static(t, 'listener')
            else:
                self.buffer.set_transform(t, 'listener')


try:  # prefer the real tf2_ros on a ROS install
    from tf2_ros import (  # type: ignore[import-not-found]
        Buffer,
        ConnectivityException,
        ExtrapolationException,
        LookupException,
        StaticTransformBroadcaster,
        TransformBroadcaster,
        TransformException,
        TransformListener,
    )
    USING_TF2_ROS = True
except ImportError:
    USING_TF2_ROS = False

    class TransformException(Exception):  # type: ignore[no-redef]
        """Base of lookup errors (tf2_ros.TransformException)."""

    class LookupException(TransformException):  # type: ignore[no-redef]
        pass

    class ConnectivityException(TransformException):  # type: ignore[no-redef]
        pass

    class ExtrapolationException(TransformException):  # type: ignore[no-redef]
        pass

    Buffer = _OwnBuffer  # type: ignore[misc,assignment]
    TransformListener = _OwnTransformListener  # type: ignore[misc,assignment]
    TransformBroadcaster = _OwnTransformBroadcaster  # type: ignore[misc,assignment]
    StaticTransformBroadcaster = _OwnStaticTransformBroadcaster  # type: ignore[misc,assignment]

__all__ = [
    'Buffer', 'TransformListener', 'TransformBroadcaster', 'StaticTransformBroadcaster', 'TransformException',
    'LookupException', 'ConnectivityException', 'ExtrapolationException', 'USING_TF2_ROS', 'make_transform',
    'transform_to_arrays', 'TF_QOS', 'TF_STATIC_QOS',
]
