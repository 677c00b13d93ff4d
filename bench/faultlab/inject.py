"""The test side over DDS and the node under test: the node's parameters, command line and environment, the
:class:`Injector` (publishers for every stream, /clock, /initialpose and /tf_static; recorders for /amcl_pose, /tf
and /diagnostics) and :func:`run_plan`, which plays a plan to the running node.

What is recorded (:class:`Record`): ``/amcl_pose`` (stamp, pose, covariance), ``map -> odom`` on ``/tf``,
``/diagnostics`` (per stream and the localization status, with the node clock stamp) and the node process RSS
(psutil), each with the play time at which it arrived.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil

from bench.faultlab.cases import EPOCH, STREAMS, TOPICS
from bench.faultlab.plan import Item, Plan
from flm_core.geometry import quat_to_yaw, yaw_to_quat


def node_parameters(site: str | Path, model: str | Path, trained: bool = False, **extra: Any) -> dict[str, Any]:
    """Parameters of the node under test (on top of config/flm.yaml). With an untrained model the node does not
    localize globally (its global result would be arbitrary): after a bag loop it waits for the operator's
    /initialpose; a trained model relocalizes by itself."""
    return {'site_file': str(site), 'model_path': str(model), 'use_sim_time': True, 'global_on_start': bool(trained),
            'diagnostics_period': 0.25, **extra}



# ------------------------------------------------------------------------------------------------ running it
@dataclass
class Record:
    """What the node published and how its process fared, each row with the play time it arrived at."""

    poses: list[tuple[float, float, np.ndarray, np.ndarray, int]] = field(default_factory=list)  # recv, stamp (s
    tf: list[tuple[float, float, np.ndarray, int]] = field(default_factory=list)  # after EPOCH), pose, [cov3,] ns
    diags: list[tuple[float, float, dict[str, tuple[int, str, dict[str, str]]]]] = field(default_factory=list)
    rss: list[tuple[float, float, int]] = field(default_factory=list)                        # play, wall, bytes
    published: Counter = field(default_factory=Counter)                                      # stream -> count
    exited: int | None = None                                                                # exit code mid-run
    exited_play: float | None = None                                                         # play s when found gone
    wall: float = 0.0
    lag: list[tuple[float, float]] = field(default_factory=list)                             # play, behind (s)


def _rel_ns(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces/Time after EPOCH (exact: float seconds near 1.7e9 are not)."""
    return (int(stamp.sec) - int(EPOCH)) * 1_000_000_000 + int(stamp.nanosec)


