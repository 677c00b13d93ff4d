"""Running a node until Ctrl-C or shutdown: the one spin loop of the project's node mains."""
from __future__ import annotations

from typing import Any, Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


def spin(node: Any, before_destroy: Callable[[], None] | None = None) -> int:
    """Spin ``node`` on a single-threaded executor until Ctrl-C (SIGINT) or an external shutdown, then stop it:
    ``before_destroy`` (e.g. join the node's own threads), the executor, the node, the context. Returns 0.

    Single-threaded on purpose: the nodes' callbacks are short, and rclpy's MultiThreadedExecutor was seen to drop a
    large share of best-effort sensor messages here (test_sensor_hub)."""
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if before_destroy is not None:
            before_destroy()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
