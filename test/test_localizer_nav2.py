"""flm_localizer as Nav2 sees it, over DDS, the node in its own process (started from the bring-up's node list):
in a namespace (every topic and service under it, map->odom on the namespaced tf), AMCL's services
(set_initial_pose, request_nomotion_update, reinitialize_global_localization), particle_cloud, the odometry twist
with its covariance, parameters (ranges in the descriptors, refusals with reasons, re-initialisation while
active), the saved pose, a Nav2 parameter file with AMCL's names, and maps on the map topic.

The robot is the test process: it drives along +x at SPEED m/s from START and publishes wheel odometry (20 Hz)
and UWB ranges to four anchors (10 Hz) stamped with the wall clock. The node runs the classical UWB pose source
(``pose_source: uwb``): it localizes within a second without a model, so these tests are about the interface.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray, PoseWithCovarianceStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Range
from std_srvs.srv import Empty
from tf2_msgs.msg import TFMessage

from ros_support import ROOT, call_service, change_state, python_proc, stop_proc, wait_for_matches
from flm_core.geometry import yaw_to_quat
from flm_core.measurements import OdometrySample, RangeSample
from flm_core.site import Anchor, OccupancyMap, Site, save_site
from flm_ros import amcl_interface as amcl
from flm_ros import conversions as conv
from flm_ros.bringup import BringupArgs, NodeSpec, node_specs
from flm_ros.runner import command_for

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
ANCHORS = {'a0': (0.0, 0.0, 2.5), 'a1': (10.0, 0.0, 2.5), 'a2': (0.0, 8.0, 2.5), 'a3': (10.0, 8.0, 2.5)}
START = np.array([2.0, 3.0])   # m, where the robot starts in the map (odom's origin: map->odom = (2, 3, 0))
SPEED = 0.2                    # m/s along +x
COMMON = {'pose_source': 'uwb', 'diagnostics_period': 0.25, 'sensors.imu.enabled': False}


def _site(tmp_path: Path) -> Path:
    return save_site(Site(name='four_anchors', anchors=tuple(Anchor(k, np.array(v)) for k, v in ANCHORS.items())),
                     tmp_path)


def _param_value(v) -> ParameterValue:
    if isinstance(v, bool):
        return ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=v)
    if isinstance(v, float):
        return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=v)
    if isinstance(v, int):
        return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=v)
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(v))


class Robot:
    """The test side under namespace ``ns``: sensor publishers driven from :meth:`spin`, recorders, clients."""

    def __init__(self, ctx, ns: str = '', cloud_type: type = PoseArray, map_frame: str = 'map') -> None:
        import rclpy
        self.ns, self.map_frame = ns, map_frame
        self.node = rclpy.create_node('flm_test_nav2_robot', context=ctx)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        n = self.node
        self.odom_pub = n.create_publisher(Odometry, f'{ns}/odom', 10)
        self.uwb_pub = n.create_publisher(Range, f'{ns}/uwb/ranges', 10)
        self.map_pub = n.create_publisher(OccupancyGrid, f'{ns}/map', LATCHED)
        self.initialpose = n.create_publisher(PoseWithCovarianceStamped, f'{ns}/initialpose', 10)
        self.poses: list[PoseWithCovarianceStamped] = []
        self.odometry: list[Odometry] = []
        self.clouds: list = []
        self.tf_ns: list = []      # map->odom on {ns}/tf
        self.tf_root: list = []    # map->odom on /tf
        self.diags: list[DiagnosticArray] = []
        self.outputs = [   # created at the node's configure
            n.create_subscription(PoseWithCovarianceStamped, f'{ns}/amcl_pose', self.poses.append, LATCHED),
            n.create_subscription(Odometry, f'{ns}/flm/odometry', self.odometry.append, 10)]
        n.create_subscription(cloud_type, f'{ns}/particle_cloud', self.clouds.append, qos_profile_sensor_data)
        n.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)
        n.create_subscription(TFMessage, f'{ns}/tf', lambda m: self.tf_ns.extend(
            t for t in m.transforms if t.child_frame_id == 'odom'), 100)
        if ns:
            n.create_subscription(TFMessage, '/tf', lambda m: self.tf_root.extend(
                t for t in m.transforms if t.child_frame_id == 'odom'), 100)
        node_ns = f'{ns}/flm_localizer'
        self.set_params = n.create_client(SetParameters, f'{node_ns}/set_parameters')
        self.get_params = n.create_client(GetParameters, f'{node_ns}/get_parameters')
        self.describe = n.create_client(DescribeParameters, f'{node_ns}/describe_parameters')
        self.change = n.create_client(ChangeState, f'{node_ns}/change_state')
        self.get_state = n.create_client(GetState, f'{node_ns}/get_state')
        self.nomotion = n.create_client(Empty, f'{ns}/request_nomotion_update')
        self.relocalize = n.create_client(Empty, f'{ns}/reinitialize_global_localization')
        self.set_initial = n.create_client(amcl.SetInitialPose, f'{ns}/set_initial_pose') if amcl.NAV2_MSGS \
            else None
        self.t0 = time.time()
        self._next_odom = self._next_uwb = 0.0

    def truth(self, t: float) -> np.ndarray:
        """(2,) the robot's position in the map at wall time t."""
        return START + np.array([SPEED * (t - self.t0), 0.0])

    def _publish_sensors(self) -> None:
        t = time.time()
        if t >= self._next_odom:
            self._next_odom = t + 0.05
            self.odom_pub.publish(conv.odometry_to_msg(OdometrySample(
                stamp=t, frame_id='odom', child_frame_id='base_link',
                position=np.array([SPEED * (t - self.t0), 0.0, 0.0]), orientation=yaw_to_quat(0.0),
                linear_velocity=np.array([SPEED, 0.0, 0.0]), angular_velocity=np.zeros(3))))
        if t >= self._next_uwb:
            self._next_uwb = t + 0.1
            p = np.append(self.truth(t), 0.0)
            for i, (a, xyz) in enumerate(ANCHORS.items()):   # one range per stamp (the buffer drops duplicates)
                self.uwb_pub.publish(conv.range_to_msg(RangeSample(
                    stamp=t - 0.001 * i, anchor_id=a, range=float(np.linalg.norm(p - np.array(xyz))),
                    max_range=50.0)))

    def spin(self, seconds: float, until=None) -> bool:
        """Publish and spin for up to ``seconds``; True as soon as ``until()`` holds."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._publish_sensors()
            self.ex.spin_once(timeout_sec=0.01)
            if until is not None and until():
                return True
        return until is None

    def spin_once(self, timeout_sec: float) -> None:
        """Publish what is due and spin once (at most 10 ms: the odometry is due every 50 ms)."""
        self._publish_sensors()
        self.ex.spin_once(timeout_sec=min(timeout_sec, 0.01))

    def wait_ready(self, proc, *topics: str) -> None:
        """Until our sensor, /initialpose and map writers and the recorders of the node's outputs are matched, and
        the node subscribes to ``topics``."""
        wait_for_matches(pubs=[self.odom_pub, self.uwb_pub, self.map_pub, self.initialpose], subs=self.outputs,
                         spin_once=self.spin_once, proc=proc)
        assert self.spin(60, until=lambda: all(self.node.count_subscribers(t) > 0 for t in topics)), \
            f'the node subscribes to {topics}:\n{stop_proc(proc)}'

    def call(self, client, request):
        """A service call, retried with a per-try timeout (discovery and a busy machine can lose the first)."""
        return call_service(self.node, client, request, spin_once=self.spin_once)

    def transition(self, tid: int) -> bool:
        return change_state(self.node, self.change, self.get_state, tid, spin_once=self.spin_once)

    def set(self, name: str, value):
        req = SetParameters.Request(parameters=[Parameter(name=name, value=_param_value(value))])
        return self.call(self.set_params, req).results[0]

    def get(self, *names: str) -> list:
        values = self.call(self.get_params, GetParameters.Request(names=list(names))).values
        return [{1: lambda v: v.bool_value, 2: lambda v: v.integer_value, 3: lambda v: v.double_value,
                 4: lambda v: v.string_value}[v.type](v) for v in values]

    def status(self) -> dict[str, str]:
        for arr in reversed(self.diags):
            for s in arr.status:
                if s.hardware_id == 'localization':
                    return {kv.key: kv.value for kv in s.values}
        return {}

    def pose_msg(self, xy, yaw: float, frame: str | None = None) -> PoseWithCovarianceStamped:
        return conv.pose_to_msg(conv.PoseWithCovariance(
            stamp=time.time(), frame_id=frame or self.map_frame, position=np.array([xy[0], xy[1], 0.0]),
            orientation=yaw_to_quat(yaw), covariance=np.diag([0.04, 0.04, 0, 0, 0, 0.01])))

    def close(self) -> None:
        self.node.destroy_node()


def _near_truth(r: Robot, msg: PoseWithCovarianceStamped, tol: float = 0.3) -> bool:
    t = conv.stamp_to_sec(msg.header.stamp)
    p = msg.pose.pose.position
    return float(np.hypot(p.x - r.truth(t)[0], p.y - r.truth(t)[1])) < tol


def test_in_a_namespace_with_amcls_services_topics_and_parameters(rclpy_context, tmp_path):
    saved = tmp_path / 'saved_pose'
    spec = node_specs(BringupArgs(site=str(_site(tmp_path)), namespace='robot1', extra={
        **COMMON, 'save_pose_rate': 2.0, 'saved_pose_filepath': str(saved)}))[0]
    proc = python_proc(command_for(spec)[1:])
    r = Robot(rclpy_context, '/robot1', amcl.ParticleCloud if amcl.NAV2_MSGS else PoseArray)
    try:
        # ready: the node subscribes to the sensor topics in its namespace (and not to the root ones)
        r.wait_ready(proc, '/robot1/uwb/ranges', '/robot1/odom')
        assert r.node.count_subscribers('/uwb/ranges') == 0 and r.node.count_subscribers('/odom') == 0
        # global localization from UWB, then tracking: the pose in the namespace, near the truth
        assert r.spin(60, until=lambda: len(r.poses) >= 20), stop_proc(proc)
        assert all(p.header.frame_id == 'map' for p in r.poses)
        assert _near_truth(r, r.poses[-1]), r.poses[-1].pose.pose.position
        # map->odom on /robot1/tf (the launch file's /tf -> tf remapping), nothing on /tf
        assert r.tf_ns and not r.tf_root, (len(r.tf_ns), len(r.tf_root))
        tr = r.tf_ns[-1].transform.translation
        assert r.tf_ns[-1].header.frame_id == 'map' and np.hypot(tr.x - START[0], tr.y - START[1]) < 0.3
        # flm/odometry: the filter's twist with a covariance (never zero)
        od = r.odometry[-1]
        assert od.twist.twist.linear.x == pytest.approx(SPEED, abs=0.05) and abs(od.twist.twist.linear.y) < 0.05
        tcov = np.asarray(od.twist.covariance).reshape(6, 6)
        assert np.all(np.isfinite(tcov)) and np.all(np.diag(tcov) > 0)
        assert tcov[5, 5] == amcl.UNKNOWN_VAR, 'no IMU: the yaw rate has no covariance in the filter: unknown'
        # particle_cloud: one hypothesis, the published pose, weight 1
        assert r.spin(15, until=lambda: bool(r.clouds))
        cloud = r.clouds[-1]
        if amcl.NAV2_MSGS:
            assert [p.weight for p in cloud.particles] == [1.0]
            assert cloud.header.frame_id == 'map'
        # request_nomotion_update: the pose source runs now
        assert r.spin(15, until=lambda: 'nomotion_served' in r.status())
        assert r.status()['nomotion_served'] == '0'
        r.call(r.nomotion, Empty.Request())    # (>= 1: a call re-sent after a lost reply is served twice)
        assert r.spin(20, until=lambda: int(r.status().get('nomotion_served', 0)) >= 1), r.status()
        # set_initial_pose (nav2_msgs/SetInitialPose): the same checks as initialpose (wrong frame refused)
        if r.set_initial is not None:
            r.call(r.set_initial, amcl.SetInitialPose.Request(pose=r.pose_msg(r.truth(time.time()), 0.0, 'odom')))
            assert r.spin(15, until=lambda: int(r.status().get('initialpose_rejected', 0)) >= 1), r.status()
            r.call(r.set_initial, amcl.SetInitialPose.Request(pose=r.pose_msg(r.truth(time.time()), 0.0)))
            assert r.spin(15, until=lambda: 'initial pose' in r.status().get('events', '')), r.status()
        # parameters: ranges in the descriptors, refusals with the reason, re-initialisation while active
        d = r.call(r.describe, DescribeParameters.Request(names=['update_rate', 'max_hypotheses'])).descriptors
        assert d[0].floating_point_range[0].from_value == pytest.approx(0.1) and d[1].integer_range[0].to_value == 64
        res = r.set('update_rate', 0.0)
        assert not res.successful and 'out of range' in res.reason, res
        res = r.set('sensors.scan.topic', 'other_scan')
        assert not res.successful and 'read at activation' in res.reason, res
        res = r.set('global_frame_id', 'world')           # AMCL's name of map_frame
        assert not res.successful and 'map_frame is read at configure' in res.reason, res
        res = r.set('filter.gate_prob', 1.5)
        assert not res.successful and 'out of range' in res.reason, res
        assert r.set('update_rate', 5.0).successful
        n = len(r.poses)
        assert r.set('buffer.window', 3.0).successful and r.set('filter.gyro_noise', 0.004).successful
        assert r.get('buffer.window', 'update_rate', 'map_frame', 'global_frame_id') == [3.0, 5.0, 'map', 'map']
        assert r.spin(30, until=lambda: len(r.poses) >= n + 10), 'poses go on after the re-initialisation'
        assert _near_truth(r, r.poses[-1]), r.poses[-1].pose.pose.position
        # the saved pose, as parameters and in AMCL's file format
        stamp, x, y = r.get('saved_pose.stamp', 'saved_pose.x', 'saved_pose.y')
        assert stamp > r.t0 and np.hypot(x - r.truth(stamp)[0], y - r.truth(stamp)[1]) < 0.3, (stamp, x, y)
        pose, fstamp = amcl.load_pose_file(saved, 'map')
        assert fstamp >= stamp - 1.0 and np.hypot(*(pose[:2] - r.truth(fstamp))) < 0.3
        # reinitialize_global_localization (UWB: found again at once)
        r.call(r.relocalize, Empty.Request())
        assert r.spin(20, until=lambda: 'relocalized' in r.status().get('events', '')), r.status()
        # deactivate + activate: it starts from the pose it had (as AMCL, always_reset_initial_pose false)
        assert r.transition(Transition.TRANSITION_DEACTIVATE)
        assert r.set('sensors.scan.topic', 'other_scan').successful, 'inactive: read at the next activation'
        n = len(r.poses)
        assert r.transition(Transition.TRANSITION_ACTIVATE)
        assert r.spin(30, until=lambda: len(r.poses) >= n + 5 and r.node.count_subscribers('/robot1/other_scan'))
        assert _near_truth(r, r.poses[-1])
        # always_reset_initial_pose: the last pose is forgotten; here it localizes globally again
        assert r.transition(Transition.TRANSITION_DEACTIVATE) and r.set('always_reset_initial_pose', True).successful
        n = len(r.poses)
        assert r.transition(Transition.TRANSITION_ACTIVATE)
        assert r.spin(30, until=lambda: len(r.poses) >= n + 5) and _near_truth(r, r.poses[-1])
    finally:
        out = stop_proc(proc)
        r.close()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out, out
    assert 'buffer.window changed: localization re-initialised at the last pose' in out, out
    assert out.count('initial pose set from the pose before the deactivation') == 1, out
    assert out.count('localization: global localization') == 2, out    # at start and after always_reset


def _grid(w: int, h: int) -> OccupancyMap:
    g = np.zeros((h, w), dtype=np.int8)
    g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = 100
    return OccupancyMap(grid=g, resolution=0.05, origin=np.array([-1.0, -1.0, 0.0]))


def test_a_nav2_parameter_file_the_map_topic_and_the_saved_pose(rclpy_context, tmp_path):
    """AMCL's parameter names (frames, scan_topic, nested initial_pose, initialize_at_saved_pose with AMCL's file),
    AMCL's motion model plugin as robot_model, AMCL-only parameters logged as ignored, maps on the map topic (a later
    one replaces the first; first_map_only ignores it), PoseArray on particle_cloud."""
    saved = tmp_path / 'amcl_saved_pose'
    saved.write_text(f'timestamp: 1738678400.0\nframe_id: world\nx: {START[0]}\ny: {START[1]}\nz: 0.0\nyaw: 0.0\n')
    nav2 = tmp_path / 'nav2_params.yaml'
    nav2.write_text(f"""flm_localizer:
  ros__parameters:
    global_frame_id: world
    scan_topic: front_scan
    set_initial_pose: false
    initial_pose: {{x: 9.0, y: 9.0, z: 0.0, yaw: 1.0}}
    initialize_at_saved_pose: true
    saved_pose_filepath: {saved}
    alpha1: 0.2
    laser_model_type: likelihood_field
    robot_model_type: nav2_amcl::OmniMotionModel
    site_file: {_site(tmp_path)}
    global_on_start: false
    particle_cloud_type: pose_array
    pose_source: uwb
    diagnostics_period: 0.25
    sensors.imu.enabled: false
