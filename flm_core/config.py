"""Typed configuration of the localizer core: one table of parameter definitions, one loader, the factories.

The parameters users set (``config/flm.yaml``, ``-p`` over ROS, ``flm-eval``) have flat dotted names
(``buffer.window``, ``filter.gate_prob``, ``model.iterations``, ...). Each is defined once, here, by a
:class:`Param` (default, description, what a change needs, range, allowed values) that also names the field of the
typed configuration it sets (:attr:`Param.target`). The defaults of the settings of the library's own
configuration classes come from those classes (:class:`~flm_core.timebuffer.TimeBufferConfig`,
:class:`~flm_core.pipeline.PipelineConfig`, :class:`~flm_core.estimation.eskf.EskfConfig`,
:class:`~flm_core.validation.Expectations`), so they too have one source. ``flm_ros.params`` adds the node-only
parameters (topics, outputs, initial pose, bond, AMCL's names) and the ROS descriptors.

:func:`load_config` is the one loader: defaults, then a ROS parameter file (``/**`` and the node's own section,
nested mappings as dotted names), then flat values, then overrides; every value is checked (type, range, allowed
values, then the library's own checks) and the first problem raises :class:`ConfigError` naming the parameter.
The result is a frozen, nested :class:`Config`::

    cfg = load_config(yaml_file='config/flm.yaml', overrides={'model.iterations': 3})
    cfg.buffer.window, cfg.sensors.enabled, cfg.model.device, cfg.pipeline.eskf.gate_prob

:func:`to_values` gives the flat values back (a parameter file round-trips). The factories
(:func:`load_pose_source`, :func:`make_rig`, :func:`make_front_end`, :func:`make_pipeline`) build what the ROS node
and ``flm-eval`` run from a :class:`Config`. Units are SI (s, m, rad), frames REP-105.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from flm_core.estimation.course import ROBOT_MODELS
from flm_core.estimation.eskf import EskfConfig
from flm_core.estimation.refine import RefineConfig
from flm_core.frontend import STREAMS, SensorFrontEnd
from flm_core.model.backends import check_device
from flm_core.model.inference import PassOptions
from flm_core.pipeline import Pipeline, PipelineConfig
from flm_core.rig import Lookup, RigBuilder
from flm_core.site import Site
from flm_core.timebuffer import TimeBufferConfig
from flm_core.validation import Expectations

# What a change of the parameter needs while a node runs (:attr:`Param.apply`).
LIVE = 'live'              # takes effect at once
REINIT = 'reinit'          # while active: the localization pipeline is re-initialised (the pose carried over)
RATE = 'rate'              # while active: the update timer is re-created
MODEL = 'model'            # while active: set on the loaded model at once
ACTIVATE = 'activate'      # read at activation: refused while active (deactivate, set it, activate)
CONFIGURE = 'configure'    # read at configure: refused once configured (deactivate, cleanup, set it, configure)
APPLY = (LIVE, REINIT, RATE, MODEL, ACTIVATE, CONFIGURE)


class ConfigError(ValueError):
    """A parameter value the core cannot run with; the message starts with the parameter's name."""


@dataclass(frozen=True)
class Param:
    """One parameter: name, default (its type is the parameter's type), description, what a change needs
    (``apply``), the inclusive ``range`` (lo, hi) of a number, the allowed ``choices`` of a string, and ``target``:
    the dotted path of the :class:`Config` field it sets (None: a parameter of a node only)."""

    name: str
    default: Any
    description: str
    apply: str = LIVE
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    target: str | None = None

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


# ------------------------------------------------------------------------------------------------ typed config
@dataclass(frozen=True)
class FramesConfig:
    """REP-105 frame names: the global frame, the odometry frame and the robot's base."""

    map: str
    odom: str
    base: str


@dataclass(frozen=True)
class StreamConfig:
    """A sensor stream: whether it is used."""

    enabled: bool


