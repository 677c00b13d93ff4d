"""flm_localizer over DDS, in its own process, with two lidars and two UWB tags (GitHub-style issue 16).

The robot is the test process: it drives along +x and publishes wheel odometry, a front and a rear scan (each in
its own frame, both with one stamp) and the ranges of two tags, each tag on its own topic and in its own frame, both
ranging at one stamp; /tf_static holds the four mounts. The tags sit 0.4 m ahead of base_link, 0.3 m to either
side: a node that put the ranges at base_link, or averaged the tags, would be 0.4 m off. The node runs the
classical UWB pose source (no model), from a given initial pose (UWB alone does not observe the heading).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import LaserScan, Range
from tf2_msgs.msg import TFMessage

from ros_support import python_proc, stop_proc
from flm_core.geometry import yaw_to_quat
from flm_core.measurements import LaserScan2D, OdometrySample, RangeSample
from flm_core.site import Anchor, Site, save_site
from flm_ros import conversions as conv
from flm_ros.bringup import BringupArgs, node_specs
from flm_ros.runner import command_for

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
ANCHORS = {'a0': (0.0, 0.0, 2.5), 'a1': (10.0, 0.0, 2.4), 'a2': (0.0, 8.0, 2.6), 'a3': (10.0, 8.0, 2.5),
           'a4': (5.0, -2.0, 2.2)}
START = np.array([2.0, 3.0])
SPEED = 0.2
TAGS = {'uwb_tag': ((0.4, 0.3, 0.5), 'uwb/ranges'), 'uwb_tag_right': ((0.4, -0.3, 0.5), 'uwb/right/ranges')}
LIDARS = {'front_laser': ((0.3, 0.0, 0.2, 0.0), 'front/scan'), 'rear_laser': ((-0.3, 0.0, 0.2, np.pi), 'rear/scan')}
PARAMS = {'pose_source': 'uwb', 'diagnostics_period': 0.25, 'sensors.imu.enabled': False,
          'sensors.scan.topic': 'front/scan', 'sensors.scan.extra_topics': ['rear/scan'],
          'sensors.uwb.extra_topics': ['uwb/right/ranges'], 'sensors.uwb.extra_tag_frames': ['uwb_tag_right'],
          'set_initial_pose': True, 'initial_pose.x': float(START[0]), 'initial_pose.y': float(START[1]),
          'initial_pose.std_xy': 0.3, 'initial_pose.std_yaw': 0.05}


class Robot:
    def __init__(self, ctx) -> None:
        import rclpy
        self.node = n = rclpy.create_node('flm_test_multitopic_robot', context=ctx)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(n)
        self.odom_pub = n.create_publisher(Odometry, 'odom', 10)
        self.scan_pubs = {f: n.create_publisher(LaserScan, topic, qos_profile_sensor_data)
                          for f, (_, topic) in LIDARS.items()}
        self.uwb_pubs = {f: n.create_publisher(Range, topic, 50) for f, (_, topic) in TAGS.items()}
        self.tf_static = n.create_publisher(TFMessage, '/tf_static', LATCHED)
        self.poses: list[PoseWithCovarianceStamped] = []
        self.diags: list[DiagnosticArray] = []
        n.create_subscription(PoseWithCovarianceStamped, 'amcl_pose', self.poses.append, LATCHED)
        n.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)
        self.t0 = time.time()
        self._next_odom = self._next_uwb = self._next_scan = 0.0
        mounts = [(f, (*m[:3],), m[3]) for f, (m, _) in LIDARS.items()] + [(f, m, 0.0) for f, (m, _) in TAGS.items()]
        self.tf_static.publish(TFMessage(transforms=[self._static(f, xyz, yaw) for f, xyz, yaw in mounts]))

    def _static(self, frame: str, xyz, yaw: float) -> TransformStamped:
        tr = TransformStamped(child_frame_id=frame)
        tr.header.frame_id = 'base_link'
        tr.header.stamp = conv.sec_to_stamp(time.time())
        tr.transform.translation.x, tr.transform.translation.y, tr.transform.translation.z = (float(v) for v in xyz)
        q = yaw_to_quat(yaw)
        tr.transform.rotation.x, tr.transform.rotation.y = float(q[0]), float(q[1])
        tr.transform.rotation.z, tr.transform.rotation.w = float(q[2]), float(q[3])
        return tr

    def truth(self, t: float) -> np.ndarray:
        return START + np.array([SPEED * (t - self.t0), 0.0])

    def _publish(self) -> None:
        t = time.time()
        if t >= self._next_odom:
            self._next_odom = t + 0.05
            self.odom_pub.publish(conv.odometry_to_msg(OdometrySample(
                stamp=t, frame_id='odom', child_frame_id='base_link',
                position=np.array([SPEED * (t - self.t0), 0.0, 0.0]), orientation=yaw_to_quat(0.0),
                linear_velocity=np.array([SPEED, 0.0, 0.0]), angular_velocity=np.zeros(3))))
        if t >= self._next_scan:                       # both lidars, one stamp
            self._next_scan = t + 0.1
            for f in LIDARS:
                self.scan_pubs[f].publish(conv.scan_to_msg(LaserScan2D(
                    stamp=t, frame_id=f, angles=np.linspace(-1.5, 1.5, 61, dtype=np.float32),
                    ranges=np.full(61, 3.0, np.float32), range_min=0.1, range_max=20.0)))
        if t >= self._next_uwb:                        # both tags, one stamp; one stamp per anchor
            self._next_uwb = t + 0.1
            base = self.truth(t)
            for f, ((x, y, z), _) in TAGS.items():
                p = np.array([base[0] + x, base[1] + y, z])
                for i, (a, xyz) in enumerate(ANCHORS.items()):
                    self.uwb_pubs[f].publish(conv.range_to_msg(RangeSample(
                        stamp=t - 0.001 * i, anchor_id=a, range=float(np.linalg.norm(p - np.array(xyz))),
                        max_range=50.0)))

    def spin(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._publish()
            self.ex.spin_once(timeout_sec=0.01)
            if until is not None and until():
                return True
        return until is None

    def stream(self, name: str) -> dict[str, str]:
        for arr in reversed(self.diags):
            for s in arr.status:
                if s.hardware_id == name and any(kv.key.startswith('topic.') for kv in s.values):
                    return {kv.key: kv.value for kv in s.values}
        return {}


def test_two_lidars_and_two_tags_each_on_its_topic(rclpy_context, tmp_path: Path):
    site = save_site(Site(name='five_anchors', anchors=tuple(Anchor(k, np.array(v)) for k, v in ANCHORS.items())),
                     tmp_path)
    spec = node_specs(BringupArgs(site=str(site), extra=PARAMS))[0]
    proc = python_proc(command_for(spec)[1:])
    r = Robot(rclpy_context)
    try:
        topics = ['/front/scan', '/rear/scan', '/uwb/ranges', '/uwb/right/ranges']
        assert r.spin(90, until=lambda: all(r.node.count_subscribers(t) > 0 for t in topics)), stop_proc(proc)
        assert r.node.count_subscribers('/scan') == 0
        assert r.spin(60, until=lambda: len(r.poses) >= 30), stop_proc(proc)
        # it localizes: each tag's ranges at that tag's lever arm (0.4 m ahead: base_link would be 0.4 m off)
        errs = []
        for msg in r.poses[-10:]:
            t = conv.stamp_to_sec(msg.header.stamp)
            p = msg.pose.pose.position
            errs.append(float(np.hypot(p.x - r.truth(t)[0], p.y - r.truth(t)[1])))
        assert max(errs) < 0.15, errs
        # both topics of each kind counted on /diagnostics, every message accepted (the same stamps: two lidars'
        # scans and two tags' ranges are not duplicates)
        assert r.spin(20, until=lambda: r.stream('scan') and r.stream('uwb'))
        scan, uwb = r.stream('scan'), r.stream('uwb')
        for s, kind in ((scan, '/front/scan,/rear/scan'), (uwb, '/uwb/ranges,/uwb/right/ranges')):
            assert s['topics'] == kind, s
            for t in kind.split(','):
                assert int(s[f'topic.{t}.received']) > 10 and int(s[f'topic.{t}.accepted']) > 10, (t, s)
                assert int(s[f'topic.{t}.accepted']) >= 0.9 * int(s[f'topic.{t}.received']), (t, s)
        assert 'buffer.duplicate' not in scan and 'buffer.duplicate' not in uwb, (scan, uwb)
    finally:
        r.node.destroy_node()
        out = stop_proc(proc)
    assert 'Traceback' not in out, out
