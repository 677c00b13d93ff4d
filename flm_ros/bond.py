"""The managed node's side of a bond with ``nav2_lifecycle_manager``, as Nav2's own nodes hold it.

After it activates a node, the lifecycle manager (``bond_timeout`` > 0) waits for a bond on topic ``bond`` with the
node's name as id, and takes the node for dead when its heartbeats stop. Nav2's nodes start theirs on activation
(``bond_heartbeat_period`` 0.1 s, heartbeat timeout 4 s) and break it on deactivation; this node does the same:

* with ``bondpy`` (the bond_core package) where it is importable;
* else with the bond protocol's managed half written here, when the ``bond`` message package is installed (Nav2
  depends on it): ``bond/msg/Status`` with ``active`` true every period, false a few times at the end;
* else no bond: run the manager with ``bond_timeout: 0.0`` (``config/nav2_localization.yaml``).
"""
from __future__ import annotations

import uuid
from typing import Any

HEARTBEAT_TIMEOUT = 4.0   # s, what Nav2's nodes announce
DEAD_REPEATS = 5          # Status(active=False) messages sent when the bond is broken


def start_bond(node: Any, period: float) -> Any | None:
    """A started bond of ``node`` (id: its name) on topic ``bond`` with heartbeats every ``period`` s, or None (period
    <= 0, or neither bondpy nor the bond messages are installed). The result has ``shutdown()``."""
    if period <= 0.0:
        return None
    try:
        from bondpy import bondpy  # noqa: PLC0415 - the real ROS package where it is installed
    except ImportError:
        bondpy = None
    if bondpy is not None:
        bond = bondpy.Bond('bond', node.get_name(), node)
        bond.heartbeat_period = period
        bond.heartbeat_timeout = HEARTBEAT_TIMEOUT
        bond.start()
        return bond
    try:
        from bond.msg import Status  # noqa: PLC0415
    except ImportError:
        return None
    return Heartbeat(node, Status, period)


def _steady() -> Any:
    """A steady clock for the heartbeat timers: they must beat also while a simulation's /clock is paused."""
    from rclpy.clock import Clock, ClockType  # noqa: PLC0415

    return Clock(clock_type=ClockType.STEADY_TIME)


class Heartbeat:
    """The managed half of bond_core's protocol (what Nav2's lifecycle manager needs of a node): Status messages with
    the node's name as id, an instance id of its own, ``active`` true every ``period`` s from the start, and at
    :meth:`shutdown` ``active`` false :data:`DEAD_REPEATS` times, ``DEAD_PUBLISH_PERIOD`` (0.05 s) apart, which the
    manager reads as a bond broken on purpose. It does not watch the manager's side (Nav2's nodes do not act on it
    either)."""

    def __init__(self, node: Any, status_type: type, period: float) -> None:
        self.node, self.status_type, self.period = node, status_type, float(period)
        self.id, self.instance_id = node.get_name(), str(uuid.uuid4())
        self.pub = node.create_publisher(status_type, 'bond', 1)
        self.dead_left: int | None = None          # Status(active=False) still to send after shutdown()
        self.timer = node.create_timer(self.period, self._on_timer, clock=_steady())
        self._publish(True)

    def _publish(self, active: bool) -> None:
        msg = self.status_type()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.id, msg.instance_id, msg.active = self.id, self.instance_id, active
        msg.heartbeat_timeout, msg.heartbeat_period = HEARTBEAT_TIMEOUT, self.period
        self.pub.publish(msg)

    def _on_timer(self) -> None:
        if self.dead_left is None:
            self._publish(True)
            return
        self._publish(False)
        self.dead_left -= 1
        if self.dead_left <= 0:
            self.node.destroy_timer(self.timer)
            self.node.destroy_publisher(self.pub)

    def shutdown(self) -> None:
        """Break the bond: the heartbeats stop and the manager is told (from the node's executor, over 0.25 s)."""
        if self.dead_left is not None:
            return
        self.dead_left = DEAD_REPEATS
        self.node.destroy_timer(self.timer)
        self.timer = self.node.create_timer(0.05, self._on_timer, clock=_steady())
        self._publish(False)