@dataclass(frozen=True)
class UwbConfig:
    """The UWB stream; tag_frame: the frame of the tag of the main UWB topic; extra_tag_frames: the frames of the
    tags of further UWB topics (one per topic); tag_height: m above the base frame of every tag, overriding TF
    (< 0: from TF)."""

    enabled: bool
    tag_frame: str
    tag_height: float
    extra_tag_frames: tuple[str, ...] = ()


@dataclass(frozen=True)
class OdomConfig:
    """The odometry stream; max_speed (m/s), max_yaw_rate (rad/s): faster twists and pose increments are
    implausible (rejected, counted)."""

    enabled: bool
    max_speed: float
    max_yaw_rate: float


@dataclass(frozen=True)
class SensorsConfig:
    scan: StreamConfig
    points: StreamConfig
    depth: StreamConfig
    uwb: UwbConfig
    imu: StreamConfig
    odom: OdomConfig

    @property
    def enabled(self) -> tuple[str, ...]:
        """The enabled streams, in :data:`flm_core.frontend.STREAMS` order."""
        return tuple(s for s in STREAMS if getattr(self, s).enabled)


@dataclass(frozen=True)
class ModelConfig:
    """The pose source: path (empty: the shipped model), device, fp16, backend ('auto', 'torch', 'onnx'), threads
    (intra-op), iterations / converge / global_candidates / global_refine (see
    :class:`flm_core.model.inference.Localizer`),
    refine (solve its poses against the measurements), pose_source ('flm' or a classical baseline)."""

    path: str
    device: str
    fp16: bool
    backend: str
    threads: int
    iterations: int
    converge: float
    global_candidates: int
    global_refine: int
    refine: bool
    pose_source: str


@dataclass(frozen=True)
class Config:
    """What the localizer core runs with (see the module docstring)."""

    frames: FramesConfig
    buffer: TimeBufferConfig
    sensors: SensorsConfig
    model: ModelConfig
    pipeline: PipelineConfig
    refine: RefineConfig


# ------------------------------------------------------------------------------------------------ definitions
_BUFFER = TimeBufferConfig()
_PIPELINE = PipelineConfig()
_ESKF = EskfConfig()
_EXPECT = Expectations()
_REFINE = RefineConfig()
_PASSES = PassOptions()

FRAME_PARAMS: tuple[Param, ...] = (
    Param('map_frame', 'map', 'Global frame (REP-105). AMCL: global_frame_id.', CONFIGURE, target='frames.map'),
    Param('odom_frame', 'odom', 'Odometry frame (REP-105). AMCL: odom_frame_id.', CONFIGURE, target='frames.odom'),
    Param('base_frame', 'base_link', 'Robot base frame (REP-105). AMCL: base_frame_id.', CONFIGURE,
          target='frames.base'),
)

def _in(section: str, *params: Param) -> tuple[Param, ...]:
    """``params`` with the target ``section.<last part of the name>`` where they name none (``buffer.window`` ->
    ``buffer.window``, ``blackout`` -> ``pipeline.blackout``)."""
    return tuple(p if p.target else dataclasses.replace(p, target=f'{section}.{p.name.rsplit(".", 1)[-1]}')
                 for p in params)


BUFFER_PARAMS: tuple[Param, ...] = _in(
    'buffer',
    Param('buffer.window', _BUFFER.window, 's of every sensor stream kept for the model.', REINIT, (0.05, 60.0)),
    Param('buffer.max_lateness', _BUFFER.max_lateness, 's a message may arrive behind the newest stamp before it is '
          'dropped.', REINIT, (0.0, 60.0)),
    Param('buffer.jump_back', _BUFFER.jump_back, 's the clock may go back before the buffers reset (bag loop).',
          REINIT, (0.0, 3600.0)),
    Param('buffer.max_future', _BUFFER.max_future, 's a stamp may be ahead of the node clock before it is rejected.',
          REINIT, (0.0, 3600.0)),
    Param('buffer.max_per_stream', _BUFFER.max_per_stream, 'Hard bound on buffered messages per stream.', REINIT,
          (2, 1_000_000)),
)

