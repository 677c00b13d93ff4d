"""The parts of AMCL's ROS interface that flm_localizer serves besides its pose, as message-level helpers.

* ``nav2_msgs`` (``SetInitialPose``, ``ParticleCloud``, ``Particle``): Nav2's package where it is installed, else the
  subset this repository generates (``ros_interfaces/nav2_msgs``); :data:`NAV2_MSGS` is False where neither is.
* :func:`cloud_message`: the poses the pipeline is tracking (:meth:`flm_core.pipeline.Pipeline.hypotheses`: the
  filter's and, after an ambiguous global localization, its rivals', with weights) as AMCL's ``particle_cloud``,
  ``nav2_msgs/ParticleCloud`` or ``geometry_msgs/PoseArray``.
* :func:`twist`: the filter's body twist with its covariance, for ``nav_msgs/Odometry``.
* :func:`save_pose_file` / :func:`load_pose_file`: the saved pose in AMCL's file format.

The twist reads the pipeline's filter under ``Pipeline.lock``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Pose, PoseArray

from flm_core.estimation.eskf import BG, DIM, body_velocity_model
from flm_core.geometry import wrap_angle_float, yaw_to_quat

try:  # Nav2's messages, or the subset generated from ros_interfaces/nav2_msgs
    from nav2_msgs.msg import Particle, ParticleCloud
    from nav2_msgs.srv import SetInitialPose
    NAV2_MSGS = True
except ImportError:
    Particle = ParticleCloud = SetInitialPose = None  # type: ignore[assignment,misc]
    NAV2_MSGS = False

#: Variance given to a twist component the filter has no covariance for (m^2/s^2 or rad^2/s^2): unknown, not zero.
UNKNOWN_VAR = 1e6


def _pose(p: np.ndarray) -> Pose:
    out = Pose()
    out.position.x, out.position.y = float(p[0]), float(p[1])
    q = yaw_to_quat(float(p[2]))
    out.orientation.x, out.orientation.y, out.orientation.z, out.orientation.w = (float(v) for v in q)
    return out


def cloud_message(kind: str, header: Any, poses: np.ndarray, weights: np.ndarray) -> Any:
    """``kind`` 'particle_cloud' (nav2_msgs/ParticleCloud, with weights) or 'pose_array' (geometry_msgs/PoseArray)
    of ``poses`` (K, 3) with ``weights`` (K,)."""
    if kind == 'particle_cloud':
        return ParticleCloud(header=header, particles=[Particle(pose=_pose(p), weight=float(w))
                                                       for p, w in zip(poses, weights)])
    return PoseArray(header=header, poses=[_pose(p) for p in poses])


def cloud_type(kind: str) -> tuple[str, type]:
    """The message the ``particle_cloud_type`` parameter names: ('particle_cloud' | 'pose_array', class). 'auto' is
    ParticleCloud where nav2_msgs is importable. Raises ValueError for 'particle_cloud' without nav2_msgs."""
    if kind == 'auto':
        kind = 'particle_cloud' if NAV2_MSGS else 'pose_array'
    if kind == 'particle_cloud' and not NAV2_MSGS:
        raise ValueError("particle_cloud_type 'particle_cloud' needs nav2_msgs (Nav2's, or the one scripts/setup.sh "
                         "generates); use 'pose_array' or 'auto'")
    return kind, (ParticleCloud if kind == 'particle_cloud' else PoseArray)


def twist(pipe: Any, t: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(twist (3,) vx, vy in base_link (m/s) and wz (rad/s), covariance (3, 3)) of the pipeline's filter at stamp t,
    or None before the first pose. vx, vy and their covariance come from the filter's velocity state (rotated into
    base_link with its heading, first order). wz: IMU-driven filter: the gyro rate minus the estimated bias, with the
    bias variance plus the gyro's white noise over one propagation step (``max_step``); odometry-driven filter: the
    held odometry yaw rate, which the filter has no covariance for (:data:`UNKNOWN_VAR`)."""
    with pipe.lock:
        filt = pipe.filter
        if not filt.initialized:
            return None
        x, P = filt.state_at(t)
        tw = filt.twist_at(t)
        cfg = filt.config
    _, H = body_velocity_model(x)            # (2, 8): d(body velocity) / d(error state)
    J = np.zeros((3, DIM))
    J[:2] = H
    cov = J @ P @ J.T
    if cfg.process == 'imu':
        j = np.zeros(DIM)
        j[BG] = -1.0
        cov[2, :2] = cov[:2, 2] = (H @ P @ j)
        cov[2, 2] = float(P[BG, BG]) + cfg.gyro_noise ** 2 / cfg.max_step
    else:
        cov[2, 2] = UNKNOWN_VAR
    return tw, 0.5 * (cov + cov.T)


def save_pose_file(path: str | Path, stamp: float, frame_id: str, pose: np.ndarray) -> None:
    """Write ``pose`` (3,) x, y, yaw in ``frame_id`` at ``stamp`` (s) in AMCL's saved-pose format, atomically (a
    temporary file renamed over it: a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(f'# flm_localizer saved pose (AMCL format)\ntimestamp: {stamp:.9f}\nframe_id: {frame_id}\n'
                   f'x: {float(pose[0]):.6f}\ny: {float(pose[1]):.6f}\nz: 0.0\nyaw: {float(pose[2]):.6f}\n')
    os.replace(tmp, path)


def load_pose_file(path: str | Path, frame_id: str) -> tuple[np.ndarray, float]:
    """(pose (3,) x, y, yaw, stamp s or 0 when the file has none) from a saved-pose file (AMCL's format: ``key:
    value`` lines, ``#`` comments; ``timestamp`` and ``frame_id`` optional). Raises ValueError naming the problem:
    unreadable, a missing or non-finite x/y/yaw, another frame than ``frame_id``."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f'{path}: {e.strerror or e}') from None
    kv: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if ':' in line:
            k, v = line.split(':', 1)
            kv[k.strip()] = v.strip()
    if kv.get('frame_id', frame_id).lstrip('/') != frame_id:
        raise ValueError(f'{path}: the pose is in frame {kv["frame_id"]!r}, not {frame_id!r}')
    try:
        pose = np.array([float(kv['x']), float(kv['y']), wrap_angle_float(float(kv['yaw']))])
        stamp = float(kv.get('timestamp', 0.0))
    except KeyError as e:
        raise ValueError(f'{path}: no {e.args[0]!r} in the file') from None
    except ValueError as e:
        raise ValueError(f'{path}: {e}') from None
    if not (np.all(np.isfinite(pose)) and math.isfinite(stamp)):
        raise ValueError(f'{path}: the pose is not finite')
    return pose, stamp
