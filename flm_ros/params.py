"""Parameters of the FLM-ROS nodes: one table, the single source of defaults, types, ranges and descriptions.

``config/flm.yaml`` sets values (under ``/**: ros__parameters:`` so every node reads the same file); nodes
declare from this table with descriptors (description, FloatingPointRange/IntegerRange, allowed values), so
``ros2 param describe`` explains each one and rclpy refuses a value out of range.

Changes while the node runs follow Nav2's validate-then-apply pattern: :func:`check` validates a whole set of
values (ranges, allowed values, topic names, and the library's own configuration checks) and :data:`Param.apply`
says what a change needs (:data:`LIVE` ... :data:`CONFIGURE`), so that the node either applies it (re-initialising
what depends on it) or refuses it with a reason; nothing is accepted and then ignored.

Topic parameters are ROS names: relative ones (``scan``, ``map``) resolve in the node's namespace, so a
namespace moves every input and output, as in Nav2.

Nav2 users keep their AMCL parameter file: :data:`AMCL_ALIASES` maps AMCL's names to ours (both are declared on
the localizer and kept equal), and the AMCL parameters that have no meaning here are listed in
:data:`AMCL_WITHOUT_MEANING` (logged as ignored).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from flm_core.estimation.eskf import EskfConfig

# What a change of the parameter needs (:attr:`Param.apply`).
LIVE = 'live'              # takes effect at once
REINIT = 'reinit'          # while active: the localization pipeline is re-initialised (the pose carried over)
RATE = 'rate'              # while active: the update timer is re-created
MODEL = 'model'            # while active: set on the loaded model at once
ACTIVATE = 'activate'      # read at activation: refused while active (deactivate, set it, activate)
CONFIGURE = 'configure'    # read at configure: refused once configured (deactivate, cleanup, set it, configure)
APPLY = (LIVE, REINIT, RATE, MODEL, ACTIVATE, CONFIGURE)

_BIG = 1e6  # m, bound of map coordinates in the ranges below


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type), description, what a change needs
    (``apply``), the inclusive ``range`` (lo, hi) of a number, and the allowed ``choices`` of a string."""

    name: str
    default: Any
    description: str
    apply: str = LIVE
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        assert self.apply in APPLY, self.apply
        assert self.range is None or isinstance(self.default, (int, float)) and not isinstance(self.default, bool)

    @property
    def read_only(self) -> bool:
        """Fixed while the node is active (needs a deactivation, or a cleanup, to change)."""
        return self.apply in (ACTIVATE, CONFIGURE)

    @property
    def is_topic(self) -> bool:
        return self.name.endswith('topic')

    @property
    def is_topic_list(self) -> bool:
        """A string array of topic names (``sensors.<kind>.extra_topics``)."""
        return self.name.endswith('topics')

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=False)
        if self.range is not None and isinstance(self.default, int):
            d.integer_range = [IntegerRange(from_value=int(self.range[0]), to_value=int(self.range[1]), step=0)]
        elif self.range is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.range[0]),
                                                         to_value=float(self.range[1]), step=0.0)]
        notes = {LIVE: 'applied at once', REINIT: 'while active: re-initialises the localization (pose kept)',
                 RATE: 'while active: the update timer is re-created', MODEL: 'while active: set on the model',
                 ACTIVATE: 'read at activation (refused while active)',
                 CONFIGURE: 'read at configure (refused once configured)'}
        d.additional_constraints = (f'one of: {", ".join(self.choices)}; ' if self.choices else '') + notes[self.apply]
        return d


SENSORS = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')
SENSOR_TOPICS = (('scan', 'scan'), ('points', 'points'), ('depth', 'camera/depth/image_raw'),
                 ('uwb', 'uwb/ranges'), ('imu', 'imu/data'), ('odom', 'odom'))