SENSOR_PARAMS: tuple[Param, ...] = (
    *(Param(f'sensors.{s}.enabled', True, f'Subscribe to the {s} stream (a missing sensor is normal).', ACTIVATE,
            target=f'sensors.{s}.enabled') for s in STREAMS),
    Param('sensors.uwb.tag_frame', 'uwb_tag', 'Frame of the UWB tag on the robot (its mount comes from TF): the tag '
          'of sensors.uwb.topic.', ACTIVATE, target='sensors.uwb.tag_frame'),
    Param('sensors.uwb.extra_tag_frames', [], 'Frames of the tags of sensors.uwb.extra_topics, one per topic, in the '
          "same order (string array; each tag's mount comes from TF, looked up again at every update).", ACTIVATE,
          target='sensors.uwb.extra_tag_frames'),
    Param('sensors.uwb.tag_height', -1.0, 'm, height of the UWB tags above base_frame, overriding TF; -1 (default): '
          'from TF, looked up again at every update, so a hand-held or flying tag follows /tf.', ACTIVATE,
          (-1.0, 1000.0), target='sensors.uwb.tag_height'),
    Param('sensors.odom.max_speed', _EXPECT.max_speed, 'm/s: odometry twists and pose increments faster than this are '
          'rejected (counted as implausible_twist / implausible_increment).', REINIT, (0.01, 1000.0),
          target='sensors.odom.max_speed'),
    Param('sensors.odom.max_yaw_rate', _EXPECT.max_yaw_rate, 'rad/s: the same bound for rotation.', REINIT,
          (0.01, 1000.0), target='sensors.odom.max_yaw_rate'),
)

POSE_SOURCES = ('flm', 'icp', 'icp2d', 'icp3d', 'uwb')

MODEL_PARAMS: tuple[Param, ...] = (
    Param('model_path', '', 'Model file (NAME.pt or NAME.onnx); empty: the model shipped with the package.', CONFIGURE,
          target='model.path'),
    Param('device', 'cpu', "Inference device: 'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available).", CONFIGURE,
          target='model.device'),
    Param('fp16', False, 'Half-precision inference (CUDA only).', CONFIGURE, target='model.fp16'),
    Param('inference_backend', 'auto', "Model back end: 'torch' (TorchScript file), 'onnx' (ONNX Runtime, NAME.onnx "
          "beside model_path) or 'auto' (torch where installed, else onnx).", CONFIGURE,
          choices=('auto', 'torch', 'onnx'), target='model.backend'),
    Param('inference_threads', 1, 'CPU threads for the model (intra-op); more only on an otherwise idle CPU.',
          CONFIGURE, (1, 256), target='model.threads'),
    Param('model.iterations', _PASSES.iterations,
          'Most model passes per tracking update, each from the pose the previous one gave.',
          MODEL, (1, 16), target='model.iterations'),
    Param('model.converge', _PASSES.converge,
          'Stop those passes early once the correction is within this many standard '
          "deviations of the model's own covariance (0: always run model.iterations).", MODEL, (0.0, 100.0),
          target='model.converge'),
    Param('model.global_candidates', _PASSES.global_candidates,
          'Pre-ranked poses the model scores in a global localization (more: '
          'slower, finds the robot more often in repetitive buildings).', MODEL, (1, 4096),
          target='model.global_candidates'),
    Param('model.global_refine', _PASSES.global_refine,
          'The best of those refined further and handed to the solve, which takes the '
          'first that fits (more: slower; with 4, a weaker network lost the Intel log: none of its 4 was right).',
          MODEL, (1, 4096), target='model.global_refine'),
    Param('model.refine', True, "Solve the model's pose against the window's measurements (robust Gauss-Newton: "
          'scans against the map, ranges with learnt biases; flm_core.estimation.refine) and hand the filter that '
          "solve's covariance, or say that the window does not fit; false: the network's pose and covariance as "
          'they are (less accurate and overconfident on real data).', CONFIGURE,
          target='model.refine'),
    Param('pose_source', 'flm', "What produces poses: 'flm' (the model), or a classical baseline: 'icp', 'icp2d', "
          "'icp3d', 'uwb'.", CONFIGURE, choices=POSE_SOURCES, target='model.pose_source'),
)

