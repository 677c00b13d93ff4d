"""The localizer node as its own process, driven over DDS: lifecycle through the standard services, nothing
published before a pose, /initialpose (wrong frame refused), the relocalization service, and a replayed bag in
-> pose + TF out with TF stamps that never go back.

These tests exercise the ROS path with a real TorchScript file exported from a freshly initialised network
(weights do not matter for plumbing); accuracy with the shipped model is tested in
test_model_export.py::test_shipped_model and test_faults.py.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from bond.msg import Status as BondStatus
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from lifecycle_msgs.msg import State as LState
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Empty
from tf2_msgs.msg import TFMessage

from ros_support import ROOT, call_service, change_state, python_proc, stop_proc, wait_for_matches, wait_until
from flm_core.datagen.bagwriter import BAG_EPOCH, write_bag
from flm_core.datagen.config import ScenarioConfig
from flm_core.datagen.scenario import generate_scenario
from flm_core.geometry import yaw_to_quat
from flm_ros import conversions as conv
from flm_ros.bringup import NodeSpec
from flm_ros.runner import command_for

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenario')
    sc = generate_scenario(ScenarioConfig(duration=6.0), 5)
    bag = write_bag(sc, out, storage='mcap')
    return sc, bag, out / 'site.yaml'


class Driver:
    """The test side: a node with service clients and recorders."""

    def __init__(self, ctx, node_name: str = 'flm_localizer') -> None:
        import rclpy
        self.node = rclpy.create_node('flm_test_localizer_driver', context=ctx)
        self.ex = SingleThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.poses: list[PoseWithCovarianceStamped] = []
        self.tf: list = []
        self.diags: list[DiagnosticArray] = []
        self.outputs = [   # the node's outputs, created at its configure
            self.node.create_subscription(PoseWithCovarianceStamped, '/amcl_pose', self.poses.append, LATCHED),
            self.node.create_subscription(TFMessage, '/tf', lambda m: self.tf.extend(
                t for t in m.transforms if t.child_frame_id == 'odom'), 100),
            self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)]
        self.bonds: list[tuple[float, BondStatus]] = []     # (monotonic s of arrival, heartbeat)
        self.bond_sub = self.node.create_subscription(
            BondStatus, '/bond', lambda m: self.bonds.append((time.monotonic(), m)), 10)
        self.change = self.node.create_client(ChangeState, f'/{node_name}/change_state')
        self.get = self.node.create_client(GetState, f'/{node_name}/get_state')
        self.relocalize = self.node.create_client(Empty, '/reinitialize_global_localization')
        self.initialpose = self.node.create_publisher(PoseWithCovarianceStamped, '/initialpose', 10)

    def spin_once(self, timeout_sec: float) -> None:
        self.ex.spin_once(timeout_sec=timeout_sec)

    def spin(self, seconds: float) -> None:
        """Spin for ``seconds``: an observation window (readiness is waited for with :meth:`wait`)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.05)

    def wait(self, cond, what: str, timeout: float = 30.0, proc=None) -> None:
        wait_until(cond, timeout, what, self.spin_once, proc)

    def call(self, client, request):
        return call_service(self.node, client, request)

    def transition(self, tid: int) -> bool:
        return change_state(self.node, self.change, self.get, tid)

    def state(self) -> int:
        return self.call(self.get, GetState.Request()).current_state.id

    def localization_status(self) -> dict[str, str]:
        for arr in reversed(self.diags):
            for s in arr.status:
                if s.hardware_id == 'localization':
                    return {kv.key: kv.value for kv in s.values}
        return {}


def _node(site, model, **extra) -> NodeSpec:
    return NodeSpec(executable='flm_localizer', name='flm_localizer', parameters=(
        str(ROOT / 'config' / 'flm.yaml'),
        {'site_file': str(site), 'model_path': str(model), 'diagnostics_period': 0.25, **extra}))