""")
    spec = NodeSpec(executable='flm_localizer', name='flm_localizer',
                    parameters=(str(ROOT / 'config' / 'flm.yaml'), str(nav2)))
    proc = python_proc(command_for(spec)[1:])
    r = Robot(rclpy_context, '', PoseArray, map_frame='world')
    try:
        r.wait_ready(proc, '/front_scan', '/map')
        assert r.get('map_frame', 'global_frame_id', 'sensors.scan.topic', 'initial_pose.x', 'robot_model') == \
            ['world', 'world', 'front_scan', 9.0, 'omnidirectional']
        # no global localization and no initial pose: it publishes only because it starts at the saved pose
        assert r.spin(60, until=lambda: len(r.poses) >= 10), stop_proc(proc)
        assert all(p.header.frame_id == 'world' for p in r.poses) and _near_truth(r, r.poses[-1])
        assert r.tf_ns and all(t.header.frame_id == 'world' for t in r.tf_ns)
        assert r.spin(15, until=lambda: bool(r.clouds)) and len(r.clouds[-1].poses) == 1
        # maps on /map: the first, a later one replacing it (logged), then first_map_only
        r.map_pub.publish(conv.occupancy_grid_to_msg(_grid(260, 220), frame_id='world'))
        assert r.spin(20, until=lambda: r.status().get('maps_used') == '1'), r.status()
        r.initialpose.publish(r.pose_msg((30.0, 30.0), 0.0))     # off the map: refused
        assert r.spin(15, until=lambda: r.status().get('initialpose_rejected') == '1'), r.status()
        r.map_pub.publish(conv.occupancy_grid_to_msg(_grid(280, 240), frame_id='world'))
        assert r.spin(20, until=lambda: r.status().get('maps_used') == '2'), r.status()
        n = len(r.poses)
        assert r.spin(30, until=lambda: len(r.poses) >= n + 10) and _near_truth(r, r.poses[-1])
        assert r.set('first_map_only', True).successful
        r.map_pub.publish(conv.occupancy_grid_to_msg(_grid(300, 240), frame_id='world'))
        assert r.spin(20, until=lambda: r.status().get('maps_ignored') == '1'), r.status()
        assert r.status()['maps_used'] == '2' and r.status()['maps_received'] == '3'
    finally:
        out = stop_proc(proc)
        r.close()
    assert proc.returncode == 0 and 'Traceback' not in out, out
    assert 'AMCL parameters without meaning here, ignored: alpha1, laser_model_type' in out, out
    assert "robot_model_type 'nav2_amcl::OmniMotionModel': robot_model 'omnidirectional'" in out, out
    assert 'unknown parameters ignored' not in out, out
    assert f'initial pose set from the saved pose in {saved}' in out, out
    assert 'map received from /map (260x220 cells of 0.05 m)' in out and 'map replaced from /map' in out, out


def test_a_value_out_of_range_stops_the_node_at_start_with_the_reason(tmp_path):
    spec = NodeSpec(executable='flm_localizer', name='flm_localizer',
                    parameters=(str(ROOT / 'config' / 'flm.yaml'), {'update_rate': 0.0}))
    proc = python_proc(command_for(spec)[1:])
    try:
        proc.wait(timeout=60)
    finally:
        out = stop_proc(proc)
    assert proc.returncode == 2, out
    assert 'flm_localizer: error: parameter update_rate' in out and 'allowed: [0.1, 1000.0]' in out, out
