"""A separate-process publisher for the DDS tests: deterministic sensor messages and TF.

    python test/nodes/sensor_publisher.py COUNT RATE_HZ

Publishes COUNT rounds of PointCloud2 (/points), Range (/uwb/ranges, anchors a0..a2), Imu (/imu/data) and
TFMessage (/tf: odom->base_link; /tf_static: base_link->laser), built by `expected(k)` so the subscriber can
recompute what it should receive. It starts publishing once its writers are matched with the subscriber's readers
and the subscriber has said it matched them too (a latched message on GO_TOPIC), and exits once the reliable
messages are acknowledged; exit status 3 when the subscriber never got ready.
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Imu, PointCloud2, Range
from std_msgs.msg import Empty

from flm_core.geometry import yaw_to_quat
from flm_core.measurements import ImuSample, PointCloud, RangeSample
from flm_ros import conversions as conv
from flm_ros.tf import StaticTransformBroadcaster, TransformBroadcaster, make_transform

T0 = 1000.0
ANCHORS = ('a0', 'a1', 'a2')
GO_TOPIC = '/flm_test/go'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
READY_TIMEOUT_S = 60.0


def expected(k: int) -> dict:
    rng = np.random.default_rng(k)
    stamp = T0 + 0.05 * k
    n = 5000
    cloud = PointCloud(stamp=stamp, frame_id='lidar', xyz=rng.normal(size=(n, 3)).astype(np.float32),
                       intensity=rng.random(n).astype(np.float32), ring=(np.arange(n) % 16).astype(np.uint16),
                       time=np.linspace(0, 0.1, n, dtype=np.float32))
    ranges = [RangeSample(stamp=stamp, anchor_id=a, range=float(np.float32(3.0 + i + 0.01 * k)), min_range=0.1,
                          max_range=50.0) for i, a in enumerate(ANCHORS)]
    imu = ImuSample(stamp=stamp, frame_id='imu', angular_velocity=np.array([0.0, 0.0, 0.1 * k]),
                    linear_acceleration=np.array([0.1, 0.0, 9.81]), orientation=yaw_to_quat(0.01 * k))
    odom_pose = (np.array([0.1 * k, 0.0, 0.0]), yaw_to_quat(0.02 * k))
    return {'stamp': stamp, 'cloud': cloud, 'ranges': ranges, 'imu': imu, 'odom_pose': odom_pose}


def main() -> None:
    count, rate = int(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node('flm_test_sensor_publisher')
    pub_cloud = node.create_publisher(PointCloud2, '/points', qos_profile_sensor_data)
    pub_range = node.create_publisher(Range, '/uwb/ranges', 10)
    pub_imu = node.create_publisher(Imu, '/imu/data', qos_profile_sensor_data)
    tfb, static = TransformBroadcaster(node), StaticTransformBroadcaster(node)
    static.sendTransform(make_transform('base_link', 'laser', T0, [0.2, 0.0, 0.3], yaw_to_quat(np.pi)))
    pub_tf = getattr(tfb, 'pub_tf', None) or tfb._pub   # tf2_ros's name, flm_ros.tf's own
    writers = (pub_cloud, pub_range, pub_imu, pub_tf)
    go: list[Empty] = []
    node.create_subscription(Empty, GO_TOPIC, go.append, LATCHED)
    deadline = time.monotonic() + READY_TIMEOUT_S   # matched here, and the subscriber says it matched us
    while time.monotonic() < deadline and not (go and min(w.get_subscription_count() for w in writers) > 0):
        rclpy.spin_once(node, timeout_sec=0.05)
    if not go or min(w.get_subscription_count() for w in writers) == 0:
        print(f'sensor_publisher: not ready after {READY_TIMEOUT_S:.0f} s: go {bool(go)}, matched readers '
              f'{[(w.topic_name, w.get_subscription_count()) for w in writers]}', file=sys.stderr, flush=True)
        sys.exit(3)
    for k in range(count):
        e = expected(k)
        pub_cloud.publish(conv.cloud_to_msg(e['cloud']))
        for r in e['ranges']:
            pub_range.publish(conv.range_to_msg(r))
        pub_imu.publish(conv.imu_to_msg(e['imu']))
        tfb.sendTransform(make_transform('odom', 'base_link', e['stamp'], *e['odom_pose']))
        rclpy.spin_once(node, timeout_sec=0)
        time.sleep(1.0 / rate)
    for w in (pub_range, pub_tf):   # the reliable ones: delivered before the writers go
        w.wait_for_all_acked(Duration(seconds=10))
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