#: The kinds that take further topics (``sensors.<kind>.extra_topics``): several lidars (front/rear) feed one scan
#: or points stream, each message in its own frame; several UWB tags, each on its own topic and in its own TF frame
#: (``sensors.uwb.extra_tag_frames``). Not IMU and odometry: the filter integrates one IMU and one odometry pose
#: track (two odometry sources' poses would be taken as one robot jumping between them; fuse them upstream, e.g.
#: with robot_localization), nor the depth camera (one CameraInfo).
MULTI_TOPIC = ('scan', 'points', 'uwb')

COMMON: tuple[Param, ...] = (
    Param('map_frame', 'map', 'Global frame (REP-105). AMCL: global_frame_id.', CONFIGURE),
    Param('odom_frame', 'odom', 'Odometry frame (REP-105). AMCL: odom_frame_id.', CONFIGURE),
    Param('base_frame', 'base_link', 'Robot base frame (REP-105). AMCL: base_frame_id.', CONFIGURE),
    Param('site_file', '', 'Site file (YAML: map_server map + UWB anchors [+ point map]). Empty: none (the map then '
          'comes from map_topic).', CONFIGURE),
    Param('buffer.window', 2.0, 's of every sensor stream kept for the model.', REINIT, (0.05, 60.0)),
    Param('buffer.max_lateness', 0.5, 's a message may arrive behind the newest stamp before it is dropped.', REINIT,
          (0.0, 60.0)),
    Param('buffer.jump_back', 1.0, 's the clock may go back before the buffers reset (bag loop).', REINIT,
          (0.0, 3600.0)),
    Param('buffer.max_future', 1.0, 's a stamp may be ahead of the node clock before it is rejected.', REINIT,
          (0.0, 3600.0)),
    Param('buffer.max_per_stream', 4096, 'Hard bound on buffered messages per stream.', REINIT, (2, 1_000_000)),
    Param('diagnostics_period', 1.0, 's between /diagnostics messages.', LIVE, (0.05, 3600.0)),
    *(p for s, topic in SENSOR_TOPICS for p in (
        Param(f'sensors.{s}.enabled', True, f'Subscribe to the {s} stream (a missing sensor is normal).', ACTIVATE),
        Param(f'sensors.{s}.topic', topic, f'Topic of the {s} stream (relative: in the node\'s namespace).'
              + (' AMCL: scan_topic.' if s == 'scan' else ''), ACTIVATE),
        *((Param(f'sensors.{s}.extra_topics', [], f'Further topics of the {s} stream, beside sensors.{s}.topic '
                 '(string array; empty: none): ' + {
                     'scan': 'more 2D lidars, e.g. [rear/scan]; each scan carries its own frame_id, whose mount '
                             'comes from TF; the model uses the newest scan of each.',
                     'points': 'more 3D lidars; each cloud carries its own frame_id, whose mount comes from TF.',
                     'uwb': 'more UWB tags, one topic per tag; the tag frame of each is in '
                            'sensors.uwb.extra_tag_frames.'}[s], ACTIVATE),) if s in MULTI_TOPIC else ()),
    )),
    Param('sensors.uwb.tag_frame', 'uwb_tag', 'Frame of the UWB tag on the robot (its mount comes from TF): the tag '
          'of sensors.uwb.topic.', ACTIVATE),
    Param('sensors.uwb.extra_tag_frames', [], 'Frames of the tags of sensors.uwb.extra_topics, one per topic, in the '
          'same order (string array; each tag\'s mount comes from TF, looked up again at every update).', ACTIVATE),
    Param('sensors.uwb.tag_height', -1.0, 'm, height of the UWB tags above base_frame, overriding TF; -1 (default): '
          'from TF, looked up again at every update, so a hand-held or flying tag follows /tf.', ACTIVATE,
          (-1.0, 1000.0)),
    Param('sensors.odom.max_speed', 5.0, 'm/s: odometry twists and pose increments faster than this are rejected '
          '(counted as implausible_twist / implausible_increment).', REINIT, (0.01, 1000.0)),
    Param('sensors.odom.max_yaw_rate', 6.0, 'rad/s: the same bound for rotation.', REINIT, (0.01, 1000.0)),
    Param('sensors.depth.camera_info_topic', 'camera/depth/camera_info', 'CameraInfo of the depth camera.', ACTIVATE),
)

