"""Parameters of the FLM-ROS nodes: the core's parameters (:mod:`flm_core.config`, where they are defined once)
plus the nodes' own (topics, outputs, initial pose, bond, AMCL's names), with their ROS descriptors.

``config/flm.yaml`` sets values (under ``/**: ros__parameters:`` so every node reads the same file); nodes
declare from these tables (:data:`COMMON`, :data:`LOCALIZER`) with descriptors (description,
FloatingPointRange/IntegerRange, allowed values), so ``ros2 param describe`` explains each one and rclpy refuses a
value out of range.

Changes while the node runs follow Nav2's validate-then-apply pattern: :func:`check` validates a whole set of
values (topic names here; types, ranges, allowed values and the library's own configuration checks in
:func:`flm_core.config.load_config`, the loader every tool shares) and :data:`Param.apply` says what a change
needs (:data:`LIVE` ... :data:`CONFIGURE`), so that the node either applies it (re-initialising what depends on
it) or refuses it with a reason; nothing is accepted and then ignored.

Topic parameters are ROS names: relative ones (``scan``, ``map``) resolve in the node's namespace, so a
namespace moves every input and output, as in Nav2.

Nav2 users keep their AMCL parameter file: :data:`AMCL_ALIASES` maps AMCL's names to ours (both are declared on
the localizer and kept equal), AMCL's ``robot_model_type`` (a motion model plugin) sets ``robot_model``
(:func:`amcl_robot_model`), and the AMCL parameters that have no meaning here are listed in
:data:`AMCL_WITHOUT_MEANING` (logged as ignored).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from flm_core import config as C
from flm_core.config import ACTIVATE, CONFIGURE, LIVE, MODEL, RATE, REINIT, ConfigError

_BIG = 1e6  # m, bound of map coordinates in the ranges below
_NOTES = {LIVE: 'applied at once', REINIT: 'while active: re-initialises the localization (pose kept)',
          RATE: 'while active: the update timer is re-created', MODEL: 'while active: set on the model',
          ACTIVATE: 'read at activation (refused while active)',
          CONFIGURE: 'read at configure (refused once configured)'}


@dataclass(frozen=True)
class Param(C.Param):
    """A parameter as the nodes declare it: its definition (:class:`flm_core.config.Param`) and ROS descriptor."""

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
        d.additional_constraints = (f'one of: {", ".join(self.choices)}; ' if self.choices else '') \
            + _NOTES[self.apply]
        return d


def _ros(params: tuple[C.Param, ...]) -> tuple[Param, ...]:
    """The core's definitions as the nodes declare them."""
    return tuple(Param(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)}) for p in params)


SENSOR_TOPICS = (('scan', 'scan'), ('points', 'points'), ('depth', 'camera/depth/image_raw'),
                 ('uwb', 'uwb/ranges'), ('imu', 'imu/data'), ('odom', 'odom'))
#: The kinds that take further topics (``sensors.<kind>.extra_topics``): several lidars (front/rear) feed one scan
#: or points stream, each message in its own frame; several UWB tags, each on its own topic and in its own TF frame
#: (``sensors.uwb.extra_tag_frames``). Not IMU and odometry: the filter integrates one IMU and one odometry pose
#: track (two odometry sources' poses would be taken as one robot jumping between them; fuse them upstream, e.g.
#: with robot_localization), nor the depth camera (one CameraInfo).
MULTI_TOPIC = ('scan', 'points', 'uwb')

