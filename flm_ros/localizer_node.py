"""flm_localizer: the FLM-ROS localization node, a Nav2 drop-in for AMCL.

A lifecycle node:

* configure: parameters, the site (site file, else the first ``/map``), the TorchScript model;
* activate: sensor subscriptions, ``/initialpose``, the ``reinitialize_global_localization`` service, the update
  timer and the inference thread;
* deactivate / cleanup: release them again.

Outputs (nothing before the first pose): ``amcl_pose``-compatible ``PoseWithCovarianceStamped`` (reliable,
transient local, depth 1), ``nav_msgs/Odometry``, ``map->odom`` on ``/tf`` post-dated by
``transform_tolerance`` and re-sent when no new estimate arrives (never going back in time), ``/diagnostics``,
a ``nav_msgs/Path`` and a ``MarkerArray`` (anchors, uncertainty ellipse).

Sensor callbacks and the update timer run on the executor; the model runs on an inference thread that the timer
wakes, so neither a callback nor the output waits for inference. On each tick the node publishes the filter's
estimate at the newest sensor stamp (every odometry/IMU sample and every model pose fused so far; cheap), then wakes
the model for the window that ends there; its pose enters the filter at that window's stamp (a delayed
measurement) and the following ticks carry it. So pose and map->odom are as fresh as the sensors, and the model's
own latency shows as the age of its last correction (``model_latency_*`` on /diagnostics), as in any filter that
fuses a slow sensor. (Stepping as soon as an exteroceptive measurement arrives would run the model before the
odometry and IMU of the same instant have arrived.) (A MultiThreadedExecutor with callback groups would do the
same on paper, but rclpy's dropped most best-effort sensor messages on 2 cores in test_sensor_hub.)
"""
from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Empty
from visualization_msgs.msg import Marker, MarkerArray

from flm_core.frontend import STREAMS, SensorFrontEnd
from flm_core.geometry import quat_to_yaw, yaw_to_quat
from flm_core.pipeline import Pipeline, PipelineConfig, State, StepResult, max_position_std
from flm_core.rig import RigBuilder, frames_in
from flm_core.site import Site, SiteError, load_site
from flm_ros import conversions as conv
from flm_ros import heap
from flm_ros import params as P
from flm_ros.bond import start_bond
from flm_ros.sensor_hub import diagnostics_for
from flm_ros.sensor_input import SensorInput, buffer_config, expectations
from flm_ros.tf import Buffer, TransformBroadcaster, TransformListener, make_transform, transform_to_arrays

TABLE = P.COMMON + P.LOCALIZER
STALE_ESTIMATE_S = 1.0  # s without a new estimate before the localization status warns
GIL_SWITCH_S = 0.001    # s, the interpreter's thread switch interval in the node process (see main)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def load_pose_source(p: dict[str, Any], logger) -> Any:
    """The pose source named by the parameters: the FLM model (torch or ONNX Runtime), or a classical baseline."""
    kind = p['pose_source']
    if kind == 'flm':
        from flm_core.model.inference import DEFAULT_MODEL, Localizer  # noqa: PLC0415

        # A default pool of one thread per core oversubscribes a small busy CPU: a model step went from ~9 ms to
        # ~0.9 s in the fault runs. Inference threads are a parameter, 1 by default.
        path = p['model_path'] or str(DEFAULT_MODEL)
        loc = Localizer.load(path, device=p['device'], fp16=bool(p['fp16']), backend=p['inference_backend'],
                             threads=max(1, int(p['inference_threads'])), iterations=int(p['model.iterations']),
                             converge=float(p['model.converge']), global_candidates=int(p['model.global_candidates']))
        logger.info(f'model {loc.backend.path} on {loc.device} ({loc.backend.name})')
        return loc
    from flm_core.estimation.baselines import make_pose_source  # noqa: PLC0415

    return make_pose_source(kind)


def make_rig(p: dict[str, Any], lookup: Any) -> RigBuilder:
    """The sensor mounts from TF (``lookup(target, source)``) as the parameters say (tag height)."""
    h = float(p['sensors.uwb.tag_height'])
    return RigBuilder(lookup, p['base_frame'], p['sensors.uwb.tag_frame'], tag_height=h if math.isfinite(h) else None)