#: The filter's settings (:class:`flm_core.estimation.eskf.EskfConfig`), as ``filter.<field>``: unit and meaning,
#: and the range accepted. Defaults come from EskfConfig itself. (``process`` is ``filter.process`` below, with
#: 'auto'; ``auto_init`` is not exposed: the pipeline initialises its filters itself.)
ESKF_PARAMS: dict[str, tuple[str, tuple[float, float]]] = {
    'gyro_noise': ('rad/s/sqrt(Hz), gyro white noise density (IMU-driven filter).', (0.0, 10.0)),
    'accel_noise': ('m/s^2/sqrt(Hz), accelerometer white noise density (IMU-driven filter).', (0.0, 100.0)),
    'gyro_bias_rw': ('rad/s^2/sqrt(Hz), gyro bias random walk.', (0.0, 10.0)),
    'accel_bias_rw': ('m/s^3/sqrt(Hz), accelerometer bias random walk.', (0.0, 100.0)),
    'odom_vel_rel': ('Std of an odometry velocity measurement per m/s of speed (IMU-driven filter).', (0.0, 10.0)),
    'odom_vel_abs': ('m/s, constant part of that std (IMU-driven filter).', (0.0, 10.0)),
    'odom_trans_rel': ('m of position std after 1 m travelled (m/sqrt(m); odometry-driven filter).', (0.0, 10.0)),
    'odom_rot_rel': ('rad of heading std after 1 rad turned (rad/sqrt(rad); odometry-driven filter).', (0.0, 10.0)),
    'odom_rot_per_m': ('rad of heading std after 1 m travelled (rad/sqrt(m); odometry-driven filter).', (0.0, 10.0)),
    'odom_trans_floor': ('m/sqrt(s), floor of the odometry position noise over time.', (0.0, 10.0)),
    'odom_rot_floor': ('rad/sqrt(s), floor of the odometry heading noise over time.', (0.0, 10.0)),
    'gate_prob': ('Chi-square quantile of the Mahalanobis gate on model poses and other corrections (0 or 1: no '
                  'gate).', (0.0, 1.0)),
    'history': ('s of events kept for delayed measurements (a model pose older than this is refused).',
                (0.05, 60.0)),
    'init_vel_sigma': ('m/s, prior velocity std at an initial pose or relocalization.', (0.0, 100.0)),
    'init_gyro_bias_sigma': ('rad/s, prior gyro bias std.', (0.0, 10.0)),
    'init_accel_bias_sigma': ('m/s^2, prior accelerometer bias std.', (0.0, 100.0)),
    'max_step': ('s, longest single propagation step (longer gaps are split).', (0.001, 1.0)),
    'odom_max_hold': ('s the last odometry twist is extrapolated when odometry stops (odometry-driven filter).',
                      (0.0, 60.0)),
    'odom_blind_pos': ('m/sqrt(s), position random walk once odometry has stopped for odom_max_hold.',
                       (0.0, 100.0)),
    'odom_blind_yaw': ('rad/sqrt(s), heading random walk once odometry has stopped for odom_max_hold.',
                       (0.0, 100.0)),
    'cv_accel_noise': ("m/s^2/sqrt(Hz), the robot's own acceleration: process noise of the constant-velocity model "
                       '(neither IMU nor odometry).', (0.0, 100.0)),
    'cv_yaw_noise': ("rad/s/sqrt(Hz), the robot's own turn rate in that model.", (0.0, 100.0)),
}
_ESKF_DEFAULTS = EskfConfig()

