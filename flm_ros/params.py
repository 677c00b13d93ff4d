"""Parameters of the FLM-ROS nodes: one table, the single source of defaults, types and descriptions.

``config/flm.yaml`` sets values (under ``/**: ros__parameters:`` so every node reads the same file); nodes
declare from this table with descriptors, so ``ros2 param describe`` explains each one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False  # needs a reconfigure (deactivate/cleanup/configure) to change


SENSORS = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')

COMMON: tuple[Param, ...] = (
    Param('map_frame', 'map', 'Global frame (REP-105).', True),
    Param('odom_frame', 'odom', 'Odometry frame (REP-105).', True),
    Param('base_frame', 'base_link', 'Robot base frame (REP-105).', True),
    Param('site_file', '', 'Site file (YAML: map_server map + UWB anchors [+ point map]). Empty: none.', True),
    Param('buffer.window', 2.0, 'Seconds of every sensor stream kept for the model.'),
    Param('buffer.max_lateness', 0.5, 'Seconds a message may arrive behind the newest stamp before it is dropped.'),
    Param('buffer.jump_back', 1.0, 'Seconds the clock may go back before the buffers reset (bag loop).'),
    Param('buffer.max_future', 1.0, 'Seconds a stamp may be ahead of the node clock before it is rejected.'),
    Param('buffer.max_per_stream', 4096, 'Hard bound on buffered messages per stream.'),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.'),
    *(p for s, topic in (
        ('scan', '/scan'), ('points', '/points'), ('depth', '/camera/depth/image_raw'), ('uwb', '/uwb/ranges'),
        ('imu', '/imu/data'), ('odom', '/odom'))
      for p in (
        Param(f'sensors.{s}.enabled', True, f'Subscribe to the {s} stream (a missing sensor is normal).', True),
        Param(f'sensors.{s}.topic', topic, f'Topic of the {s} stream.', True),
    )),
    Param('sensors.depth.camera_info_topic', '/camera/depth/camera_info', 'CameraInfo of the depth camera.', True),
)


def declare(node: Node, table: tuple[Param, ...] = COMMON) -> None:
    """Declare every parameter of ``table`` on ``node`` with its default and description."""
    for p in table:
        if not node.has_parameter(p.name):
            node.declare_parameter(p.name, p.default,
                                   ParameterDescriptor(description=p.description, read_only=False))


def values(node: Node, table: tuple[Param, ...] = COMMON) -> dict[str, Any]:
    """Current values of the table's parameters, by name."""
    return {p.name: node.get_parameter(p.name).value for p in table}
