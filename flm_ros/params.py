"""Parameters of the FLM-ROS nodes: one table, the single source of defaults, types and descriptions.

``config/flm.yaml`` sets values (under ``/**: ros__parameters:`` so every node reads the same file); nodes
declare from this table with descriptors, so ``ros2 param describe`` explains each one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False  # needs a reconfigure (deactivate/cleanup/configure) to change


SENSORS = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')

COMMON: tuple[Param, ...] = (
    Param('map_frame', 'map', 'Global frame (REP-105).', True),
    Param('odom_frame', 'odom', 'Odometry frame (REP-105).', True),
    Param('base_frame', 'base_link', 'Robot base frame (REP-105).', True),
    Param('site_file', '', 'Site file (YAML: map_server map + UWB anchors [+ point map]). Empty: none.', True),
    Param('buffer.window', 2.0, 'Seconds of every sensor stream kept for the model.'),
    Param('buffer.max_lateness', 0.5, 'Seconds a message may arrive behind the newest stamp before it is dropped.'),
    Param('buffer.jump_back', 1.0, 'Seconds the clock may go back before the buffers reset (bag loop).'),
    Param('buffer.max_future', 1.0, 'Seconds a stamp may be ahead of the node clock before it is rejected.'),
    Param('buffer.max_per_stream', 4096, 'Hard bound on buffered messages per stream.'),
    Param('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.'),
    *(p for s, topic in (
        ('scan', '/scan'), ('points', '/points'), ('depth', '/camera/depth/image_raw'), ('uwb', '/uwb/ranges'),
        ('imu', '/imu/data'), ('odom', '/odom'))
      for p in (
        Param(f'sensors.{s}.enabled', True, f'Subscribe to the {s} stream (a missing sensor is normal).', True),
        Param(f'sensors.{s}.topic', topic, f'Topic of the {s} stream.', True),
    )),
    Param('sensors.uwb.tag_frame', 'uwb_tag', 'Frame of the UWB tag on the robot (its mount comes from TF).', True),
    Param('sensors.uwb.tag_height', float('nan'), 'm, height of the UWB tag above base_frame, overriding TF; NaN '
          '(default): from TF, looked up again at every update, so a hand-held or flying tag follows /tf.', True),
    Param('sensors.odom.max_speed', 5.0, 'm/s: odometry twists and pose increments faster than this are rejected '
          '(counted as implausible_twist / implausible_increment).', True),
    Param('sensors.odom.max_yaw_rate', 6.0, 'rad/s: the same bound for rotation.', True),
    Param('sensors.depth.camera_info_topic', '/camera/depth/camera_info', 'CameraInfo of the depth camera.', True),
)


def declare(node: Node, table: tuple[Param, ...] = COMMON) -> None:
    """Declare every parameter of ``table`` on ``node`` with its default and description."""
    for p in table:
        if not node.has_parameter(p.name):
            node.declare_parameter(p.name, p.default,
                                   ParameterDescriptor(description=p.description, read_only=False))


def values(node: Node, table: tuple[Param, ...] = COMMON) -> dict[str, Any]:
    """Current values of the table's parameters, by name."""
    return {p.name: node.get_parameter(p.name).value for p in table}