POSE_SOURCES = ('flm', 'icp', 'icp2d', 'icp3d', 'uwb')

#: Parameters of the localizer node (in addition to COMMON).
LOCALIZER: tuple[Param, ...] = (
    Param('autostart', True, 'Configure and activate at start-up (false under nav2_lifecycle_manager).', CONFIGURE),
    Param('bond_heartbeat_period', 0.1, 's between heartbeats of the bond nav2_lifecycle_manager holds with the '
          'node while it is active, as Nav2\'s own nodes (bondpy, or the bond messages; 0: no bond).', ACTIVATE,
          (0.0, 10.0)),
    Param('model_path', '', 'Model file (NAME.pt or NAME.onnx); empty: the model shipped with the package.', CONFIGURE),
    Param('device', 'cpu', "Inference device: 'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available).", CONFIGURE),
    Param('fp16', False, 'Half-precision inference (CUDA only).', CONFIGURE),
    Param('inference_backend', 'auto', "Model back end: 'torch' (TorchScript file), 'onnx' (ONNX Runtime, NAME.onnx "
          "beside model_path) or 'auto' (torch where installed, else onnx).", CONFIGURE,
          choices=('auto', 'torch', 'onnx')),
    Param('inference_threads', 1, 'CPU threads for the model (intra-op); more only on an otherwise idle CPU.',
          CONFIGURE, (1, 256)),
    Param('model.iterations', 2, 'Most model passes per tracking update, each from the pose the previous one gave.',
          MODEL, (1, 16)),
    Param('model.converge', 1.0, 'Stop those passes early once the correction is within this many standard '
          "deviations of the model's own covariance (0: always run model.iterations).", MODEL, (0.0, 100.0)),
    Param('model.global_candidates', 128, 'Pre-ranked poses the model scores in a global localization (more: '
          'slower, finds the robot more often in repetitive buildings).', MODEL, (1, 4096)),
    Param('model.refine', False, "Solve the model's pose against the window's measurements (robust Gauss-Newton: "
          'scans against the map, ranges with learnt biases; flm_core.estimation.refine) and hand the filter that '
          "solve's covariance (more accurate and better calibrated on real data; not yet the default: it fails "
          "cases of the fault matrix); false: the network's pose and covariance as they are.", CONFIGURE),
    Param('pose_source', 'flm', "What produces poses: 'flm' (the model), or a classical baseline: 'icp', 'icp2d', "
          "'icp3d', 'uwb'.", CONFIGURE, choices=POSE_SOURCES),
    Param('update_rate', 10.0, 'Hz of the output (pose, odometry, map->odom: the filter at the newest sensor stamp) '
          'and, at most, of model updates (the model runs beside the output; a slow one skips ticks).', RATE,
          (0.1, 1000.0)),
    Param('transform_tolerance', 0.5, 's map->odom is post-dated (as AMCL), so lookups slightly ahead succeed.', LIVE,
          (0.0, 60.0)),
    Param('tf_broadcast', True, 'Publish map->odom on tf (as AMCL).', LIVE),
    Param('map_topic', 'map', 'OccupancyGrid topic the map comes from when the site file has none (as AMCL; '
          'reliable, transient local). A later map replaces it.', CONFIGURE),
    Param('first_map_only', False, 'Use only the first map received on map_topic (as AMCL); false: a later map '
          'replaces it.', LIVE),
    Param('pose_topic', 'amcl_pose', 'PoseWithCovarianceStamped output (reliable, transient local, depth 1).',
          CONFIGURE),
    Param('odometry_topic', 'flm/odometry', 'nav_msgs/Odometry output: pose of base_frame in map_frame, twist in '
          'base_frame from the filter, each with its covariance.', CONFIGURE),
    Param('path_topic', 'flm/path', 'nav_msgs/Path of the estimates (visualisation).', CONFIGURE),
    Param('markers_topic', 'flm/markers', 'MarkerArray: anchors and the uncertainty ellipse.', CONFIGURE),
    Param('particle_cloud_topic', 'particle_cloud', "The hypotheses (the filter's pose and the rival poses of an "
          'ambiguous global localization, with weights), sent only while subscribed (as AMCL).', CONFIGURE),
    Param('particle_cloud_type', 'auto', "Message of particle_cloud_topic: 'particle_cloud' (nav2_msgs/ParticleCloud, "
          "what Nav2's RViz plugin shows), 'pose_array' (geometry_msgs/PoseArray), 'auto' (the first where nav2_msgs "
          'is installed).', CONFIGURE, choices=('auto', 'particle_cloud', 'pose_array')),
    Param('path_length', 2000, 'Poses kept in the published path.', LIVE, (1, 1_000_000)),
    Param('path_period', 1.0, 's between path messages (a 2000-pose path takes ~7 ms to serialise).', LIVE,
          (0.0, 3600.0)),
    Param('set_initial_pose', False, 'Start from initial_pose.* at activation instead of global localization (as '
          'AMCL).', ACTIVATE),
    Param('initial_pose.x', 0.0, 'm, initial pose in map_frame when set_initial_pose is true.', ACTIVATE,
          (-_BIG, _BIG)),
    Param('initial_pose.y', 0.0, 'm', ACTIVATE, (-_BIG, _BIG)),
    Param('initial_pose.z', 0.0, 'm; accepted for AMCL parameter files, not used (the pose is planar).', ACTIVATE,
          (-_BIG, _BIG)),
    Param('initial_pose.yaw', 0.0, 'rad', ACTIVATE, (-2 * math.pi, 2 * math.pi)),
    Param('initial_pose.std_xy', 0.5, 'm, standard deviation of an initial position from parameters or a saved '
          'pose.', ACTIVATE, (0.001, 1000.0)),
    Param('initial_pose.std_yaw', 0.3, 'rad, standard deviation of that initial heading.', ACTIVATE, (0.001, 10.0)),
    Param('always_reset_initial_pose', False, 'As AMCL: at each activation the initial pose must come anew '
          '(set_initial_pose, /initialpose, set_initial_pose service, or global localization); false: an activation '
          'after a deactivation starts from the last pose, and initialize_at_saved_pose may use the saved one.',
          ACTIVATE),
    Param('save_pose_rate', 0.5, 'Hz at which the last tracked pose is saved as the parameters saved_pose.* (and to '
          'saved_pose_filepath when set), as AMCL; <= 0: never.', LIVE, (-1.0, 100.0)),
    Param('initialize_at_saved_pose', False, 'At activation without set_initial_pose, start from the saved pose '
          '(saved_pose.* when set, else saved_pose_filepath) instead of localizing globally.', ACTIVATE),
    Param('saved_pose_filepath', '', "File the saved pose is also written to and read from (AMCL's format: "
          "'x: ..' lines); empty: parameters only.", ACTIVATE),
    Param('saved_pose.x', 0.0, 'm, the last saved pose (written by the node at save_pose_rate).', LIVE,
          (-_BIG, _BIG)),
    Param('saved_pose.y', 0.0, 'm', LIVE, (-_BIG, _BIG)),
    Param('saved_pose.yaw', 0.0, 'rad', LIVE, (-2 * math.pi, 2 * math.pi)),
    Param('saved_pose.stamp', 0.0, 's, stamp of the saved pose; 0: none saved.', LIVE, (0.0, 1e12)),
    Param('global_on_start', True, 'Localize globally when no initial pose is given (at start and after time '
          'jumps back); false: wait for an initial pose.', REINIT),
    Param('min_global_data', 1.0, 's of buffered exteroceptive data (scan, cloud, depth, UWB) before a global '
          'localization attempt.', REINIT, (0.0, 60.0)),
    Param('global_max_std', 1.0, 'm, a global result is accepted when its position std is below this.', REINIT,
          (0.001, 1000.0)),
    Param('lost_after_rejections', 5, 'Consecutive gated model poses that mean lost (then relocalize).', REINIT,
          (1, 100_000)),
    Param('lost_std', 3.0, 'm of position std that means lost (then relocalize).', REINIT, (0.01, 10_000.0)),
    Param('blackout', 1.0, 's without a message of any sensor after which no pose is published until the sensors '
          'have re-anchored the estimate (a model pose accepted again, or lost).', REINIT, (0.01, 3600.0)),
    Param('max_hypotheses', 4, 'Poses kept after an ambiguous global localization (a symmetric building), each '
          'tracked until the model scores one clearly ahead; the covariance spans them meanwhile. 1: the best only.',
          REINIT, (1, 64)),
    Param('hypothesis_lead', 3.0, 'Lead in accumulated model log-score that decides between those hypotheses.',
          REINIT, (0.0, 1000.0)),
    Param('filter.process', 'auto', "Filter process model: 'auto' (IMU-driven from the first IMU sample on, "
          "else odometry-driven from the first odometry sample, else constant velocity), 'odom', 'imu', 'cv'.",
          REINIT, choices=('auto', 'odom', 'imu', 'cv')),
    *(Param(f'filter.{name}', float(getattr(_ESKF_DEFAULTS, name)), desc, REINIT, rng)
      for name, (desc, rng) in ESKF_PARAMS.items()),
)