#: The filter's settings (:class:`flm_core.estimation.eskf.EskfConfig`), as ``filter.<field>``: unit and meaning,
#: and the range accepted. Defaults come from EskfConfig itself. (``process`` is ``filter.process`` below, with
#: 'auto'; ``auto_init`` is not exposed: the pipeline initialises its filters itself.)
ESKF_PARAMS: dict[str, tuple[str, tuple[float, float]]] = {
    'gyro_noise': ('rad/s/sqrt(Hz), gyro white noise density (IMU-driven filter).', (0.0, 10.0)),
    'accel_noise': ('m/s^2/sqrt(Hz), accelerometer white noise density (IMU-driven filter).', (0.0, 100.0)),
    'gyro_bias_rw': ('rad/s^2/sqrt(Hz), gyro bias random walk.', (0.0, 10.0)),
    'accel_bias_rw': ('m/s^3/sqrt(Hz), accelerometer bias random walk.', (0.0, 100.0)),
    'accel_tilt_time': ('s; the accelerometer bias also walks by g x (the gyro\'s roll/pitch rate) x sqrt(this) per '
                        'sqrt(s): the gravity a rocking platform leaks into the horizontal (0: off).', (0.0, 60.0)),
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
    'imu_max_hold': ('s an IMU sample is held (IMU-driven filter); after it the filter coasts on the last motion it '
                     'measured and the IMU biases no longer move the pose.', (0.0, 60.0)),
    'cv_accel_noise': ("m/s^2/sqrt(Hz), the robot's own acceleration: process noise of the constant-velocity model "
                       '(neither IMU nor odometry).', (0.0, 100.0)),
    'cv_yaw_noise': ("rad/s/sqrt(Hz), the robot's own turn rate in that model.", (0.0, 100.0)),
}

PIPELINE_PARAMS: tuple[Param, ...] = _in(
    'pipeline',
    Param('global_on_start', _PIPELINE.global_on_start, 'Localize globally when no initial pose is given (at start '
          'and after time jumps back); false: wait for an initial pose.', REINIT),
    Param('min_global_data', _PIPELINE.min_global_data, 's of buffered exteroceptive data (scan, cloud, depth, UWB) '
          'before a global localization attempt.', REINIT, (0.0, 60.0)),
    Param('global_max_std', _PIPELINE.global_max_std, 'm, a global result is accepted when its position std is below '
          'this.', REINIT, (0.001, 1000.0)),
    Param('lost_after_rejections', _PIPELINE.lost_after_rejections, 'Consecutive gated or inconsistent model poses '
          'that mean lost (then relocalize).', REINIT, (1, 100_000)),
    Param('lost_std', _PIPELINE.lost_std, 'm of position std that means lost (then relocalize).', REINIT,
          (0.01, 10_000.0)),
    Param('blackout', _PIPELINE.blackout, 's without a message of any sensor after which no pose is published until '
          'the sensors have re-anchored the estimate (a model pose accepted again, or lost).', REINIT, (0.01, 3600.0)),
    Param('max_hypotheses', _PIPELINE.max_hypotheses, 'Poses kept after an ambiguous global localization (a '
          'symmetric building), each tracked until the model scores one clearly ahead; the covariance spans them '
          'meanwhile. 1: the best only.', REINIT, (1, 64)),
    Param('hypothesis_lead', _PIPELINE.hypothesis_lead, 'Lead in accumulated model log-score that decides between '
          'those hypotheses.', REINIT, (0.0, 1000.0)),
    Param('confirm_updates', _PIPELINE.confirm_updates, 'Consecutive accepted model poses after a global result '
          'before its covariance is published; until then it is as wide as while lost (a wrong global result is '
          'never published as a confident one). 0: at once.', REINIT, (0, 1000)),
    Param('robot_model', _PIPELINE.robot_model, "The robot's wheels, as AMCL's robot_model_type: 'differential' "
          '(base_link does not slide sideways, so a robot whose sensors do not observe its heading, one UWB tag with '
          'neither odometry nor a map, takes it from its track; forward while it is not yet known) or '
          "'omnidirectional' (it may slide: no such heading).", REINIT, choices=ROBOT_MODELS),
    Param('course_window', _PIPELINE.course_window, 's of positions whose straight-line fit gives a differential '
          "robot's heading (robot_model).", REINIT, (0.1, 60.0)),
    Param('course_slip', _PIPELINE.course_slip, "rad, std of the angle between a differential robot's velocity and "
          'its heading (side slip, base_link off the wheel axle).', REINIT, (0.0, 3.2)),
    Param('odom_heading_drift', _PIPELINE.odom_heading_drift, "rad/m, std of the odometry's systematic heading "
          'error per metre driven (unequal wheels: 0.05 is 2 % on a 0.4 m track); while the filter dead-reckons on '
          'odometry, the published covariance includes it. 0: off.', REINIT, (0.0, 10.0)),
    Param('filter.process', _PIPELINE.process, "Filter process model: 'auto' (IMU-driven from the first IMU sample "
          "on, else odometry-driven from the first odometry sample, else constant velocity), 'odom', 'imu', 'cv'.",
          REINIT, choices=('auto', 'odom', 'imu', 'cv'), target='pipeline.process'),
    *(Param(f'filter.{name}', float(getattr(_ESKF, name)), desc, REINIT, rng, target=f'pipeline.eskf.{name}')
      for name, (desc, rng) in ESKF_PARAMS.items()),
)

