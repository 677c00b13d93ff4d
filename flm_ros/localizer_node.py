"""flm_localizer: the FLM-ROS localization node, a Nav2 drop-in for AMCL.

A lifecycle node with AMCL's ROS interface (names relative, so a namespace moves them all):

* configure: parameters (validated), the site (site file; without a map in it, the map from ``map_topic``), the
  pose source (the TorchScript model); publishers; the ``initialpose`` subscription and the services
  ``set_initial_pose`` (nav2_msgs/SetInitialPose), ``reinitialize_global_localization`` and
  ``request_nomotion_update`` (std_srvs/Empty), as AMCL creates them at configure;
* activate: the initial pose (``set_initial_pose`` + ``initial_pose.*``; else the last pose before a deactivation
  unless ``always_reset_initial_pose``; else the saved pose with ``initialize_at_saved_pose``; else global
  localization), sensor subscriptions, the update timer, the inference thread and the bond;
* deactivate / cleanup: release them again.

Outputs (nothing before the first pose): ``amcl_pose`` (``PoseWithCovarianceStamped``, reliable, transient local,
depth 1), ``map->odom`` on ``tf`` (post-dated by ``transform_tolerance``, re-sent when no new estimate arrives,
never going back in time), ``particle_cloud`` (the hypotheses with weights, only while subscribed),
``flm/odometry`` (pose and the filter's twist, each with its covariance), ``/diagnostics``, a ``nav_msgs/Path`` and
a ``MarkerArray`` (anchors, uncertainty ellipse). The last tracked pose is saved as the ``saved_pose.*``
parameters at ``save_pose_rate`` (and to ``saved_pose_filepath``). A later map on ``map_topic`` replaces the
map (unless ``first_map_only``).

Parameter changes follow Nav2's validate-then-apply pattern (:mod:`flm_ros.params`): a value that fails its range,
its allowed values or the library's checks is refused with the reason; a change that needs a re-initialisation
gets one while active (a new pipeline from the last pose); one that cannot change in this state is refused with
what to do. AMCL's parameter names are accepted too (:data:`flm_ros.params.AMCL_ALIASES`).

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

import dataclasses
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
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_srvs.srv import Empty
from visualization_msgs.msg import Marker, MarkerArray

from flm_core import config as C
from flm_core.geometry import quat_to_yaw, wrap_angle_float, yaw_to_quat
from flm_core.pipeline import Pipeline, State, StepResult, max_position_std
from flm_core.rig import frames_in
from flm_core.site import OccupancyMap, Site, SiteError, load_site
from flm_ros import amcl_interface as amcl
from flm_ros import conversions as conv
from flm_ros import heap
from flm_ros import params as P
from flm_ros.bond import start_bond
from flm_ros.diagnostics import diagnostics_for
from flm_ros.sensor_input import SensorInput
from flm_ros.spin import spin
from flm_ros.tf import Buffer, TransformBroadcaster, TransformListener, make_transform, transform_to_arrays

TABLE = P.COMMON + P.LOCALIZER
PARAMS = {p.name: p for p in TABLE}
STALE_ESTIMATE_S = 1.0  # s without a new estimate before the localization status warns
GIL_SWITCH_S = 0.001    # s, the interpreter's thread switch interval in the node process (see main)
NOMOTION_WAIT_S = 2.0   # s request_nomotion_update waits for sensor data the pose source has not seen yet
RVIZ_INITIAL_COV = np.diag([0.25, 0.25, 0.07])  # an initial pose whose covariance is not positive definite
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def pose_cov_6x6(cov3: np.ndarray) -> list[float]:
    """(3, 3) x, y, yaw covariance -> row-major 6x6 (x y z roll pitch yaw), z/roll/pitch large-but-finite. The
    same layout serves a planar twist (vx vy wz -> vx vy vz wx wy wz)."""
    c = np.zeros((6, 6))
    idx = [0, 1, 5]
    c[np.ix_(idx, idx)] = cov3
    c[2, 2] = c[3, 3] = c[4, 4] = 1e-6  # planar: z, roll, pitch are fixed, as AMCL reports them
    return c.reshape(-1).tolist()


def _inside(m: OccupancyMap | None, xy: np.ndarray) -> bool:
    """Whether map-frame point ``xy`` (2,) lies on map ``m`` (True without a map)."""
    if m is None:
        return True
    c, r = m.world_to_cell(xy)
    return 0 <= c < m.grid.shape[1] and 0 <= r < m.grid.shape[0]


class LocalizerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__('flm_localizer', **kwargs)
        P.declare(self, TABLE, P.AMCL_ALIASES)
        self._amcl_robot_model()
        self.p: dict[str, Any] = P.values(self, TABLE)
        self.site: Site | None = None
        self.source: Any = None
        self.pipeline: Pipeline | None = None
        self.inputs: SensorInput | None = None
        self.pose_pub = self.odom_pub = self.path_pub = self.marker_pub = self.diag_pub = self.cloud_pub = None
        self._cloud_kind = 'pose_array'
        self._entities: list[Any] = []             # created at configure: initialpose, services, map
        self._timer: Any = None
        self._configured = self._active = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._diag_worker: threading.Thread | None = None
        self._bond: Any = None                     # the bond with nav2_lifecycle_manager while active
        self._last: StepResult | None = None
        self._last_tf_ns = 0
        self._latencies: deque[float] = deque(maxlen=200)
        self._initialpose_rejected = 0
        self._pending_pose: tuple[np.ndarray, np.ndarray, str] | None = None  # waiting for activation or data
        self._pending_global = False               # reinitialize_global_localization while inactive
        self._last_known: tuple[np.ndarray, np.ndarray] | None = None  # the tracked pose at the last deactivation
        self._file_site: Site | None = None        # the site file's site (its map may come from map_topic)
        self._source_site: Site | None = None      # the site the pose source was prepared for
        self._new_site: Site | None = None         # a map received while active, for the inference thread
        self._maps = {'received': 0, 'used': 0, 'ignored': 0, 'rejected': 0}
        self._nomotion = {'requested': 0, 'served': 0}
        self._nomotion_until: float | None = None  # monotonic s: a no-motion update is wanted until then
        self._model_updates = 0                    # updates in which the pose source ran
        self._saved_stamp = -math.inf              # stamp of the last saved pose
        self._last_stats: dict[str, dict] = {}
        self._path = Path()
        self._path_sent = -math.inf       # monotonic s of the last path message
        self._events_logged = 0           # pipeline events already logged
        self.add_pre_set_parameters_callback(self._mirror_parameters)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.p = P.values(self, TABLE)
        reason = P.check(self.p, TABLE)
        if reason is not None:
            self.get_logger().error(f'configure failed: {reason}')
            return TransitionCallbackReturn.FAILURE
        self._log_unused_parameters()
        try:
            self._cloud_kind, cloud_type = amcl.cloud_type(self.p['particle_cloud_type'])
            self._file_site = load_site(self.p['site_file']) if self.p['site_file'] else None
            self.source = C.load_pose_source(self._config(), self.get_logger().info)
        except (SiteError, OSError, ValueError, RuntimeError, ImportError) as e:
            self.get_logger().error(f'configure failed: {e}')
            return TransitionCallbackReturn.FAILURE
        self.site, self._source_site = self._file_site, None
        if self.site is None or self.site.map is None:
            topic = self.resolve_topic_name(self.p['map_topic'])
            self.get_logger().info(f'the map comes from {topic}' + ('' if self.site is None else
                                                                     f' (site {self.site.name!r} has none)'))
            self._entities.append(self.create_subscription(OccupancyGrid, self.p['map_topic'], self._on_map, LATCHED))
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, self.p['pose_topic'], LATCHED)
        self.odom_pub = self.create_publisher(Odometry, self.p['odometry_topic'], 10)
        self.path_pub = self.create_publisher(Path, self.p['path_topic'], 1)
        self.marker_pub = self.create_publisher(MarkerArray, self.p['markers_topic'], 1)
        self.cloud_pub = self.create_publisher(cloud_type, self.p['particle_cloud_topic'], qos_profile_sensor_data)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.tf = TransformBroadcaster(self)
        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self.rig = C.make_rig(self._config(), self._lookup)
        # AMCL's inputs exist from configure on; an initial pose or a request while inactive applies at activation
        self._entities += [
            self.create_subscription(PoseWithCovarianceStamped, 'initialpose', self._on_initialpose, 10),
            self.create_service(Empty, 'reinitialize_global_localization', self._on_global),
            self.create_service(Empty, 'request_nomotion_update', self._on_nomotion),
        ]
        if amcl.NAV2_MSGS:
            self._entities.append(self.create_service(amcl.SetInitialPose, 'set_initial_pose',
                                                      self._on_set_initial_pose))
        else:
            self.get_logger().warn('nav2_msgs is not installed: no set_initial_pose service (scripts/setup.sh '
                                   'generates it; use the initialpose topic meanwhile)')
        self._configured = True
        self.get_logger().info('configured' + (f' for site {self.site.name!r}' if self.site else ''))
        return TransitionCallbackReturn.SUCCESS

    def _config(self) -> C.Config:
        """The core's typed configuration from the current parameters (checked when they were set)."""
        return C.load_config(self.p)

    def _amcl_robot_model(self) -> None:
        """AMCL's ``robot_model_type`` in the node's parameters (an AMCL block reused) sets ``robot_model`` (AMCL's
        name wins, as for the aliases; :data:`flm_ros.params.AMCL_ROBOT_MODELS`); a motion model not known here is
        logged."""
        given = getattr(self, '_parameter_overrides', {})
        if 'robot_model_type' not in given:
            return
        value = given['robot_model_type'].value
        model = P.amcl_robot_model(value)
        if model is None:
            self.get_logger().warn(f'robot_model_type {value!r} is not a motion model known here: robot_model stays '
                                   f'{self.get_parameter("robot_model").value!r} (set robot_model: differential | '
                                   'omnidirectional)')
            return
        self.set_parameters([Parameter('robot_model', value=model)])
        self.get_logger().info(f'robot_model_type {value!r}: robot_model {model!r}')

    def _log_unused_parameters(self) -> None:
        """Log the parameters given to the node (file, command line) that it does not declare: AMCL's particle
        filter settings, typos. (rclpy drops them without a word; here nothing is dropped silently.)"""
        given = set(getattr(self, '_parameter_overrides', {}))
        unused = sorted(n for n in given if not self.has_parameter(n) and n != 'robot_model_type')
        amcl_only = [n for n in unused if n in P.AMCL_WITHOUT_MEANING]
        other = [n for n in unused if n not in P.AMCL_WITHOUT_MEANING]
        if amcl_only:
            self.get_logger().info(f'AMCL parameters without meaning here, ignored: {", ".join(amcl_only)} '
                                   '(the model needs no particle filter, laser or motion model tuning)')
        if other:
            self.get_logger().warn(f'unknown parameters ignored: {", ".join(other)} (see `ros2 param list`)')

    def _prepare_source(self, site: Site) -> None:
        """Rebuild what the pose source derived from the site's map: the model's map index; a classical source
        is made anew (its caches are keyed by the site object's id, which a new site may reuse)."""
        if site is self._source_site:
            return
        if hasattr(self.source, 'map_index'):
            self.source.map_index(site)
        elif self._source_site is not None:
            self.source = C.load_pose_source(self._config(), self.get_logger().info)
        self._source_site = site

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.site is None:
            self.get_logger().error(f'activate refused: no site (set site_file or publish the map on '
                                    f'{self.resolve_topic_name(self.p["map_topic"])})')
            return TransitionCallbackReturn.FAILURE
        self._prepare_source(self.site)
        self._new_site = None
        self.rig = C.make_rig(self._config(), self._lookup)   # the UWB tag frames and height are read at activation
        self.pipeline = C.make_pipeline(self._config(), self.site, self.source, rig=self.rig)
        self._events_logged = 0
        self.inputs = SensorInput(self, self.p, self.site, front=self.pipeline.front, sink=self.pipeline.offer)
        self._timer = self.create_timer(1.0 / float(self.p['update_rate']), self._on_tick)
        start = self._start_pose()
        if start is not None:
            self._request_initial_pose(*start)
        elif self._pending_global:
            self.pipeline.request_global()
        self._pending_global = False
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name='flm-inference', daemon=True)
        self._worker.start()
        self._diag_worker = threading.Thread(target=self._run_diagnostics, name='flm-diagnostics', daemon=True)
        self._diag_worker.start()
        self._bond = start_bond(self, float(self.p['bond_heartbeat_period']))
        if self._bond is None and self.p['bond_heartbeat_period'] > 0:
            self.get_logger().info('no bond to a lifecycle manager (neither bondpy nor the bond messages are '
                                   'installed): run nav2_lifecycle_manager with bond_timeout: 0.0')
        self._active = True
        self.get_logger().info(f'active: sensors {", ".join(self.inputs.enabled)}')
        return super().on_activate(state)

    def _start_pose(self) -> tuple[np.ndarray, np.ndarray, float | None, str] | None:
        """The initial pose at activation, as AMCL chooses it: the initial_pose parameters (set_initial_pose), an
        initial pose received while inactive, the pose tracked at the last deactivation (unless
        always_reset_initial_pose), the saved pose (initialize_at_saved_pose); None: localize globally (or wait)."""
        p = self.p
        cov = np.diag([p['initial_pose.std_xy'] ** 2] * 2 + [p['initial_pose.std_yaw'] ** 2])
        pending, self._pending_pose = self._pending_pose, None
        if p['set_initial_pose']:
            return np.array([p['initial_pose.x'], p['initial_pose.y'], p['initial_pose.yaw']]), cov, None, \
                'the initial_pose parameters'
        if pending is not None:
            return pending[0], pending[1], None, pending[2]
        if self._last_known is not None and not p['always_reset_initial_pose']:
            return self._last_known[0], self._last_known[1], None, 'the pose before the deactivation'
        if p['initialize_at_saved_pose']:
            saved = self._saved_pose()
            if saved is not None:
                return saved[0], cov, None, saved[1]
        return None

    def _saved_pose(self) -> tuple[np.ndarray, str] | None:
        """The saved pose: the saved_pose.* parameters when set (saved_pose.stamp > 0), else saved_pose_filepath."""
        p = self.p
        if p['saved_pose.stamp'] > 0:
            return np.array([p['saved_pose.x'], p['saved_pose.y'], p['saved_pose.yaw']]), 'the saved_pose parameters'
        if p['saved_pose_filepath']:
            try:
                pose, _ = amcl.load_pose_file(p['saved_pose_filepath'], p['map_frame'])
                return pose, f'the saved pose in {p["saved_pose_filepath"]}'
            except ValueError as e:
                self.get_logger().warn(f'initialize_at_saved_pose: no usable saved pose ({e})')
                return None
        self.get_logger().warn('initialize_at_saved_pose: no pose saved yet (saved_pose.stamp is 0 and no '
                               'saved_pose_filepath)')
        return None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        r, pl = self._last, self.pipeline
        if r is not None and pl is not None and pl.state == State.TRACKING and r.hypotheses == 1:
            self._last_known = (r.pose.copy(), r.cov.copy())
        self._break_bond()
        self._stop_worker()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self.inputs is not None:
            self.inputs.destroy()
            self.inputs = None
        self.pipeline, self._last = None, None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._break_bond()
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for name in ('pose_pub', 'odom_pub', 'path_pub', 'marker_pub', 'cloud_pub', 'diag_pub'):
            pub = getattr(self, name, None)
            if pub is not None:
                self.destroy_publisher(pub)
                setattr(self, name, None)
        for e in self._entities:
            self._destroy(e)
        self._entities = []
        self.source = self.pipeline = self._last = self.site = self._file_site = self._source_site = None
        self._configured = False
        self._pending_pose, self._pending_global, self._last_known = None, False, None
        self._path = Path()
        self._path_sent = -math.inf
        self._events_logged = 0
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
        """A map on map_topic: the first one, or a later one that replaces it (unless first_map_only). While
        active the inference thread swaps it in between two updates (the pose source's map index is rebuilt)."""
        self._maps['received'] += 1
        topic = self.resolve_topic_name(self.p['map_topic'])
        if self.p['first_map_only'] and self._maps['used'] > 0:
            self._maps['ignored'] += 1
            self.get_logger().info(f'map on {topic} ignored: first_map_only is true')
            return
        try:
            grid = conv.occupancy_grid_from_msg(msg)
        except ValueError as e:
            self._maps['rejected'] += 1
            self.get_logger().error(f'map on {topic} rejected: {e}')
            return
        frame = msg.header.frame_id.lstrip('/') or self.p['map_frame']
        if frame != self.p['map_frame']:
            self.get_logger().warn(f'map on {topic} is in frame {frame!r}, not map_frame {self.p["map_frame"]!r}: '
                                   f'it is used as {self.p["map_frame"]!r} (as AMCL does)')
        base = self._file_site
        site = dataclasses.replace(base, map=grid) if base is not None else \
            Site(name='map_topic', frame_id=self.p['map_frame'], map=grid)
        self._maps['used'] += 1
        self.site = site
        if self.pipeline is not None:
            self._new_site = site
            self._wake.set()
        info = msg.info
        self.get_logger().info(f'map {"received" if self._maps["used"] == 1 else "replaced"} from {topic} '
                               f'({info.width}x{info.height} cells of {grid.resolution:g} m)')

    def _use_site(self, pl: Pipeline, site: Site) -> None:
        """Swap a new site (map) into the running pipeline (inference thread, between updates)."""
        self._prepare_source(site)
        pose = pl.set_site(site, self.source)
        if pose is not None and not _inside(site.map, pose[:2]):
            pl.request_global()
            self.get_logger().warn(f'the pose ({pose[0]:.2f}, {pose[1]:.2f}) is off the new map: global '
                                   'relocalization')

    def _on_initialpose(self, msg: PoseWithCovarianceStamped) -> None:
        self._initial_pose_from(msg, 'initialpose')

    def _on_set_initial_pose(self, request: Any, response: Any) -> Any:
        """nav2_msgs/srv/SetInitialPose (AMCL's set_initial_pose service): as a message on initialpose."""
        self._initial_pose_from(request.pose, 'the set_initial_pose service')
        return response

    def _initial_pose_from(self, msg: PoseWithCovarianceStamped, via: str) -> bool:
        frame = msg.header.frame_id.lstrip('/')
        if frame != self.p['map_frame']:
            self._initialpose_rejected += 1
            self.get_logger().warn(f'initial pose from {via} ignored: frame {frame!r} is not '
                                   f'{self.p["map_frame"]!r} (like AMCL, only poses in the global frame are accepted)')
            return False
        pose = conv.pose_from_msg(msg)
        xy = pose.position[:2]
        cov = np.asarray(pose.covariance)[np.ix_([0, 1, 5], [0, 1, 5])]
        if not (np.all(np.isfinite(xy)) and np.all(np.isfinite(cov))) or \
                not _inside(self.site.map if self.site else None, xy):
            self._initialpose_rejected += 1
            self.get_logger().warn(f'initial pose from {via} ignored: {xy.tolist()} is not a finite pose inside '
                                   'the map')
            return False
        if not np.all(np.linalg.eigvalsh(0.5 * (cov + cov.T)) > 0):
            cov = RVIZ_INITIAL_COV  # RViz sends a fixed covariance; a zero one means "unknown"
        self._request_initial_pose(np.array([xy[0], xy[1], float(quat_to_yaw(pose.orientation))]), cov,
                                   conv.stamp_to_sec(msg.header.stamp) or None, via)
        return True

    def _request_initial_pose(self, pose: np.ndarray, cov: np.ndarray, stamp: float | None, why: str) -> None:
        """Set an initial pose now; inactive: at activation (as AMCL). (Before any sensor data the pipeline applies it
        with the first data, at its stamp.)"""
        pl = self.pipeline
        if pl is None:
            self._pending_pose = (np.asarray(pose, float), np.asarray(cov, float), why)
            self.get_logger().info(f'initial pose from {why} kept for the activation')
            return
        self._pending_pose = None
        pl.set_initial_pose(pose, cov, stamp)
        self.get_logger().info(f'initial pose set from {why}: x={pose[0]:.2f} y={pose[1]:.2f} yaw={pose[2]:.2f}')
        self._wake.set()

    def _on_global(self, request: Empty.Request, response: Empty.Response) -> Empty.Response:
        if self.pipeline is None:
            self._pending_global = True
            self.get_logger().info('global relocalization requested while inactive: at activation')
            return response
        self.pipeline.request_global()
        self.get_logger().info('global relocalization requested')
        self._wake.set()
        return response

    def _on_nomotion(self, request: Empty.Request, response: Empty.Response) -> Empty.Response:
        """AMCL's request_nomotion_update: run the pose source now on the newest window (one it has not fused
        yet: within NOMOTION_WAIT_S the next sensor data), whatever update_rate; the next tick publishes it."""
        if self.pipeline is None:
            self.get_logger().warn('request_nomotion_update ignored: the node is not active')
            return response
        self._nomotion['requested'] += 1
        self._nomotion_until = time.monotonic() + NOMOTION_WAIT_S
        self._wake.set()
        return response

    # ------------------------------------------------------------------ parameters (validate, then apply)
    def _mirror_parameters(self, params: list[Parameter]) -> list[Parameter]:
        """Pre-set: an AMCL name and ours change together."""
        return P.mirrored(params, P.AMCL_ALIASES)

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """On-set: refuse what this lifecycle state cannot take or what fails the checks, with the reason (ranges
        and types were checked by rclpy against the descriptors already)."""
        new = dict(self.p)
        for c in params:
            q = PARAMS.get(P.AMCL_ALIASES.get(c.name, c.name))
            if q is None or c.value == self.p.get(q.name):
                continue
            reason = P.refusal(q, self._configured, self._active)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            new[q.name] = c.value
        reason = P.check(new, TABLE)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        """Post-set: take the new values; while active, re-initialise what depends on them."""
        changed = []
        for c in params:
            q = PARAMS.get(P.AMCL_ALIASES.get(c.name, c.name))
            if q is not None and self.p.get(q.name) != c.value:
                self.p[q.name] = c.value
                changed.append(q)
        if not self._active or not changed:
            return
        kinds = {q.apply for q in changed}
        if P.MODEL in kinds:
            model = getattr(self.source, 'source', self.source)    # the network inside a Refined source
            for name in ('iterations', 'converge', 'global_candidates', 'global_refine'):
                if hasattr(model, name):
                    setattr(model, name, type(getattr(model, name))(self.p[f'model.{name}']))
        if P.RATE in kinds and self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / float(self.p['update_rate']), self._on_tick)
            self.get_logger().info(f'update_rate: {self.p["update_rate"]:g} Hz')
        if P.REINIT in kinds:
            self._reinitialise([q.name for q in changed if q.apply == P.REINIT])

    def _reinitialise(self, names: list[str]) -> None:
        """A new pipeline from the changed parameters, with the buffered sensor data (a new sensor front end when
        buffer.* changed) and, when one was tracked, the last pose and covariance."""
        old = self.pipeline
        assert old is not None and self.inputs is not None
        res = old.estimate()
        keep = res is not None and old.state == State.TRACKING and res.hypotheses == 1
        if any(n.startswith('buffer.') for n in names):
            new = C.make_pipeline(self._config(), self.site, self.source, rig=self.rig)
            latest = old.front.buffer.latest
            with old.front.lock:
                items = old.front.buffer.window(latest, math.inf) if latest is not None else {}
            for _, stream, m in sorted(((s, name, m) for name, rows in items.items() for s, m in rows),
                                       key=lambda e: e[0]):
                new.offer(stream, m, None)
        else:
            new = C.make_pipeline(self._config(), self.site, self.source, front=old.front)
        new.rig = old.rig
        if keep:
            new.set_initial_pose(res.pose, res.cov, res.stamp)
        self.pipeline = new
        self._events_logged = 0
        self.inputs.front, self.inputs.sink = new.front, new.offer
        self._wake.set()
        self.get_logger().info(f'{", ".join(names)} changed: localization re-initialised ' + (
            'at the last pose' if keep else '(no tracked pose to carry over: ' + (
                'global localization' if self.p['global_on_start'] else 'waiting for an initial pose') + ')'))

    # ------------------------------------------------------------------ update tick and inference thread
    def _on_tick(self) -> None:
        """The update timer (executor thread): publish the estimate at the newest stamp, then wake the model."""
        pl = self.pipeline
        if pl is None:
            return
        res = pl.estimate()
        try:
            if res is None or not self._publish(res):
                self._publish_tf()    # no new estimate: re-send the last one
            elif res.state == State.TRACKING and res.hypotheses == 1:
                self._save_pose(res)
        except RCLError:
            if self.context.ok():
                raise
            return
        self._wake.set()

    def _save_pose(self, r: StepResult) -> None:
        """As AMCL: at most save_pose_rate times per second of data time, the tracked pose as the saved_pose.*
        parameters (and to saved_pose_filepath)."""
        rate = float(self.p['save_pose_rate'])
        if r.stamp < self._saved_stamp:
            self._saved_stamp = -math.inf           # time went back (bag loop)
        if rate <= 0 or r.stamp - self._saved_stamp < 1.0 / rate:
            return
        self._saved_stamp = r.stamp
        x, y, yaw = float(r.pose[0]), float(r.pose[1]), wrap_angle_float(float(r.pose[2]))
        self.set_parameters([Parameter('saved_pose.x', value=x), Parameter('saved_pose.y', value=y),
                             Parameter('saved_pose.yaw', value=yaw), Parameter('saved_pose.stamp', value=r.stamp)])
        path = self.p['saved_pose_filepath']
        if path:
            try:
                amcl.save_pose_file(path, r.stamp, self.p['map_frame'], np.array([x, y, yaw]))
            except OSError as e:
                self.get_logger().error(f'saving the pose to {path} failed: {e}', throttle_duration_sec=30.0)

    def _run(self) -> None:
        """The inference thread: on each wake, the model on the window that ends at the newest stamp."""
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            pl = self.pipeline
            if self._stop.is_set() or pl is None:
                break
            forced = self._nomotion_until is not None
            try:
                site, self._new_site = self._new_site, None
                if site is not None:
                    self._use_site(pl, site)
                with pl.front.lock:
                    frames = frames_in(pl.front.buffer.newest())
                pl.rig = self.rig.rig(frames, self.inputs.camera_info if self.inputs else None)
                u = pl.update()
            except Exception as e:  # noqa: BLE001 (a model failure must not kill the node)
                self.get_logger().error(f'update failed: {type(e).__name__}: {e}', throttle_duration_sec=5.0)
                u = None
            ran = u is not None and u.model_latency is not None
            if ran:
                self._model_updates += 1
                self._latencies.append(u.model_latency)
            if forced:
                self._nomotion_step(ran)
            self._log_events()

    def _nomotion_step(self, ran: bool) -> None:
        """After an update wanted by request_nomotion_update: served, or try again on newer data until the wait
        ends."""
        until = self._nomotion_until
        if until is None:
            return
        if ran:
            self._nomotion_until = None
            self._nomotion['served'] += 1
        elif time.monotonic() >= until:
            self._nomotion_until = None
            self.get_logger().warn(f'request_nomotion_update: no sensor data the pose source had not seen within '
                                   f'{NOMOTION_WAIT_S:g} s (or nothing to localize yet): no update')
        elif not self._stop.wait(0.02):
            self._wake.set()

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
        """Publish a new estimate: pose and map->odom first (what navigation waits for), then odometry, the
        hypotheses and the path (at most every path_period s: a long path costs milliseconds to serialise). False
        if not new."""
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
        pl = self.pipeline
        if self.odom_pub is not None and pl is not None:
            od = Odometry()
            od.header = msg.header
            od.child_frame_id = self.p['base_frame']
            od.pose = msg.pose
            tw = amcl.twist(pl, r.stamp)
            if tw is not None:
                v, cov = tw
                od.twist.twist.linear.x, od.twist.twist.linear.y, od.twist.twist.angular.z = (float(a) for a in v)
                od.twist.covariance = pose_cov_6x6(cov)
            else:
                od.twist.covariance = (np.eye(6) * amcl.UNKNOWN_VAR).reshape(-1).tolist()
            self.odom_pub.publish(od)
        if self.cloud_pub is not None and pl is not None and _listened(self.cloud_pub):
            hyp = pl.hypotheses(r.stamp)
            if hyp is not None:
                self.cloud_pub.publish(amcl.cloud_message(self._cloud_kind, msg.header, *hyp))
        ps = PoseStamped(header=msg.header, pose=msg.pose.pose)
        self._path.header = msg.header
        self._path.poses.append(ps)
        if len(self._path.poses) > int(self.p['path_length']):
            del self._path.poses[:len(self._path.poses) - int(self.p['path_length'])]
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
            'hypotheses': str(r.hypotheses) if r is not None else '0',
            'model_updates': str(self._model_updates),
            'nomotion_requested': str(self._nomotion['requested']),
            'nomotion_served': str(self._nomotion['served']),
            **{f'maps_{k}': str(v) for k, v in self._maps.items()},
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
    try:
        node = LocalizerNode()
    except P.ParamError as e:
        print(f'flm_localizer: error: {e}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    if node.get_parameter('autostart').value:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
    return spin(node, before_destroy=node._stop_worker)


if __name__ == '__main__':
    sys.exit(main())