def test_lifecycle_and_nothing_before_a_pose(rclpy_context, random_model, scenario):
    _, _, site = scenario
    proc = python_proc(command_for(_node(site, random_model, autostart=False))[1:])
    d = Driver(rclpy_context)
    try:
        assert d.state() == LState.PRIMARY_STATE_UNCONFIGURED
        assert d.transition(Transition.TRANSITION_CONFIGURE)
        assert d.state() == LState.PRIMARY_STATE_INACTIVE
        assert d.transition(Transition.TRANSITION_ACTIVATE)
        assert d.state() == LState.PRIMARY_STATE_ACTIVE
        # the node's outputs are matched here and its diagnostics and bond heartbeats arrive: then watch 1.5 s
        wait_for_matches(subs=[*d.outputs, d.bond_sub], spin_once=d.spin_once, proc=proc)
        d.wait(lambda: d.localization_status() and any(m.id == 'flm_localizer' for _, m in d.bonds),
               'diagnostics and bond heartbeats from the node', proc=proc)
        first_beat = len(d.bonds)
        d.spin(1.5)
        assert d.poses == [] and d.tf == [], 'nothing is published before the first pose'
        status = d.localization_status()
        assert status.get('state') == 'initializing', status
        # the bond nav2_lifecycle_manager waits for after activating a node (id: the node's name, as Nav2's nodes)
        beats = [m for _, m in d.bonds[first_beat:] if m.id == 'flm_localizer']
        assert len(beats) >= 8 and all(m.active for m in beats), f'{len(beats)} heartbeats in 1.5 s at 0.1 s'
        assert len({m.instance_id for m in beats}) == 1 and beats[-1].heartbeat_period == pytest.approx(0.1)
        n_before = len(d.bonds)
        assert d.transition(Transition.TRANSITION_DEACTIVATE)
        assert d.state() == LState.PRIMARY_STATE_INACTIVE
        # deactivation breaks the bond (the manager is told): an inactive status arrives, and after it no
        # heartbeat (arrival order, not arrival time, so that a heartbeat delayed on a busy machine does not count)
        d.wait(lambda: any(not m.active for _, m in d.bonds[n_before:] if m.id == 'flm_localizer'),
               'a broken-bond status after the deactivation', timeout=10.0, proc=proc)
        d.spin(1.0)
        after = [m for _, m in d.bonds[n_before:] if m.id == 'flm_localizer']
        broken_at = next(i for i, m in enumerate(after) if not m.active)
        assert not any(m.active for m in after[broken_at:]), 'no heartbeat after the bond was broken'
        assert d.transition(Transition.TRANSITION_CLEANUP)
        assert d.state() == LState.PRIMARY_STATE_UNCONFIGURED
        # configure again with a model that is not a model: refused, node stays up and unconfigured
        bad = site.parent / 'not_a_model.pt'
        bad.write_bytes(b'\x80\x04K\x01.')  # a pickle
        set_params = d.node.create_client(
            __import__('rcl_interfaces.srv', fromlist=['SetParameters']).SetParameters,
            '/flm_localizer/set_parameters')
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        req = set_params.srv_type.Request(parameters=[Parameter(name='model_path', value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=str(bad)))])
        assert d.call(set_params, req).results[0].successful
        assert not d.transition(Transition.TRANSITION_CONFIGURE)
        assert d.state() == LState.PRIMARY_STATE_UNCONFIGURED
        assert proc.poll() is None
    finally:
        out = stop_proc(proc)
        d.node.destroy_node()
    assert 'configure failed' in out


def test_bag_in_pose_and_tf_out_initialpose_and_relocalization(rclpy_context, random_model, scenario):
    sc, bag, site = scenario
    x0, y0, yaw0 = sc.ground_truth.pose[0]
    proc = python_proc(command_for(_node(site, random_model, use_sim_time=True, global_on_start=False))[1:])
    d = Driver(rclpy_context)
    play = None
    try:
        # ready: /initialpose (reliable) matched on this side, the node's outputs matched, its diagnostics here
        wait_for_matches(pubs=[d.initialpose], subs=d.outputs, spin_once=d.spin_once, proc=proc)
        d.wait(lambda: d.diags, 'diagnostics from the node', proc=proc)
        # wrong frame: refused and counted
        msg = conv.pose_to_msg(conv.PoseWithCovariance(
            stamp=0.0, frame_id='odom', position=np.array([x0, y0, 0.0]), orientation=yaw_to_quat(yaw0),
            covariance=np.diag([0.01, 0.01, 0, 0, 0, 0.01])))
        d.initialpose.publish(msg)
        d.wait(lambda: d.localization_status().get('initialpose_rejected') == '1',
               'the initial pose in the wrong frame counted as rejected', timeout=10.0, proc=proc)
        assert d.poses == []
        # the right frame, at the true start pose (taken: 'initial pose' in the node's events); then play the
        # bag with /clock once the node's /scan subscription is matched with the player's writer
        msg.header.frame_id = 'map'
        msg.header.stamp = conv.sec_to_stamp(BAG_EPOCH)
        d.initialpose.publish(msg)
        d.wait(lambda: 'initial pose' in d.localization_status().get('events', ''),
               'the node taking the initial pose', timeout=10.0, proc=proc)
        play = python_proc(['-m', 'flm_ros.player', str(bag), '--clock', '100', '--wait-for-subscriber', '/scan'])
        d.wait(lambda: play.poll() is not None, 'the player playing the bag to the end', timeout=120.0)
        assert play.returncode == 0, play.finish(10.0)
        d.wait(lambda: d.poses, 'a pose published', timeout=10.0, proc=proc)
        d.spin(1.0)    # the last poses and transforms in flight
        stamps = [conv.stamp_to_sec(p.header.stamp) for p in d.poses]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))
        assert all(p.header.frame_id == 'map' for p in d.poses)
        cov = np.asarray(d.poses[-1].pose.covariance).reshape(6, 6)
        assert np.all(np.isfinite(cov)) and cov[0, 0] > 0 and cov[5, 5] > 0
        tf_stamps = [t.header.stamp.sec * 10 ** 9 + t.header.stamp.nanosec for t in d.tf]  # exact, in ns
        assert tf_stamps and all(b > a for a, b in zip(tf_stamps, tf_stamps[1:])), 'TF never goes back in time'
        assert all(t.header.frame_id == 'map' for t in d.tf)
        # relocalization on demand
        d.call(d.relocalize, Empty.Request())
        d.spin(1.0)
        assert d.localization_status().get('state') in ('relocalizing', 'tracking', 'lost')
    finally:
        if play is not None:
            stop_proc(play)
        out = stop_proc(proc)
        d.node.destroy_node()
    assert proc.returncode == 0, out
    assert 'Traceback' not in out, out