#: The solve behind the model (:class:`flm_core.estimation.refine.RefineConfig`, with ``model.refine``), as
#: ``refine.<field>``: unit and meaning, and the range accepted. Defaults come from RefineConfig itself.
REFINE_FIELDS: dict[str, tuple[str, tuple[float, float]]] = {
    'scan_sigma': ('m, point-to-line noise of a scan point against the map.', (1e-4, 10.0)),
    'scan_voxel': ('m, voxel filter of the scan points (one per voxel).', (1e-3, 10.0)),
    'points_sigma': ('m, point-to-plane noise of a 3D point (3D lidar, depth camera) against the point map (which, '
                     'from a mapping run, disagrees with the world more than a 2D grid).',
                     (1e-4, 10.0)),
    'points_voxel': ('m, voxel filter of the 3D points.', (1e-3, 10.0)),
    'truncation': ('m, a point farther than this from the map is not pulled (unmapped clutter).', (1e-3, 100.0)),
    'uwb_sigma': ('m, UWB range noise.', (1e-4, 100.0)),
    'uwb_window': ('s, how old (before the update) a UWB range may be to be solved with; tracking takes the ranges '
                   'no earlier update used.', (0.0, 10.0)),
    'uwb_nlos_sigma': ('m per obstacle of the map that a UWB link crosses: the std of a range measured longer than '
                       'predicted (non-line-of-sight delay); 0: none.', (0.0, 10.0)),
    'uwb_bias_std': ("m, initial std of each anchor's range offset from the site file's bias (learnt online).",
                     (0.0, 100.0)),
    'uwb_common_std': ('m, initial std of a range offset shared by all anchors (a clock or antenna delay; 0: none).',
                       (0.0, 100.0)),
    'max_common_offset': ('m, the largest shared range offset a solve may find and still count as consistent.',
                          (0.0, 1000.0)),
    'bias_walk': ('m/sqrt(s), how fast the learnt range offsets may drift.', (0.0, 10.0)),
    'min_inlier_share': ('Share of the measurements a solve must explain to be handed on (else the window does not '
                         'fit: it counts toward lost).', (0.0, 1.0)),
    'max_rms': ("Sigmas, the largest residual RMS of a solve's inliers that still counts as fitting.",
                (0.0, 1000.0)),
    'min_block_share': ('With several sensors in a solve, the share of its own measurements each one must explain.',
                        (0.0, 1.0)),
    'uwb_height_std': ("m, prior std of the UWB tags' height offset from TF, estimated with the pose (a hand-held or "
                       'flying tag); 0: the height from TF is right (a tag on the robot).', (0.0, 100.0)),
    'uwb_height_walk': ('m per sqrt(s), how fast that height offset may move between updates.', (0.0, 100.0)),
    'min_anchors': ('Distinct anchors a window with UWB ranges only needs to be solved (one anchor: a circle).',
                    (1, 64)),
    'unfit_time': ('s a run of small windows (ranges only) may go on not fitting before it counts toward lost.',
                   (0.0, 3600.0)),
    'correlation_time': ('s over which the errors of consecutive windows stay alike (the covariance of results '
                         'closer together is widened accordingly, and the UWB offsets learn as much less from them; 0: '
                         'independent).', (0.0, 3600.0)),
    'map_surface': ("Where the surface lies in an occupied cell: 0 its centre (maps from SLAM), 1 its faces.",
                    (0.0, 1.0)),
    'rival_cost': ('A solve against the map with distinct minima: the most another may cost more on the measurements '
                   'and still be a rival that the covariance spans and the next update solves from (0: none).',
                   (0.0, 1000.0)),
    'min_deciding': ('The fewest scan or 3D points that must decide a direction of the pose for the map\'s '
                     'information along it to count in full (fewer: it counts n_eff / min_deciding; 0: always).',
                     (0.0, 1e6)),
    'network_period': ('s, while the solve from the filter\'s prediction fits the window, how often tracking also asks '
                       'the network (its pose one more start; a fit can be a wrong local minimum); it is asked '
                       'at once when the solve does not fit or after a gap. 0: at every update.', (0.0, 1e6)),
    'max_places': ('A global result that more distinct places fit (positions 1 m apart) is no result: the pipeline '
                   'stays lost and dead-reckons until a view fits fewer (a narrow view of a building).', (1, 1000)),
    'cov_floor_xy': ('m, std added to a result with scan or 3D residuals: how well map and world agree at all; '
                     'the published position std stays at least this.',
                     (0.0, 100.0)),
    'cov_floor_yaw': ('rad, the same for the heading.', (0.0, 10.0)),
    'slice_z_min': ('m above base_link, lowest point of a 3D cloud solved against the occupancy map (as a scan, '
                    'with refine.scan_sigma) where the site has no point map.', (-100.0, 100.0)),
    'slice_z_max': ('m above base_link, the highest such point.', (-100.0, 100.0)),
}

