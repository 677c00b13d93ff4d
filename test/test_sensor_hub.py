"""The sensor_hub node as its own process: good data is buffered, bad data is rejected by reason and reported on
/diagnostics, and the node keeps running."""
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu, Range

from ros_support import ROOT, python_proc, stop_proc, wait_for_matches, wait_until
from flm_core.geometry import yaw_to_quat
from flm_core.measurements import ImuSample, OdometrySample, RangeSample
from flm_core.site import Anchor, Site, save_site
from flm_ros import conversions as conv
from flm_ros.bringup import NodeSpec
from flm_ros.runner import command_for


def _diag_values(arr: DiagnosticArray) -> dict[str, dict[str, str]]:
    return {s.hardware_id: {kv.key: kv.value for kv in s.values} for s in arr.status}


def test_hub_counts_rejections_and_reports_them(rclpy_context, tmp_path):
    import rclpy
    from nav_msgs.msg import Odometry

    site = save_site(Site(name='t', anchors=(Anchor('a0', np.zeros(3)), Anchor('a1', np.ones(3)))), tmp_path)
    spec = NodeSpec(executable='sensor_hub', name='hub_under_test', parameters=(
        str(ROOT / 'config' / 'flm.yaml'), {'site_file': str(site), 'diagnostics_period': 0.5}))
    cmd = command_for(spec)
    hub = python_proc(cmd[1:])
    node = rclpy.create_node('flm_test_hub_driver', context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    diags: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    pub_imu = node.create_publisher(Imu, '/imu/data', qos_profile_sensor_data)
    pub_uwb = node.create_publisher(Range, '/uwb/ranges', qos_profile_sensor_data)
    pub_odom = node.create_publisher(Odometry, '/odom', qos_profile_sensor_data)
    spin = lambda t: ex.spin_once(timeout_sec=t)  # noqa: E731
    now = lambda: node.get_clock().now().nanoseconds * 1e-9  # noqa: E731

    def counts(stream: str, key: str) -> int:
        return int(_diag_values(diags[-1]).get(stream, {}).get(key, 0)) if diags else 0

    def odom(t: float) -> Odometry:   # in a frame that is not the odometry frame: rejected
        return conv.odometry_to_msg(OdometrySample(
            stamp=t, frame_id='world', child_frame_id='base_link', position=np.zeros(3),
            orientation=yaw_to_quat(0.0), linear_velocity=np.zeros(3), angular_velocity=np.zeros(3)))

    def good_imu(t: float) -> ImuSample:
        return ImuSample(stamp=t, frame_id='imu', angular_velocity=np.zeros(3),
                         linear_acceleration=np.array([0, 0, 9.81]), orientation=yaw_to_quat(0.0))

    def probe() -> bool:
        """One message per stream until the hub reports having received one of each (best effort: a reader
        takes data only from writers it has matched; this is the hub's side of the matching)."""
        if all(counts(k, 'received') > 0 for k in ('imu', 'uwb', 'odom')):
            return True
        t = now()
        pub_imu.publish(conv.imu_to_msg(good_imu(t)))
        pub_uwb.publish(conv.range_to_msg(RangeSample(stamp=t, anchor_id='a0', range=2.0, max_range=50.0)))
        pub_odom.publish(odom(t))
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            spin(0.02)
        return False

    try:
        # ready: the hub publishes diagnostics (it may take long to start on a loaded machine), our writers are
        # matched with its readers, and its readers take our messages
        wait_until(lambda: diags, 90.0, 'diagnostics from the hub', spin, hub)
        wait_for_matches(pubs=[pub_imu, pub_uwb, pub_odom], spin_once=spin, proc=hub)
        wait_until(probe, 60.0, 'the hub receiving imu, uwb and odom messages', proc=hub,
                   details=lambda: f'diagnostics: {_diag_values(diags[-1])}')
        base = _diag_values(diags[-1])

        def delta(stream: str, key: str) -> int:
            return counts(stream, key) - int(base.get(stream, {}).get(key, 0))
        sent_good_imu = sent_imu = 0
        for k in range(20):
            t = now()
            good = good_imu(t)
            pub_imu.publish(conv.imu_to_msg(good))
            sent_good_imu += 1
            if k % 5 == 0:
                time.sleep(0.005)
                pub_imu.publish(conv.imu_to_msg(good))   # duplicate stamp
                time.sleep(0.005)
                bad = conv.imu_to_msg(good)
                bad.angular_velocity.x = float('nan')
                pub_imu.publish(bad)                     # NaN
                time.sleep(0.005)
                bad = conv.imu_to_msg(good)
                bad.orientation.w = 0.0
                pub_imu.publish(bad)                     # zero quaternion
                sent_imu += 3
            pub_uwb.publish(conv.range_to_msg(RangeSample(stamp=t, anchor_id='a0', range=2.0, max_range=50.0)))
            pub_uwb.publish(conv.range_to_msg(RangeSample(stamp=t, anchor_id='zz', range=2.0, max_range=50.0)))
            pub_odom.publish(odom(t))
            ex.spin_once(timeout_sec=0.02)
            time.sleep(0.02)
        sent_imu += sent_good_imu
        # the hub's report of all of them (best effort may lose a few: then it ends at the deadline)
        end = time.monotonic() + 10.0
        while time.monotonic() < end and not (delta('imu', 'received') >= sent_imu and delta('uwb', 'received')
                                              >= 40 and delta('odom', 'received') >= 20):
            spin(0.1)
        assert hub.poll() is None, 'the hub died on bad input'
        v = _diag_values(diags[-1])
        imu = v['imu']
        # sensor-data QoS is best effort: a message may be lost, but every one received is accounted for
        accounted = sum(int(imu.get(k, 0)) for k in
                        ('buffer.accepted', 'buffer.duplicate', 'rejected.nonfinite', 'rejected.bad_quaternion'))
        assert accounted == int(imu['received'])
        assert delta('imu', 'buffer.accepted') >= sent_good_imu - 4
        assert delta('imu', 'buffer.duplicate') >= 2
        assert delta('imu', 'rejected.nonfinite') >= 2
        assert delta('imu', 'rejected.bad_quaternion') >= 2
        assert delta('uwb', 'rejected.unknown_anchor') >= 16
        assert delta('uwb', 'buffer.accepted') >= 16
        assert delta('odom', 'rejected.wrong_frame') >= 16
        assert 'buffer.accepted' not in v['odom']
        statuses = {s.hardware_id: s for s in diags[-1].status}
        assert statuses['scan'].message.startswith('no data')     # absent sensor: normal
        assert 'rejected' in statuses['odom'].message
    finally:
        out = stop_proc(hub)
        node.destroy_node()
    assert hub.returncode == 0, out