#: AMCL's parameter names -> ours, for the ones that differ (AMCL's ``set_initial_pose``, ``initial_pose.{x,y,z,yaw}``,
#: ``always_reset_initial_pose``, ``save_pose_rate``, ``initialize_at_saved_pose``, ``saved_pose_filepath``,
#: ``map_topic``, ``first_map_only``, ``transform_tolerance`` and ``tf_broadcast`` have the same names here).
#: The localizer declares both names and keeps them equal; in a parameter file the AMCL name wins.
AMCL_ALIASES: dict[str, str] = {
    'global_frame_id': 'map_frame',
    'odom_frame_id': 'odom_frame',
    'base_frame_id': 'base_frame',
    'scan_topic': 'sensors.scan.topic',
}

#: AMCL's particle filter, laser and motion model settings: nothing to set here (the model needs no per-site
#: tuning). Found in a parameter file they are logged as ignored.
AMCL_WITHOUT_MEANING = (
    'alpha1', 'alpha2', 'alpha3', 'alpha4', 'alpha5', 'beam_skip_distance', 'beam_skip_error_threshold',
    'beam_skip_threshold', 'do_beamskip', 'lambda_short', 'laser_likelihood_max_dist', 'laser_max_range',
    'laser_min_range', 'laser_model_type', 'max_beams', 'max_particles', 'min_particles', 'pf_err', 'pf_z',
    'recovery_alpha_fast', 'recovery_alpha_slow', 'resample_interval', 'robot_model_type', 'sigma_hit',
    'update_min_a', 'update_min_d', 'z_hit', 'z_max', 'z_rand', 'z_short', 'random_seed')


