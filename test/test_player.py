"""flm-play: a generated rosbag2 (mcap and sqlite3) played over DDS reaches a subscriber intact and on time,
with /clock; bad bags get a clear error."""

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan, Range

from ros_support import python_proc, stop_proc, wait_until
from flm_core.datagen.bagwriter import write_bag
from flm_core.datagen.config import ScenarioConfig
from flm_core.datagen.scenario import generate_scenario
from flm_ros import conversions as conv


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp('bags')
    cfg = ScenarioConfig(duration=3.0)
    sc = generate_scenario(cfg, 11)
    return {s: write_bag(sc, out / s, storage=s) for s in ('mcap', 'sqlite3')}


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_plays_over_dds_with_clock(rclpy_context, bags, storage):
    import rclpy
    bag = bags[storage]
    with AnyReader([bag]) as r:
        want_scans = [(t, r.deserialize(raw, c.msgtype)) for c, t, raw in r.messages()
                      if c.topic == '/scan']
        bag_end = r.end_time * 1e-9
    node = rclpy.create_node('flm_test_player_sink', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    scans, ranges, clocks = [], [], []
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(LaserScan, '/scan', lambda m: scans.append(conv.scan_from_msg(m)), qos)
    node.create_subscription(Range, '/uwb/ranges', lambda m: ranges.append(m), qos)
    node.create_subscription(Clock, '/clock', lambda m: clocks.append(conv.stamp_to_sec(m.clock)), 10)
    # the player starts once its /scan writer is matched with our reader: reliable, so every scan arrives
    play = python_proc(['-m', 'flm_ros.player', str(bag), '--clock', '50', '--rate', '2',
                        '--wait-for-subscriber', '/scan'])
    try:
        wait_until(lambda: play.poll() is not None, 60.0, 'the player playing the bag to the end',
                   lambda t: ex.spin_once(timeout_sec=t))
        for _ in range(20):    # what is still in the queues
            ex.spin_once(timeout_sec=0.02)
    finally:
        out = stop_proc(play)
    assert play.returncode == 0, out
    assert len(scans) == len(want_scans), out
    for got, (_, want) in zip(scans, want_scans):
        np.testing.assert_array_equal(got.ranges, want.ranges)
        assert got.stamp == pytest.approx(want.header.stamp.sec + want.header.stamp.nanosec * 1e-9, abs=1e-9)
    assert ranges and all(m.header.frame_id for m in ranges)
    assert clocks == sorted(clocks) and len(clocks) > 20  # 3 s bag at rate 2 with a 50 Hz clock: ~75
    assert clocks[-1] <= bag_end + 1e-6


def test_bad_bags_get_a_clear_error(tmp_path, bags):
    import shutil
    p = python_proc(['-m', 'flm_ros.player', str(tmp_path / 'nope')])
    out = p.finish(30.0)
    assert p.returncode == 1 and 'cannot open' in out
    broken = tmp_path / 'broken'
    shutil.copytree(bags['mcap'], broken)
    mcap = next(broken.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])   # truncated
    p = python_proc(['-m', 'flm_ros.player', str(broken), '--rate', '100'])
    out = p.finish(60.0)
    assert p.returncode == 1 and 'error' in out