#: Parameters of the localizer node (in addition to COMMON). ``read_only`` ones are refused while active.
LOCALIZER: tuple[Param, ...] = (
    Param('autostart', True, 'Configure and activate at start-up (false under nav2_lifecycle_manager).', True),
    Param('bond_heartbeat_period', 0.1, 's between heartbeats of the bond nav2_lifecycle_manager holds with the '
          'node while it is active, as Nav2\'s own nodes (bondpy, or the bond messages; 0: no bond).', True),
    Param('model_path', '', 'Model file (NAME.pt or NAME.onnx); empty: the model shipped with the package.', True),
    Param('device', 'cpu', "Inference device: 'cpu', 'cuda' or 'auto' (cuda when available).", True),
    Param('fp16', False, 'Half-precision inference (CUDA only).', True),
    Param('inference_backend', 'auto', "Model back end: 'torch' (TorchScript file), 'onnx' (ONNX Runtime, NAME.onnx "
          "beside model_path) or 'auto' (torch where installed, else onnx).", True),
    Param('inference_threads', 1, 'CPU threads for the model (intra-op); more only on an otherwise idle CPU.', True),
    Param('model.iterations', 2, 'Most model passes per tracking update, each from the pose the previous one gave.',
          True),
    Param('model.converge', 1.0, 'Stop those passes early once the correction is within this many standard '
          "deviations of the model's own covariance (0: always run model.iterations).", True),
    Param('model.global_candidates', 128, 'Pre-ranked poses the model scores in a global localization (more: '
          'slower, finds the robot more often in repetitive buildings).', True),
    Param('pose_source', 'flm', "What produces poses: 'flm' (the model), or a classical baseline: 'icp', 'uwb'.",
          True),
    Param('update_rate', 10.0, 'Hz of the output (pose, odometry, map->odom: the filter at the newest sensor stamp) '
          'and, at most, of model updates (the model runs beside the output; a slow one skips ticks).', True),
    Param('transform_tolerance', 0.5, 's map->odom is post-dated (as AMCL), so lookups slightly ahead succeed.'),
    Param('tf_broadcast', True, 'Publish map->odom on /tf.'),
    Param('pose_topic', 'amcl_pose', 'PoseWithCovarianceStamped output (reliable, transient local, depth 1).', True),
    Param('odometry_topic', 'flm/odometry', 'nav_msgs/Odometry output (pose of base_frame in map_frame).', True),
    Param('path_topic', 'flm/path', 'nav_msgs/Path of the estimates (visualisation).', True),
    Param('markers_topic', 'flm/markers', 'MarkerArray: anchors and the uncertainty ellipse.', True),
    Param('path_length', 2000, 'Poses kept in the published path.'),
    Param('path_period', 1.0, 's between path messages (a 2000-pose path takes ~7 ms to serialise).'),
    Param('set_initial_pose', False, 'Start from initial_pose.* instead of global localization (as AMCL).', True),
    Param('initial_pose.x', 0.0, 'm, initial pose in map_frame when set_initial_pose is true.', True),
    Param('initial_pose.y', 0.0, 'm', True),
    Param('initial_pose.yaw', 0.0, 'rad', True),
    Param('initial_pose.std_xy', 0.5, 'm, standard deviation of the initial position.', True),
    Param('initial_pose.std_yaw', 0.3, 'rad, standard deviation of the initial heading.', True),
    Param('global_on_start', True, 'Localize globally when no initial pose is given (at start and after time '
          'jumps back); false: wait for /initialpose.', True),
    Param('min_global_data', 1.0, 's of buffered exteroceptive data (scan, cloud, depth, UWB) before a global '
          'localization attempt.', True),
    Param('global_max_std', 1.0, 'm, a global result is accepted when its position std is below this.', True),
    Param('lost_after_rejections', 5, 'Consecutive gated model poses that mean lost (then relocalize).', True),
    Param('lost_std', 3.0, 'm of position std that means lost (then relocalize).', True),
    Param('blackout', 1.0, 's without a message of any sensor after which no pose is published until the sensors '
          'have re-anchored the estimate (a model pose accepted again, or lost).', True),
    Param('max_hypotheses', 4, 'Poses kept after an ambiguous global localization (a symmetric building), each '
          'tracked until the model scores one clearly ahead; the covariance spans them meanwhile. 1: the best only.',
          True),
    Param('hypothesis_lead', 3.0, 'Lead in accumulated model log-score that decides between those hypotheses.', True),
    Param('filter.process', 'auto', "Filter process model: 'auto' (IMU-driven from the first IMU sample on, "
          "else odometry-driven from the first odometry sample, else constant velocity), 'odom', 'imu', 'cv'.",
          True),
)


def from_yaml(path: str, node_name: str, table: tuple[Param, ...]) -> dict[str, Any]:
    """The values a node named ``node_name`` gets from a ROS parameter file (``/**`` then its own section), on top
    of the table's defaults: what ``--params-file`` gives the node, for offline tools that run without one."""
    import yaml  # noqa: PLC0415

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    out = {p.name: p.default for p in table}
    for key in ('/**', node_name, '/' + node_name):
        section = (doc.get(key) or {}).get('ros__parameters', {})
        out.update({k: v for k, v in section.items() if k in out})
    return out