class Injector:
    """The test side over DDS: publishers for every stream, /clock, /initialpose and /tf_static; recorders for
    /amcl_pose, /tf and /diagnostics (spun on a background thread)."""

    def __init__(self, context: Any = None, pose_topic: str = '/amcl_pose') -> None:
        import rclpy  # noqa: PLC0415
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from geometry_msgs.msg import PoseWithCovarianceStamped  # noqa: PLC0415
        from rclpy.executors import SingleThreadedExecutor  # noqa: PLC0415
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
        from rosgraph_msgs.msg import Clock  # noqa: PLC0415
        from tf2_msgs.msg import TFMessage  # noqa: PLC0415

        from flm_ros.sensor_input import MESSAGES  # noqa: PLC0415

        self.node = rclpy.create_node('flm_fault_injector', context=context)
        self.record = Record()
        self.recording = True   # False: outputs are no longer recorded (e.g. during the lifecycle checks)
        self.play_now = 0.0
        self._lock = threading.Lock()
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = {s: self.node.create_publisher(MESSAGES[s][0], TOPICS[s], qos) for s in STREAMS}
        self.clock_pub = self.node.create_publisher(Clock, '/clock', 10)
        self.initialpose_pub = self.node.create_publisher(PoseWithCovarianceStamped, '/initialpose', 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.static_pub = self.node.create_publisher(TFMessage, '/tf_static', latched)
        self.node.create_subscription(
            PoseWithCovarianceStamped, pose_topic, self._on_pose,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.node.create_subscription(TFMessage, '/tf', self._on_tf, 200)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        self.ex = SingleThreadedExecutor(context=context)
        self.ex.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name='fault-injector-spin', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.ex.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 (shutdown races)
                if self._stop.is_set():
                    return
                raise

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.ex.shutdown()
        self.node.destroy_node()

    # ---- recorders
    def _on_pose(self, msg: Any) -> None:
        if not self.recording:
            return
        p = msg.pose.pose
        pose = np.array([p.position.x, p.position.y, float(quat_to_yaw(np.array(
            [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])))])
        c = np.asarray(msg.pose.covariance, float).reshape(6, 6)[np.ix_([0, 1, 5], [0, 1, 5])]
        ns = _rel_ns(msg.header.stamp)
        self.record.poses.append((self.play_now, ns * 1e-9, pose, c, ns))

    def _on_tf(self, msg: Any) -> None:
        if not self.recording:
            return
        for t in msg.transforms:
            if t.child_frame_id == 'odom':
                r = t.transform.rotation
                ns = _rel_ns(t.header.stamp)
                self.record.tf.append((self.play_now, ns * 1e-9, np.array([
                    t.transform.translation.x, t.transform.translation.y,
                    float(quat_to_yaw(np.array([r.x, r.y, r.z, r.w])))]), ns))

    def _on_diag(self, msg: Any) -> None:
        from flm_ros import conversions as conv  # noqa: PLC0415
        if not self.recording:
            return
        st = {s.hardware_id: (int.from_bytes(s.level, 'little') if isinstance(s.level, bytes) else int(s.level),
                              s.message, {kv.key: kv.value for kv in s.values}) for s in msg.status}
        self.record.diags.append((self.play_now, conv.stamp_to_sec(msg.header.stamp) - EPOCH, st))

    # ---- helpers
    def wait_for_node(self, timeout: float = 60.0, alive: Callable[[], bool] = lambda: True) -> bool:
        """Until the node subscribes to every sensor topic and /initialpose and publishes diagnostics."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and alive():
            if (all(self.node.count_subscribers(t) > 0 for t in TOPICS.values())
                    and self.node.count_subscribers('/initialpose') > 0 and self.record.diags):
                return True
            time.sleep(0.1)
        return False

    def publish_static(self, sc: Any) -> None:
        """base_link -> sensor frames from the scenario's mounts."""
        from tf2_msgs.msg import TFMessage  # noqa: PLC0415

        from flm_core.datagen.bagwriter import OPTICAL_FROM_BODY  # noqa: PLC0415
        from flm_core.geometry import quat_multiply  # noqa: PLC0415
        from flm_ros.tf import make_transform  # noqa: PLC0415
        out = []
        for name in sc.streams:
            if name == 'odom':
                continue
            cfg = getattr(sc.config.sensors, name)
            q = yaw_to_quat(cfg.mount.yaw)
            if name == 'depth':
                q = quat_multiply(q, OPTICAL_FROM_BODY)
            out.append(make_transform('base_link', cfg.frame_id, EPOCH, [cfg.mount.x, cfg.mount.y, cfg.mount.z], q))
        self.static_pub.publish(TFMessage(transforms=out))

    def lifecycle(self, transition: str, node: str = 'flm_localizer', timeout: float = 30.0) -> bool | None:
        """Trigger a lifecycle transition ('configure', 'activate', 'deactivate', 'cleanup') of ``node``; its
        success, or None when the service did not answer."""
        from lifecycle_msgs.msg import Transition  # noqa: PLC0415
        from lifecycle_msgs.srv import ChangeState  # noqa: PLC0415
        tid = getattr(Transition, f'TRANSITION_{transition.upper()}')
        res = self._call(ChangeState, f'/{node}/change_state', ChangeState.Request(transition=Transition(id=tid)),
                         timeout)
        return None if res is None else bool(res.success)

    def lifecycle_state(self, node: str = 'flm_localizer', timeout: float = 10.0) -> str | None:
        """The node's lifecycle state label ('unconfigured', 'inactive', 'active', ...)."""
        from lifecycle_msgs.srv import GetState  # noqa: PLC0415
        res = self._call(GetState, f'/{node}/get_state', GetState.Request(), timeout)
        return None if res is None else res.current_state.label

    def _call(self, srv: Any, name: str, request: Any, timeout: float) -> Any:
        client = self.node.create_client(srv, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            fut = client.call_async(request)   # answered on the spin thread
            end = time.monotonic() + timeout
            while not fut.done() and time.monotonic() < end:
                time.sleep(0.02)
            return fut.result() if fut.done() else None
        finally:
            self.node.destroy_client(client)

    def publish_clock(self, t: float) -> None:
        from rosgraph_msgs.msg import Clock  # noqa: PLC0415
        ns = int(round((t + EPOCH) * 1e9))
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
        self.clock_pub.publish(msg)

    def publish(self, it: Item) -> None:
        from flm_ros import conversions as conv  # noqa: PLC0415
        msg = it.m
        if not hasattr(msg, 'get_fields_and_field_types'):
            msg = it.m = conv.to_msg(msg)
        if it.restamp is not None:
            msg.header.stamp = conv.sec_to_stamp(it.restamp + EPOCH)
        if it.stream == 'initialpose':
            self.initialpose_pub.publish(msg)
        else:
            self.pubs[it.stream].publish(msg)
        self.record.published[it.stream] += 1


def prepare_messages(plan: Plan) -> None:
    """Convert every measurement of the plan to its ROS message ahead of time (the big ones stay shared and are
    converted once)."""
    from flm_ros import conversions as conv  # noqa: PLC0415
    cache: dict[int, Any] = {}
    for it in plan.items:
        if it.m is None or hasattr(it.m, 'get_fields_and_field_types'):
            continue
        if it.restamp is not None:
            key = id(it.m)
            if key not in cache:
                cache[key] = conv.to_msg(it.m)
            it.m = cache[key]
        else:
            it.m = conv.to_msg(it.m)


def run_plan(plan: Plan, node_pid: int | None, context: Any = None, rate: float = 3.0, clock_hz: float = 100.0,
             rss_period: float = 0.25, injector: Injector | None = None, wait_node: float = 90.0,
             progress: Callable[[str], None] | None = None, slow_rate: float = 1.0) -> Record:
    """Publish the plan to the running node (``node_pid`` for RSS and liveness) and record what it publishes:
    ``rate`` x real time, its slow windows at ``slow_rate`` x (:meth:`Plan.wall_schedule`)."""

    own = injector is None
    inj = injector or Injector(context)
    rec = inj.record
    proc = psutil.Process(node_pid) if node_pid else None

    def alive() -> bool:
        return proc is None or (proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)

    try:
        inj.publish_clock(plan.stamp_at(0.0))
        if not inj.wait_for_node(wait_node, alive):
            raise RuntimeError('the node did not come up (no subscriptions on the sensor topics or no diagnostics)')
        inj.publish_static(plan.scenario)
        prepare_messages(plan)
        wall_of = plan.wall_schedule(rate, slow_rate)
        items = plan.items
        n, i = len(items), 0
        t0 = time.monotonic()
        last_clock = last_rss = -1.0
        next_note = 10.0
        while True:
            now = time.monotonic() - t0
            # play position: the latest play time whose wall time has come (bisection on the schedule)
            lo, hi = (inj.play_now, plan.end + 1.0)
            if wall_of(hi) <= now:
                lo = hi
            else:
                for _ in range(40):
                    mid = 0.5 * (lo + hi)
                    if wall_of(mid) <= now:
                        lo = mid
                    else:
                        hi = mid
            play = lo
            pending = items[i].play if i < n else math.inf
            inj.play_now = min(play, pending)
            if now - last_clock >= 1.0 / clock_hz:
                inj.publish_clock(plan.stamp_at(inj.play_now))
                last_clock = now
            burst = 0
            while i < n and items[i].play <= play and burst < 200:
                inj.publish(items[i])
                i += 1
                burst += 1
            if i < n and items[i].play <= play:
                rec.lag.append((play, play - items[i].play))
            if proc is not None and now - last_rss >= rss_period:
                try:
                    rec.rss.append((inj.play_now, now, proc.memory_info().rss))
                except psutil.Error:
                    pass
                last_rss = now
                if not alive():
                    rec.exited = -1
                    rec.exited_play = inj.play_now
                    break
            if progress is not None and play >= next_note:
                progress(f'play {play:.0f}/{plan.end:.0f} s, wall {now:.0f} s, poses {len(rec.poses)}')
                next_note += 10.0
            if i >= n and play >= plan.end:
                break
            time.sleep(0.001 if i < n and items[i].play <= play + 0.002 else 0.002)
        rec.wall = time.monotonic() - t0
        # let the last outputs and a diagnostics message arrive
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            inj.publish_clock(plan.stamp_at(plan.end))
            time.sleep(0.05)
    finally:
        if own:
            inj.close()
    return rec

# ------------------------------------------------------------------------------------------------ the node process
def node_command(params: dict[str, Any]) -> list[str]:
    """The command line of the localizer node (its console script entry point) with config/flm.yaml + params."""
    from flm_ros.bringup import NodeSpec, default_params_file  # noqa: PLC0415
    from flm_ros.runner import command_for  # noqa: PLC0415
    return command_for(NodeSpec(executable='flm_localizer', name='flm_localizer',
                                parameters=(str(default_params_file()), params)))


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the node under test: torch/OpenMP single-threaded. (On a loaded 2-core machine torch's
    default thread pool made each model step ~100x slower: ~0.9 s instead of ~9 ms, measured.)"""
    env = dict(os.environ if base is None else base)
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        env[var] = '1'
    return env


def large_data_profile() -> Path:
    """config/fastdds_large_data.xml: lets this process publish multi-MB messages to best-effort subscribers."""
    from flm_ros.bringup import share_dir  # noqa: PLC0415
    return share_dir() / 'config' / 'fastdds_large_data.xml'