def make_pipeline(p: dict[str, Any], site: Site, source: Any) -> Pipeline:
    """The localizer pipeline configured from node parameters (used live by the node and offline by flm-eval)."""
    front = SensorFrontEnd(buffer_config(p), expectations(p, site))
    enabled = [s for s in STREAMS if p[f'sensors.{s}.enabled']]
    cfg = PipelineConfig(
        global_on_start=bool(p['global_on_start']),  # set_initial_pose: initialised at activation already
        min_global_data=float(p['min_global_data']), global_max_std=float(p['global_max_std']),
        lost_after_rejections=int(p['lost_after_rejections']), lost_std=float(p['lost_std']),
        blackout=float(p['blackout']),
        max_hypotheses=int(p['max_hypotheses']), hypothesis_lead=float(p['hypothesis_lead']),
        process=p['filter.process'])
    return Pipeline(cfg, site, source, front, enabled)


def pose_cov_6x6(cov3: np.ndarray) -> list[float]:
    """(3, 3) x, y, yaw covariance -> row-major 6x6 (x y z roll pitch yaw), z/roll/pitch large-but-finite."""
    c = np.zeros((6, 6))
    idx = [0, 1, 5]
    c[np.ix_(idx, idx)] = cov3
    c[2, 2] = c[3, 3] = c[4, 4] = 1e-6  # planar: z, roll, pitch are fixed, as AMCL reports them
    return c.reshape(-1).tolist()


class LocalizerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('flm_localizer', **kwargs)
        P.declare(self, TABLE)
        self.p: dict[str, Any] = {}
        self.site: Site | None = None
        self.source: Any = None
        self.pipeline: Pipeline | None = None
        self.inputs: SensorInput | None = None
        self._entities: list[Any] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_worker: threading.Thread | None = None
        self._bond: Any = None                     # the bond with nav2_lifecycle_manager while active
        self._last: StepResult | None = None
        self._last_tf_ns = 0
        self._latencies: deque[float] = deque(maxlen=200)
        self._initialpose_rejected = 0
        self._last_stats: dict[str, dict] = {}
        self._path = Path()
        self._path_sent = -math.inf       # monotonic s of the last path message
        self._events_logged = 0           # pipeline events already logged
        self._map_sub = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.p = P.values(self, TABLE)
        try:
            if self.p['site_file']:
                self.site = load_site(self.p['site_file'])
            self.source = load_pose_source(self.p, self.get_logger())
        except (SiteError, OSError, ValueError, RuntimeError, ImportError) as e:
            self.get_logger().error(f'configure failed: {e}')
            return TransitionCallbackReturn.FAILURE
        if self.site is None:
            self.get_logger().info('no site_file: waiting for the map on /map')
            self._map_sub = self.create_subscription(OccupancyGrid, '/map', self._on_map, LATCHED)
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, self.p['pose_topic'], LATCHED)
        self.odom_pub = self.create_publisher(Odometry, self.p['odometry_topic'], 10)
        self.path_pub = self.create_publisher(Path, self.p['path_topic'], 1)
        self.marker_pub = self.create_publisher(MarkerArray, self.p['markers_topic'], 1)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.tf = TransformBroadcaster(self)
        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self.rig = make_rig(self.p, self._lookup)
        self.get_logger().info('configured' + (f' for site {self.site.name!r}' if self.site else ''))
        return TransitionCallbackReturn.SUCCESS

    def _new_pipeline(self) -> None:
        self.pipeline = make_pipeline(self.p, self.site, self.source)
        self.pipeline.front.mount = self.rig.rotation   # IMU samples are rotated by their TF mount
        self._events_logged = 0

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.site is None:
            self.get_logger().error('activate refused: no site (set site_file or publish /map)')
            return TransitionCallbackReturn.FAILURE
        self._new_pipeline()
        assert self.pipeline is not None
        self.inputs = SensorInput(self, self.p, self.site, front=self.pipeline.front, sink=self.pipeline.offer)
        self._entities = [
            self.create_subscription(PoseWithCovarianceStamped, '/initialpose', self._on_initialpose, 10),
            self.create_service(Empty, 'reinitialize_global_localization', self._on_global),
            self.create_timer(1.0 / float(self.p['update_rate']), self._on_tick),
        ]
        if self.p['set_initial_pose']:
            self._set_initial_pose(np.array([self.p['initial_pose.x'], self.p['initial_pose.y'],
                                             self.p['initial_pose.yaw']]),
                                   np.diag([self.p['initial_pose.std_xy'] ** 2] * 2
                                           + [self.p['initial_pose.std_yaw'] ** 2]), None)
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name='flm-inference', daemon=True)
        self._worker.start()
        self._diag_worker = threading.Thread(target=self._run_diagnostics, name='flm-diagnostics', daemon=True)
        self._diag_worker.start()
        self._bond = start_bond(self, float(self.p['bond_heartbeat_period']))
        if self._bond is None and self.p['bond_heartbeat_period'] > 0:
            self.get_logger().info('no bond to a lifecycle manager (neither bondpy nor the bond messages are '
                                   'installed): run nav2_lifecycle_manager with bond_timeout: 0.0')
        self.get_logger().info(f'active: sensors {", ".join(self.inputs.enabled)}')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._break_bond()
        self._stop_worker()
        for e in self._entities:
            self._destroy(e)
        self._entities = []
        if self.inputs is not None:
            self.inputs.destroy()
            self.inputs = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._break_bond()
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for name in ('pose_pub', 'odom_pub', 'path_pub', 'marker_pub', 'diag_pub'):
            pub = getattr(self, name, None)
            if pub is not None:
                self.destroy_publisher(pub)
                setattr(self, name, None)
        if self._map_sub is not None:
            self.destroy_subscription(self._map_sub)
            self._map_sub = None
        self.source = self.pipeline = self._last = None
        if not self.p.get('site_file'):
            self.site = None
        self._path = Path()
        self._path_sent = -math.inf       # monotonic s of the last path message
        self._events_logged = 0           # pipeline events already logged
        self._last_tf_ns = 0

    def _lookup(self, target: str, source: str) -> tuple[np.ndarray, np.ndarray]:
        _, tr, q = transform_to_arrays(self.tf_buffer.lookup_transform(target, source, rclpy.time.Time()))
        return tr, q

    def _destroy(self, e: Any) -> None:
        for fn in (self.destroy_subscription, self.destroy_service, self.destroy_timer):
            try:
                if fn(e):
                    return
            except (TypeError, AttributeError):
                continue

    def _break_bond(self) -> None:
        if self._bond is not None:
            self._bond.shutdown()
            self._bond = None

    def _stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None
        if self._diag_worker is not None:
            self._diag_worker.join(timeout=5.0)
            self._diag_worker = None

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_map(self, msg: OccupancyGrid) -> None:
        if self.site is None:
            try:
                self.site = Site(name='map_topic', frame_id=msg.header.frame_id or 'map',
                                 map=conv.occupancy_grid_from_msg(msg))
                self.get_logger().info(f'map received from /map ({msg.info.width}x{msg.info.height})')
            except ValueError as e:
                self.get_logger().error(f'/map rejected: {e}')

    def _on_initialpose(self, msg: PoseWithCovarianceStamped) -> None:
        frame = msg.header.frame_id.lstrip('/')
        if frame != self.p['map_frame']:
            self._initialpose_rejected += 1
            self.get_logger().warn(f'/initialpose ignored: frame {frame!r} is not {self.p["map_frame"]!r} '
                                   '(like AMCL, only poses in the global frame are accepted)')
            return
        pose = conv.pose_from_msg(msg)
        xy = pose.position[:2]
        cov = np.asarray(pose.covariance)[np.ix_([0, 1, 5], [0, 1, 5])]
        if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(cov))) or not self._inside_map(xy):
            self._initialpose_rejected += 1
            self.get_logger().warn(f'/initialpose ignored: {xy.tolist()} is not a finite pose inside the map')
            return
        if not np.all(np.linalg.eigvalsh(0.5 * (cov + cov.T)) > 0):
            cov = np.diag([0.25, 0.25, 0.07])  # RViz sends a fixed covariance; a zero one means "unknown"
        self._set_initial_pose(np.array([xy[0], xy[1], float(quat_to_yaw(pose.orientation))]), cov,
                               conv.stamp_to_sec(msg.header.stamp) or None)

    def _inside_map(self, xy: np.ndarray) -> bool:
        m = self.site.map if self.site else None
        if m is None:
            return True
        c, r = m.world_to_cell(xy)
        return 0 <= c < m.grid.shape[1] and 0 <= r < m.grid.shape[0]

    def _set_initial_pose(self, pose: np.ndarray, cov: np.ndarray, stamp: float | None) -> None:
        assert self.pipeline is not None
        self.pipeline.set_initial_pose(pose, cov, stamp)
        self.get_logger().info(f'initial pose set: x={pose[0]:.2f} y={pose[1]:.2f} yaw={pose[2]:.2f}')
        self._wake.set()

    def _on_global(self, request: Empty.Request, response: Empty.Response) -> Empty.Response:
        if self.pipeline is not None:
            self.pipeline.request_global()
            self.get_logger().info('global relocalization requested')
            self._wake.set()
        return response

    def _on_set_parameters(self, changes) -> SetParametersResult:
        table = {p.name: p for p in TABLE}
        active = self._worker is not None
        for c in changes:
            p = table.get(c.name)
            if p is not None and p.read_only and active:
                return SetParametersResult(
                    successful=False, reason=f'{c.name} cannot change while active: deactivate, cleanup, set it, '
                                             'configure and activate again')
        for c in changes:
            if c.name in self.p:
                self.p[c.name] = c.value
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ update tick and inference thread
    def _on_tick(self) -> None:
        """The update timer (executor thread): publish the estimate at the newest stamp, then wake the model."""
        if self.pipeline is None:
            return
        res = self.pipeline.estimate()
        try:
            if res is None or not self._publish(res):
                self._publish_tf()    # no new estimate: re-send the last one
        except RCLError:
            if self.context.ok():
                raise
            return
        self._wake.set()

    def _run(self) -> None:
        """The inference thread: on each wake, the model on the window that ends at the newest stamp."""
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set() or self.pipeline is None:
                break
            try:
                with self.pipeline.front.lock:
                    frames = frames_in(self.pipeline.front.buffer.newest())
                self.pipeline.rig = self.rig.rig(frames, self.inputs.camera_info if self.inputs else None)
                u = self.pipeline.update()
            except Exception as e:  # noqa: BLE001 (a model failure must not kill the node)
                self.get_logger().error(f'update failed: {type(e).__name__}: {e}', throttle_duration_sec=5.0)
                u = None
            if u is not None and u.model_latency is not None:
                self._latencies.append(u.model_latency)
            self._log_events()

    def _log_events(self) -> None:
        """Log the pipeline's new events (lost, relocalized, ambiguous, time jumps) once each."""
        pl = self.pipeline
        if pl is None:
            return
        new = pl.events_total - self._events_logged
        for stamp, what in (pl.events[-new:] if 0 < new <= len(pl.events) else []):
            msg = f'localization: {what} (stamp {stamp:.3f})'
            if what == 'lost' or what.startswith('time jumped'):   # (rclpy: one severity per call site)
                self.get_logger().warning(msg)
            else:
                self.get_logger().info(msg)
        self._events_logged = pl.events_total

    def _publish(self, r: StepResult) -> bool:
        """Publish a new estimate: pose and map->odom first (what navigation waits for), then odometry and the
        path (at most every path_period s: a long path costs milliseconds to serialise). False if not new."""
        new = self._last is None or r.stamp != self._last.stamp
        self._last = r
        if not new:
            return False
        stamp = conv.sec_to_stamp(r.stamp)
        msg = PoseWithCovarianceStamped()
        msg.header.stamp, msg.header.frame_id = stamp, self.p['map_frame']
        q = yaw_to_quat(r.pose[2])
        pp = msg.pose.pose
        pp.position.x, pp.position.y = float(r.pose[0]), float(r.pose[1])
        pp.orientation.x, pp.orientation.y, pp.orientation.z, pp.orientation.w = (float(v) for v in q)
        msg.pose.covariance = pose_cov_6x6(r.cov)
        if self.pose_pub is not None:
            self.pose_pub.publish(msg)
        self._publish_tf()
        od = Odometry()
        od.header = msg.header
        od.child_frame_id = self.p['base_frame']
        od.pose = msg.pose
        if self.odom_pub is not None:
            self.odom_pub.publish(od)
        ps = PoseStamped(header=msg.header, pose=msg.pose.pose)
        self._path.header = msg.header
        self._path.poses.append(ps)
        if len(self._path.poses) > int(self.p['path_length']):
            del self._path.poses[0]
        now = time.monotonic()
        if self.path_pub is not None and now - self._path_sent >= float(self.p['path_period']) \
                and _listened(self.path_pub):
            self._path_sent = now
            self.path_pub.publish(self._path)
        return True

    def _publish_tf(self) -> None:
        """map->odom of the newest estimate, post-dated; re-sent on every tick; stamps strictly increase."""
        r = self._last
        if r is None or not self.p['tf_broadcast']:
            return
        base = max(r.stamp, self._now()) + float(self.p['transform_tolerance'])
        ns = max(int(round(base * 1e9)), self._last_tf_ns + 1)
        self._last_tf_ns = ns
        m = r.map_to_odom
        self.tf.sendTransform(make_transform(self.p['map_frame'], self.p['odom_frame'],
                                             rclpy.time.Time(nanoseconds=ns), [m[0], m[1], 0.0], yaw_to_quat(m[2])))

    # ------------------------------------------------------------------ diagnostics and markers
    def _run_diagnostics(self) -> None:
        """The diagnostics thread: /diagnostics and markers every diagnostics_period s of steady time (also while
        /clock is silent). Not an executor timer: building them takes 4-16 ms, and a tick queued behind them on the
        executor thread would publish that much later (here they only share the GIL, 1 ms at a time)."""
        while not self._stop.wait(float(self.p['diagnostics_period'])):
            try:
                self._publish_diagnostics()
            except RCLError:
                if self.context.ok():
                    raise
                return
            except Exception as e:  # noqa: BLE001 (a diagnostics failure must not kill the node)
                self.get_logger().error(f'diagnostics failed: {type(e).__name__}: {e}', throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        heap.trim()  # what a global search or a huge message left free goes back to the OS (~0.2 ms when idle)
        if self.inputs is None or self.pipeline is None or self.diag_pub is None:
            return
        now = self.get_clock().now()
        stats = self.inputs.stats()
        arr = diagnostics_for(self.get_name(), stats, now.to_msg(), self._last_stats)
        self._last_stats = stats
        r, pl = self._last, self.pipeline
        lat = np.array(list(self._latencies)) * 1e3 if self._latencies else np.zeros(1)  # (appended meanwhile)
        # the uncertainty now: the filter brought to the clock's time, so it grows while no data arrives
        age = self._now() - r.stamp if r is not None else float('nan')
        now_est = pl.pose_at(self._now()) if r is not None and age >= 0 else None  # (age < 0: time went back)
        cov = now_est[1] if now_est is not None else (r.cov if r is not None else None)
        std = max_position_std(cov) if cov is not None else float('nan')
        state = pl.state.value if r is not None or pl.state != State.TRACKING else 'initializing'
        level = {State.TRACKING: DiagnosticStatus.OK, State.INITIALIZING: DiagnosticStatus.WARN}.get(
            pl.state, DiagnosticStatus.ERROR if pl.state == State.LOST else DiagnosticStatus.WARN)
        message = state
        if r is not None and age > STALE_ESTIMATE_S:
            level = max(level, DiagnosticStatus.WARN)  # single bytes: OK < WARN < ERROR
            message = f'{state}: no new estimate for {age:.1f} s (no sensor data?)'
        counts = pl.filter.counts
        values = {
            'state': state, 'position_std_m': f'{std:.3f}',
            'yaw_std_rad': f'{math.sqrt(max(cov[2, 2], 0.0)):.3f}' if cov is not None else 'nan',
            'model_latency_p50_ms': f'{np.percentile(lat, 50):.2f}',
            'model_latency_p99_ms': f'{np.percentile(lat, 99):.2f}',
            'model_poses_accepted': str(counts.get('model', {}).get('accepted', 0)),
            'model_poses_rejected': str(counts.get('model', {}).get('rejected', 0)),
            'initialpose_rejected': str(self._initialpose_rejected),
            'events': '; '.join(f'{t:.2f}: {w}' for t, w in pl.events[-5:]),
            'last_estimate_age_s': f'{age:.3f}' if r is not None else 'nan',
        }
        for k, v in (r.health.items() if r is not None else ()):
            values[f'health.{k}'] = f'{v:.3f}'
        arr.status.append(DiagnosticStatus(
            level=level, name=f'{self.get_name()}: localization', hardware_id='localization',
            message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()]))
        self.diag_pub.publish(arr)
        self._publish_markers(now.to_msg())

    def _publish_markers(self, stamp) -> None:
        if self.marker_pub is None or self.site is None or not _listened(self.marker_pub):
            return
        ma = MarkerArray()
        for i, a in enumerate(self.site.anchors):
            mk = Marker(type=Marker.SPHERE, action=Marker.ADD, ns='anchors', id=i)
            mk.header.frame_id, mk.header.stamp = self.p['map_frame'], stamp
            mk.pose.position.x, mk.pose.position.y, mk.pose.position.z = (float(v) for v in a.position)
            mk.pose.orientation.w = 1.0
            mk.scale.x = mk.scale.y = mk.scale.z = 0.3
            mk.color.r, mk.color.g, mk.color.b, mk.color.a = 0.6, 0.2, 0.8, 1.0
            ma.markers.append(mk)
        r = self._last
        if r is not None:
            w, v = np.linalg.eigh(0.5 * (r.cov[:2, :2] + r.cov[:2, :2].T))
            mk = Marker(type=Marker.CYLINDER, action=Marker.ADD, ns='uncertainty', id=0)
            mk.header.frame_id, mk.header.stamp = self.p['map_frame'], stamp
            mk.pose.position.x, mk.pose.position.y = float(r.pose[0]), float(r.pose[1])
            q = yaw_to_quat(math.atan2(v[1, 1], v[0, 1]))
            mk.pose.orientation.z, mk.pose.orientation.w = float(q[2]), float(q[3])
            mk.scale.x = float(2 * 2 * math.sqrt(max(w[1], 1e-9)))  # 2-sigma ellipse diameters
            mk.scale.y = float(2 * 2 * math.sqrt(max(w[0], 1e-9)))
            mk.scale.z = 0.02
            mk.color.r, mk.color.g, mk.color.b, mk.color.a = 0.1, 0.5, 1.0, 0.4
            ma.markers.append(mk)
        self.marker_pub.publish(ma)


def _listened(pub: Any) -> bool:
    """Whether anyone subscribes to a visualisation topic: a path of 400 poses took 4-7 ms to publish and the
    markers a few more, on the executor thread that also publishes the pose (nobody listening: no cost)."""
    return pub.get_subscription_count() > 0


def main(args: list[str] | None = None) -> int:
    # The executor thread (sensor callbacks, the tick that publishes) and the inference thread share the GIL; a
    # thread that wants it waits up to the switch interval for the other to let go. 1 ms instead of Python's 5 ms
    # (bench/node_latency.py at 20 Hz, 4 runs: latency p50 8 instead of 9 ms, the model's time per update 37
    # instead of 42-46 ms).
    sys.setswitchinterval(GIL_SWITCH_S)
    rclpy.init(args=sys.argv if args is None else args)
    node = LocalizerNode()
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    if node.get_parameter('autostart').value:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
    try:
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_worker()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