class ParamError(ValueError):
    """A parameter value the node cannot start with (out of range, wrong type)."""


def declare(node: Node, table: tuple[Param, ...] = COMMON, aliases: dict[str, str] | None = None) -> None:
    """Declare every parameter of ``table`` on ``node`` with its default and descriptor, then the ``aliases``
    (other names of table parameters) with the value of the parameter they name; an alias given a different value
    (e.g. in a Nav2 parameter file) sets that parameter too. Raises :class:`ParamError` for a value out of range or
    of the wrong type, naming the parameter."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException  # noqa: PLC0415
    from rclpy.parameter import Parameter  # noqa: PLC0415

    by_name = {p.name: p for p in table}

    def _declare(name: str, default: Any, p: Param) -> Any:
        try:
            if isinstance(p.default, list):
                # rclpy types an empty list default as a byte array, and a file's `[]` as no value: declare the
                # type, and set an empty string array where nothing gave one
                got = node.declare_parameter(name, Parameter.Type.STRING_ARRAY, p.descriptor())
                if got.value is None:
                    node.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, list(default))])
                return node.get_parameter(name).value
            return node.declare_parameter(name, default, p.descriptor()).value
        except InvalidParameterValueException as e:
            raise ParamError(f'parameter {name}: {e}; {_range_text(p)}') from None
        except InvalidParameterTypeException as e:
            raise ParamError(f'parameter {name}: {e} (write {type(p.default).__name__} values, e.g. '
                             f'{p.default!r})') from None

    for p in table:
        if not node.has_parameter(p.name):
            _declare(p.name, p.default, p)
    for alias, name in (aliases or {}).items():
        if node.has_parameter(alias):
            continue
        q = by_name[name]
        current = node.get_parameter(name).value
        value = _declare(alias, current, dataclasses.replace(
            q, name=alias, description=f'AMCL\'s name of {name} (setting either sets both): {q.description}'))
        if value != current:
            result = node.set_parameters([Parameter(name, value=value)])[0]
            if not result.successful:
                raise ParamError(f'parameter {alias} (AMCL\'s name of {name}): {result.reason}')


def _range_text(p: Param) -> str:
    return f'allowed: [{p.range[0]}, {p.range[1]}]' if p.range else 'see `ros2 param describe`'


def values(node: Node, table: tuple[Param, ...] = COMMON) -> dict[str, Any]:
    """Current values of the table's parameters, by name."""
    return {p.name: node.get_parameter(p.name).value for p in table}