REFINE_PARAMS: tuple[Param, ...] = tuple(
    Param(f'refine.{name}', getattr(_REFINE, name), desc, CONFIGURE, rng, target=f'refine.{name}')
    for name, (desc, rng) in REFINE_FIELDS.items())

#: Every parameter of the core, each setting one field of :class:`Config`.
CORE: tuple[Param, ...] = FRAME_PARAMS + BUFFER_PARAMS + SENSOR_PARAMS + MODEL_PARAMS + PIPELINE_PARAMS \
    + REFINE_PARAMS
_BY_NAME = {p.name: p for p in CORE}


# ------------------------------------------------------------------------------------------------ checks
def check_value(q: Param, v: Any) -> str | None:
    """Why ``v`` cannot be the value of parameter ``q`` (type, range, allowed values), or None."""
    want = type(q.default)
    if want is bool:
        ok = isinstance(v, bool)
    elif want is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif want is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    elif want is list:
        ok = isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)
    else:
        ok = isinstance(v, want)
    if not ok:
        kind = {bool: 'true or false', int: 'an integer', float: 'a finite number', str: 'a string',
                list: 'a list of strings'}.get(want, want)
        return f'{q.name}: {v!r} is not {kind} (e.g. {q.default!r})'
    if q.range is not None and not q.range[0] <= v <= q.range[1]:
        return f'{q.name}: {v!r} is out of range [{q.range[0]}, {q.range[1]}]'
    if q.choices is not None and v not in q.choices:
        return f'{q.name} must be one of {", ".join(q.choices)}; got {v!r}'
    frames = [v] if q.name.endswith('_frame') else list(v) if q.name.endswith('_frames') else []
    if any(not f.strip('/') for f in frames):
        return f'{q.name} must not be empty' if len(frames) == 1 else f'{q.name}: a frame name is empty ({v!r})'
    return None


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of dataclass ``cls`` from ``values`` (nested mappings for nested dataclasses); fields not given
    keep the class's default."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = _build(hints[f.name], v) if isinstance(v, Mapping) else v
    return cls(**kwargs)


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Core parameter values -> the nested mapping of their targets."""
    out: dict[str, Any] = {}
    for name, v in flat.items():
        q = _BY_NAME[name]
        *path, leaf = q.target.split('.')
        d = out
        for k in path:
            d = d.setdefault(k, {})
        d[leaf] = float(v) if isinstance(q.default, float) else tuple(v) if isinstance(q.default, list) else v
    return out


def _library_check(section: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (ValueError, TypeError) as e:
        raise ConfigError(f'{section}: {e}') from None


# ------------------------------------------------------------------------------------------------ the loader
def parameter_file_sections(path: str | Path, node_name: str) -> list[dict[str, Any]]:
    """The sections of a ROS parameter file that a node named ``node_name`` (root namespace) reads, in the order
    they apply (``/**``, then its own): each ``ros__parameters`` mapping with nested mappings as dotted names
    (``initial_pose: {x: 1.0}`` -> ``initial_pose.x``). Raises :class:`ConfigError` for a file that is not one."""
    import yaml  # noqa: PLC0415

    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f'parameter file {path}: {e}') from None
    if not isinstance(doc, dict):
        raise ConfigError(f'parameter file {path}: expected a mapping of node names to ros__parameters')
    return [flatten((doc.get(key) or {}).get('ros__parameters', {}))
            for key in ('/**', node_name, '/' + node_name)]


def flatten(section: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """A parameter file section with nested mappings (``initial_pose: {x: 1.0}``) as dotted names."""
    out: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def defaults() -> dict[str, Any]:
    """The default value of every core parameter, by name."""
    return {p.name: p.default for p in CORE}


def load_config(values: Mapping[str, Any] | None = None, *, yaml_file: str | Path | None = None,
                node_name: str = 'flm_localizer', overrides: Mapping[str, Any] | None = None) -> Config:
    """The checked configuration from, in increasing precedence: the defaults, the ROS parameter file
    ``yaml_file`` (as node ``node_name`` reads it), the flat parameter ``values`` (e.g. a node's current
    parameters) and ``overrides``. Names that are not core parameters are ignored in the file and in ``values``
    (they hold the nodes' own parameters too); an override must name a core parameter. Raises
    :class:`ConfigError` naming the parameter: unknown override, wrong type, out of range, not an allowed value,
    or refused by the library's own checks."""
    flat = defaults()
    for section in parameter_file_sections(yaml_file, node_name) if yaml_file is not None else ():
        flat.update({k: v for k, v in section.items() if k in flat})
    flat.update({k: v for k, v in (values or {}).items() if k in flat})
    for k, v in (overrides or {}).items():
        if k not in flat:
            raise ConfigError(f'{k}: not a parameter of the localizer core (see flm_core.config.CORE)')
        flat[k] = v
    for q in CORE:
        reason = check_value(q, flat[q.name])
        if reason is not None:
            raise ConfigError(reason)
    nested = _nested(flat)
    try:
        check_device(nested['model']['device'])
    except ValueError as e:
        raise ConfigError(str(e)) from None   # ("device must be ...")
    return Config(
        frames=FramesConfig(**nested['frames']),
        buffer=_library_check('buffer', lambda: _build(TimeBufferConfig, nested['buffer'])),
        sensors=_build(SensorsConfig, nested['sensors']),
        model=ModelConfig(**nested['model']),
        pipeline=_library_check('filter', lambda: _build(PipelineConfig, nested['pipeline'])),
        refine=_library_check('refine', lambda: _build(RefineConfig, nested['refine'])))


def to_values(cfg: Config) -> dict[str, Any]:
    """The flat parameter values of ``cfg`` (what :func:`load_config` takes back), by name."""
    out = {}
    for q in CORE:
        v: Any = cfg
        for k in q.target.split('.'):
            v = getattr(v, k)
        out[q.name] = list(v) if isinstance(q.default, list) else v
    return out


# ------------------------------------------------------------------------------------------------ factories
def load_pose_source(config: Config, log: Callable[[str], Any] | None = None) -> Any:
    """The pose source ``config.model`` names: the FLM model (torch or ONNX Runtime; solved against the
    measurements with ``model.refine``, as ``config.refine`` says), or a classical baseline. ``log``: where to say
    which model runs."""
    cfg = config.model
    if cfg.pose_source == 'flm':
        from flm_core.model.inference import DEFAULT_MODEL, Localizer  # noqa: PLC0415

        # A default pool of one thread per core oversubscribes a small busy CPU: a model step went from ~9 ms to
        # ~0.9 s in the fault runs. Inference threads are a parameter, 1 by default.
        loc = Localizer.load(cfg.path or str(DEFAULT_MODEL), device=cfg.device, fp16=cfg.fp16, backend=cfg.backend,
                             threads=max(1, cfg.threads), iterations=cfg.iterations, converge=cfg.converge,
                             global_candidates=cfg.global_candidates, global_refine=cfg.global_refine)
        if log is not None:
            log(f'model {loc.backend.path} on {loc.device} ({loc.backend.name})'
                + (', its poses solved against the measurements' if cfg.refine else ''))
        if cfg.refine:
            from flm_core.estimation.refine import Refined  # noqa: PLC0415

            return Refined(loc, config.refine)
        return loc
    from flm_core.estimation.baselines import make_pose_source  # noqa: PLC0415

    return make_pose_source(cfg.pose_source)


def make_rig(cfg: Config, lookup: Lookup) -> RigBuilder:
    """The sensor mounts from TF (``lookup(target, source)``): every UWB tag's frame, their height as configured."""
    h = cfg.sensors.uwb.tag_height
    return RigBuilder(lookup, cfg.frames.base, cfg.sensors.uwb.tag_frame, tag_height=h if h >= 0 else None,
                      tag_frames=cfg.sensors.uwb.extra_tag_frames)


def make_front_end(cfg: Config, site: Site | None) -> SensorFrontEnd:
    """The sensor front end: the time buffer, and the input checks (frames, the site's anchors, odometry bounds)."""
    expect = Expectations(odom_frame=cfg.frames.odom, base_frame=cfg.frames.base,
                          anchor_ids=frozenset(a.id for a in site.anchors) if site else frozenset(),
                          max_speed=cfg.sensors.odom.max_speed, max_yaw_rate=cfg.sensors.odom.max_yaw_rate)
    return SensorFrontEnd(cfg.buffer, expect)


def make_pipeline(cfg: Config, site: Site, source: Any, front: SensorFrontEnd | None = None,
                  rig: RigBuilder | None = None) -> Pipeline:
    """The localization pipeline (used live by the node and offline by flm-eval); ``front``: the sensor front end
    to use (default: :func:`make_front_end`); ``rig``: where the sensors sit (:func:`make_rig`): IMU samples are
    rotated by their mount from it."""
    front = front or make_front_end(cfg, site)
    if rig is not None:
        front.mount = rig.rotation
    return Pipeline(cfg.pipeline, site, source, front, list(cfg.sensors.enabled))