#: Parameters of every node that reads sensors (the sensor hub, the localizer).
COMMON: tuple[Param, ...] = _ros(C.FRAME_PARAMS) + (
    Param('site_file', '', 'Site file (YAML: map_server map + UWB anchors [+ point map]). Empty: none (the map then '
          'comes from map_topic).', CONFIGURE),
) + _ros(C.BUFFER_PARAMS) + (
    Param('diagnostics_period', 1.0, 's between /diagnostics messages.', LIVE, (0.05, 3600.0)),
    *(p for s, topic in SENSOR_TOPICS for p in (
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
) + _ros(C.SENSOR_PARAMS) + (
    Param('sensors.depth.camera_info_topic', 'camera/depth/camera_info', 'CameraInfo of the depth camera.', ACTIVATE),
)

#: Parameters of the localizer node (in addition to COMMON).
LOCALIZER: tuple[Param, ...] = (
    Param('autostart', True, 'Configure and activate at start-up (false under nav2_lifecycle_manager).', CONFIGURE),
    Param('bond_heartbeat_period', 0.1, 's between heartbeats of the bond nav2_lifecycle_manager holds with the '
          'node while it is active, as Nav2\'s own nodes (bondpy, or the bond messages; 0: no bond).', ACTIVATE,
          (0.0, 10.0)),
) + _ros(C.MODEL_PARAMS) + (
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
) + _ros(C.PIPELINE_PARAMS) + _ros(C.REFINE_PARAMS)

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
    'recovery_alpha_fast', 'recovery_alpha_slow', 'resample_interval', 'sigma_hit',
    'update_min_a', 'update_min_d', 'z_hit', 'z_max', 'z_rand', 'z_short', 'random_seed')


#: AMCL's motion models (``robot_model_type``, Nav2's plugin names and ROS 1 amcl's ``odom_model_type`` values) ->
#: our ``robot_model``: the one motion model setting with a meaning here (a differential robot's heading from its
#: track). In a parameter file AMCL's name wins, as for :data:`AMCL_ALIASES`.
AMCL_ROBOT_MODELS: dict[str, str] = {
    'nav2_amcl::DifferentialMotionModel': 'differential', 'nav2_amcl::OmniMotionModel': 'omnidirectional',
    'diff': 'differential', 'diff-corrected': 'differential', 'omni': 'omnidirectional',
    'omni-corrected': 'omnidirectional',
}


def amcl_robot_model(value: Any) -> str | None:
    """Our ``robot_model`` for a value of AMCL's ``robot_model_type`` (None: a motion model we do not know)."""
    return AMCL_ROBOT_MODELS.get(str(value).strip())


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


def check(p: dict[str, Any], table: tuple[Param, ...]) -> str | None:
    """Why the set of values ``p`` cannot be used, or None: topic names and the nodes' own allowed values here, then
    the core's checks (types, ranges, allowed values, frame names, the library's own configuration checks:
    :func:`flm_core.config.load_config`; rclpy has checked ranges and types against the descriptors before)."""
    from rclpy.exceptions import InvalidTopicNameException  # noqa: PLC0415
    from rclpy.validate_topic_name import validate_topic_name  # noqa: PLC0415

    for q in table:
        if q.name not in p:
            continue
        v = p[q.name]
        if q.is_topic_list and not (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)):
            return f'{q.name} must be a list of strings; got {v!r}'
        for t in ([v] if q.is_topic else list(v) if q.is_topic_list else []):
            try:
                validate_topic_name(t)
            except InvalidTopicNameException as e:
                return f'{q.name}: {t!r} is not a valid topic name ({e})'
        if q.target is None and (q.choices is not None or q.range is not None):
            reason = C.check_value(q, v)
            if reason is not None:
                return reason
    reason = _check_topic_lists(p)
    if reason is not None:
        return reason
    try:
        C.load_config(p)
    except ConfigError as e:
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
    out = {p.name: p.default for p in table}
    for section in C.parameter_file_sections(path, node_name):
        out.update({k: v for k, v in section.items() if k in out})
        out.update({name: section[alias] for alias, name in (aliases or AMCL_ALIASES).items()
                    if name in out and alias in section})
        model = amcl_robot_model(section.get('robot_model_type'))
        if model is not None and 'robot_model' in out:
            out['robot_model'] = model
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