def mirrored(changes: list[Any], aliases: dict[str, str]) -> list[Any]:
    """``changes`` (rclpy Parameters) plus, for each one that has another name (an AMCL alias, or the parameter an
    alias names), the same value under that name: both names change together (a pre-set callback)."""
    from rclpy.parameter import Parameter  # noqa: PLC0415

    other = {**aliases, **{v: k for k, v in aliases.items()}}
    names = {c.name for c in changes}
    extra = [Parameter(other[c.name], value=c.value) for c in changes if c.name in other and other[c.name] not in names]
    return list(changes) + extra


def eskf_config(p: dict[str, Any]) -> EskfConfig:
    """The filter's configuration from the ``filter.*`` parameters (the process model is set by the pipeline)."""
    return EskfConfig(**{name: float(p[f'filter.{name}']) for name in ESKF_PARAMS})


def check(p: dict[str, Any], table: tuple[Param, ...]) -> str | None:
    """Why the set of values ``p`` cannot be used, or None: allowed values, topic names, frame names, and the
    library's own checks of the configurations built from them (ranges and types are checked by rclpy against the
    descriptors before this)."""
    from rclpy.exceptions import InvalidTopicNameException  # noqa: PLC0415
    from rclpy.validate_topic_name import validate_topic_name  # noqa: PLC0415

    from flm_ros.sensor_input import buffer_config  # noqa: PLC0415

    for q in table:
        v = p.get(q.name)
        if q.choices is not None and v not in q.choices:
            return f'{q.name} must be one of {", ".join(q.choices)}; got {v!r}'
        if isinstance(q.default, list) and not (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)):
            return f'{q.name} must be a list of strings; got {v!r}'
        for t in ([v] if q.is_topic else list(v) if q.is_topic_list else []):
            try:
                validate_topic_name(t)
            except InvalidTopicNameException as e:
                return f'{q.name}: {t!r} is not a valid topic name ({e})'
        if q.name.endswith('_frame') and not str(v).strip('/'):
            return f'{q.name} must not be empty'
    reason = _check_topic_lists(p)
    if reason is not None:
        return reason
    dev = p.get('device')
    if dev is not None and dev not in ('cpu', 'cuda', 'auto') and not str(dev).startswith('cuda:'):
        return f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto'; got {dev!r}"
    try:
        if 'buffer.window' in p:
            buffer_config(p)
        if 'filter.gyro_noise' in p:
            eskf_config(p)
    except ValueError as e:
        return str(e)
    return None


