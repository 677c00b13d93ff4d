"""Separate processes over real DDS: sensor messages and TF from a publisher process reach this process intact."""
import sys

import numpy as np
import pytest
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import Imu, PointCloud2, Range
from std_msgs.msg import Empty

from ros_support import ROOT, python_proc, stop_proc, wait_for_matches, wait_until
from flm_core.geometry import quat_rotate, quat_to_yaw
from flm_ros import conversions as conv
from flm_ros.tf import Buffer, TransformListener

sys.path.insert(0, str(ROOT / 'test' / 'nodes'))
from sensor_publisher import GO_TOPIC, LATCHED, T0, expected  # noqa: E402

COUNT = 20


def test_sensors_and_tf_cross_process_boundaries(rclpy_context):
    import rclpy
    node = rclpy.create_node('flm_test_dds_subscriber', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    got = {'points': [], 'uwb': [], 'imu': []}
    subs = [
        node.create_subscription(PointCloud2, '/points', lambda m: got['points'].append(conv.cloud_from_msg(m)),
                                 qos_profile_sensor_data),
        node.create_subscription(Range, '/uwb/ranges', lambda m: got['uwb'].append(conv.range_from_msg(m)), 10),
        node.create_subscription(Imu, '/imu/data', lambda m: got['imu'].append(conv.imu_from_msg(m)),
                                 qos_profile_sensor_data)]
    buf = Buffer(cache_time=Duration(seconds=30))
    TransformListener(buf, node)
    go = node.create_publisher(Empty, GO_TOPIC, LATCHED)
    pub = python_proc(['test/nodes/sensor_publisher.py', str(COUNT), '20'])
    spin = lambda t: ex.spin_once(timeout_sec=t)  # noqa: E731
    try:
        # our readers matched with the publisher's writers (best effort takes data only from matched writers);
        # then tell it to start (latched: it gets the message whenever it matches our writer)
        wait_for_matches(subs=subs, spin_once=spin, proc=pub)
        go.publish(Empty())
        wait_until(lambda: pub.poll() is not None, 60.0, 'the publisher sending its messages and exiting', spin)
        for _ in range(20):    # what is still in the queues
            ex.spin_once(timeout_sec=0.01)
    finally:
        out = stop_proc(pub)
    assert pub.returncode == 0, out
    # best-effort QoS may lose a message at start; most must arrive, each exactly as sent
    assert len(got['imu']) >= COUNT - 2, out
    assert len(got['points']) >= COUNT - 2
    assert len(got['uwb']) >= 3 * (COUNT - 2)
    for c in got['points']:
        k = int(round((c.stamp - T0) / 0.05))
        e = expected(k)['cloud']
        np.testing.assert_array_equal(c.xyz, e.xyz)
        np.testing.assert_array_equal(c.intensity, e.intensity)
        np.testing.assert_array_equal(c.ring, e.ring)
        np.testing.assert_array_equal(c.time, e.time)
        assert c.frame_id == 'lidar'
    for r in got['uwb']:
        k = int(round((r.stamp - T0) / 0.05))
        e = {x.anchor_id: x for x in expected(k)['ranges']}[r.anchor_id]
        assert r.range == pytest.approx(e.range, abs=0) and r.max_range == pytest.approx(50.0)
    for m in got['imu']:
        k = int(round((m.stamp - T0) / 0.05))
        e = expected(k)['imu']
        np.testing.assert_allclose(m.angular_velocity, e.angular_velocity)
        np.testing.assert_allclose(m.orientation, e.orientation)
    # TF: static + dynamic, interpolated between two stamps of the publisher
    t = T0 + 0.05 * 10.5
    tf = buf.lookup_transform('odom', 'laser', Time(nanoseconds=int(round(t * 1e9))))
    yaw_base = 0.02 * 10.5
    p = np.array([0.1 * 10.5, 0, 0]) + quat_rotate(np.array([0, 0, np.sin(yaw_base / 2), np.cos(yaw_base / 2)]),
                                                     [0.2, 0, 0.3])
    tr = tf.transform.translation
    np.testing.assert_allclose([tr.x, tr.y, tr.z], p, atol=1e-6)
    r = tf.transform.rotation
    assert quat_to_yaw(np.array([r.x, r.y, r.z, r.w])) == pytest.approx(yaw_base + np.pi - 2 * np.pi, abs=1e-6)
    node.destroy_node()
