"""flm-play: play a bag over DDS (a small `ros2 bag play` for machines without rosbag2_py).

Reads rosbag2 (sqlite3, mcap) and ROS 1 bags with ``rosbags``; rosbag2 messages are published as their recorded
CDR bytes (no conversion), ROS 1 messages are converted to CDR first. Timing follows the recorded receive
times scaled by ``--rate``; ``--clock`` publishes ``/clock`` at the given frequency so nodes with
``use_sim_time`` follow the bag. ``/tf_static`` and ``/map`` are latched (transient local), like rosbag2 does
for topics recorded with that QoS.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from flm_ros.bringup import share_dir

LATCHED_TOPICS = ('/tf_static', '/map')


def message_class(type_name: str) -> type | None:
    """'sensor_msgs/msg/Imu' -> the rclpy message class, or None if the package is not installed."""
    pkg, _, name = type_name.replace('/msg/', '/').partition('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.msg'), name)
    except (ImportError, AttributeError):
        return None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='flm-play', description='Play a rosbag2 (sqlite3/mcap) or ROS 1 bag over DDS, with optional /clock.')
    p.add_argument('bag', type=Path, help='bag directory (rosbag2) or .bag file (ROS 1)')
    p.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1.0)')
    p.add_argument('--clock', type=float, default=0.0, metavar='HZ',
                   help='publish /clock at this frequency (0: off; use with use_sim_time:=true)')
    p.add_argument('--topics', nargs='*', default=None, help='only these topics')
    p.add_argument('--remap', nargs='*', default=[], metavar='FROM:=TO', help='rename topics')
    p.add_argument('--start-offset', type=float, default=0.0, help='skip this many seconds of the bag')
    p.add_argument('--duration', type=float, default=0.0, help='play at most this many seconds (0: all)')
    p.add_argument('--delay', type=float, default=0.0, help='wait this long after creating publishers')
    p.add_argument('--wait-for-subscriber', default='', metavar='TOPIC',
                   help='wait (up to 30 s) until TOPIC has a subscriber before playing')
    p.add_argument('--loop', action='store_true', help='play again from the start when the bag ends')
    p.add_argument('--default-transport', action='store_true',
                   help="keep Fast DDS's default transports (by default the player uses config/"
                        'fastdds_large_data.xml, a larger shared-memory segment, so recorded dense clouds and big '
                        'images reach best-effort subscribers; ignored when FASTDDS_DEFAULT_PROFILES_FILE is set)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    from rosbags.highlevel import AnyReader, AnyReaderError  # noqa: PLC0415
    from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

    if ns.rate <= 0:
        print('flm-play: error: --rate must be > 0', file=sys.stderr)
        return 2
    paths = [ns.bag]
    remap = dict(r.split(':=', 1) for r in ns.remap)
    try:
        reader = AnyReader(paths, default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except (AnyReaderError, OSError, ValueError) as e:
        print(f'flm-play: error: cannot open {ns.bag}: {e}', file=sys.stderr)
        return 1
    profile = share_dir() / 'config' / 'fastdds_large_data.xml'
    if not ns.default_transport and profile.is_file() and os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') \
            == 'rmw_fastrtps_cpp':
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
    rclpy.init()
    node = rclpy.create_node('flm_player')
    pubs = {}
    conns = []
    for c in reader.connections:
        if ns.topics is not None and c.topic not in ns.topics:
            continue
        cls = message_class(c.msgtype)
        if cls is None:
            node.get_logger().warn(f'{c.topic}: message type {c.msgtype} is not installed; skipped')
            continue
        out = remap.get(c.topic, c.topic)
        if out not in pubs:
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            if c.topic in LATCHED_TOPICS:
                qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            pubs[out] = node.create_publisher(cls, out, qos)
        conns.append((c, out))
    clock_pub = node.create_publisher(Clock, '/clock', 10) if ns.clock > 0 else None
    if ns.wait_for_subscriber:
        deadline = time.monotonic() + 30
        topic = ns.wait_for_subscriber
        while time.monotonic() < deadline and (topic not in pubs or pubs[topic].get_subscription_count() == 0):
            time.sleep(0.05)
    time.sleep(ns.delay)
    by_conn = {c.id: out for c, out in conns}
    t_start = reader.start_time + int(ns.start_offset * 1e9)
    t_end = reader.end_time if ns.duration <= 0 else t_start + int(ns.duration * 1e9)
    count = 0
    try:
        while True:
            wall0 = time.monotonic()
            next_clock = 0.0
            try:
                for conn, t_ns, raw in reader.messages(connections=[c for c, _ in conns], start=t_start, stop=t_end):
                    target = wall0 + (t_ns - t_start) * 1e-9 / ns.rate
                    while True:
                        now = time.monotonic()
                        if clock_pub is not None and now >= next_clock:
                            bag_now = t_start + int((now - wall0) * ns.rate * 1e9)
                            msg = Clock()
                            msg.clock.sec, msg.clock.nanosec = divmod(min(bag_now, t_ns), 1_000_000_000)
                            clock_pub.publish(msg)
                            next_clock = now + 1.0 / ns.clock
                        if now >= target:
                            break
                        time.sleep(min(target - now, 0.002 if clock_pub else 0.05))
                    if not reader.is2:
                        raw = reader.typestore.serialize_cdr(reader.deserialize(raw, conn.msgtype), conn.msgtype)
                    pubs[by_conn[conn.id]].publish(bytes(raw))
                    count += 1
            except Exception as e:  # noqa: BLE001 (truncated/corrupt bag: say so, keep what was played)
                print(f'flm-play: error: reading {ns.bag} failed after {count} messages: {e}', file=sys.stderr)
                return 1
            if not ns.loop:
                break
    except KeyboardInterrupt:
        pass
    finally:
        print(f'flm-play: published {count} messages', flush=True)
        time.sleep(0.2)
        node.destroy_node()
        rclpy.try_shutdown()
        reader.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