def _check_topic_lists(p: dict[str, Any]) -> str | None:
    """Why the further topics of the kinds of :data:`MULTI_TOPIC` (and the UWB tags' frames) cannot be used, or
    None: a topic given twice would be subscribed twice; each further UWB topic needs its tag's frame."""
    for kind in MULTI_TOPIC:
        extra = p.get(f'sensors.{kind}.extra_topics')
        if extra is None:
            continue
        given = [p.get(f'sensors.{kind}.topic'), *extra]
        for i, t in enumerate(given[1:], 1):
            if t in given[:i]:
                return (f'sensors.{kind}.extra_topics: {t!r} is given twice (sensors.{kind}.topic and '
                        f'sensors.{kind}.extra_topics together name each topic once)')
    topics, frames = p.get('sensors.uwb.extra_topics'), p.get('sensors.uwb.extra_tag_frames')
    if topics is None or frames is None:
        return None
    if len(frames) != len(topics):
        return (f'sensors.uwb.extra_tag_frames must name the tag frame of each topic of sensors.uwb.extra_topics, in '
                f'the same order: {len(topics)} topics ({list(topics)}), {len(frames)} frames ({list(frames)})')
    tags = [p.get('sensors.uwb.tag_frame'), *frames]
    for i, f in enumerate(tags[1:], 1):
        if not f.strip('/'):
            return f'sensors.uwb.extra_tag_frames[{i - 1}] (the tag of {topics[i - 1]!r}) must not be empty'
        if f in tags[:i]:
            return (f'sensors.uwb.extra_tag_frames: {f!r} is given twice (with sensors.uwb.tag_frame): each UWB '
                    'topic is a tag of its own, in a frame of its own')
    return None


def refusal(q: Param, configured: bool, active: bool) -> str | None:
    """Why parameter ``q`` cannot change in this lifecycle state, or None."""
    if q.apply == ACTIVATE and active:
        return f'{q.name} is read at activation: deactivate, set it, and activate again'
    if q.apply == CONFIGURE and configured:
        return f'{q.name} is read at configure: deactivate, clean up, set it, and configure again'
    return None


def from_yaml(path: str, node_name: str, table: tuple[Param, ...],
              aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """The values a node named ``node_name`` in the root namespace gets from a ROS parameter file (``/**`` then its
    own section; an AMCL alias sets the parameter it names), on top of the table's defaults: what ``--params-file``
    gives the node, for offline tools that run without one. Topic names come resolved as that node resolves them
    (``scan`` -> ``/scan``)."""
    import yaml  # noqa: PLC0415

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    out = {p.name: p.default for p in table}
    for key in ('/**', node_name, '/' + node_name):
        section = _flatten((doc.get(key) or {}).get('ros__parameters', {}))
        out.update({k: v for k, v in section.items() if k in out})
        out.update({name: section[alias] for alias, name in (aliases or AMCL_ALIASES).items()
                    if name in out and alias in section})
    def resolved(topic: Any) -> Any:
        return '/' + topic if isinstance(topic, str) and not topic.startswith(('/', '~')) else topic

    for p in table:
        if p.is_topic:
            out[p.name] = resolved(out[p.name])
        elif p.is_topic_list and isinstance(out[p.name], list):
            out[p.name] = [resolved(t) for t in out[p.name]]
        elif isinstance(p.default, list) and out[p.name] is None:   # `name: []` in a file
            out[p.name] = []
    return out


def _flatten(section: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """A parameter file section with nested mappings (``initial_pose: {x: 1.0}``) as dotted names."""
    out: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out
