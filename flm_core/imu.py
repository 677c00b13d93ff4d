"""IMU samples as the planar localizer needs them: in a level frame that heads with base_link, gravity known.

Real robots mount IMUs every which way (z down on many robots and drones, rotated on a bracket) and drive on
tilted floors, so the raw ``sensor_msgs/Imu`` axes are not base_link's, and on a tilted platform gravity leaks
into the horizontal specific force (1.3-1.75 m/s^2 RMS on one real log). :class:`ImuLeveler` turns a sample of
any IMU frame into one in the *level base frame*: z up along gravity, x base_link's heading projected on the
horizontal plane, y completing the right-handed frame. In it the x, y specific force is the horizontal linear
acceleration and z holds +g when still (REP-145: accelerometers measure specific force), and the z rate is the
yaw rate about the vertical.

Up (the direction opposite to gravity) comes, per IMU frame, from

* the message's orientation when the driver gives one (REP-145: the IMU frame's attitude in a gravity-aligned
  frame; its yaw reference does not matter here) and it agrees with gravity, else
* an attitude estimate of its own: the gyro propagates the up vector and the accelerometer pulls it back with
  time constant ``tau`` whenever the specific force is close to 1 g (a complementary filter, as Mahony's without
  the yaw part).

The rotation of the IMU frame into base_link comes from TF (the caller's ``mount``). With the mount known and no
orientation in the message, base_link is taken as level and the mount alone is applied: an attitude estimate from
the accelerometer cannot tell a tilt from the robot's own acceleration, and absorbing the accelerations into a
tilt made IMU dead reckoning worse on level floors. Without the mount the sample is levelled by gravity alone (the
estimate) and the heading of its x axis is taken as base_link's.

No ROS imports; SI units; quaternions (x, y, z, w).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from flm_core.geometry import quat_rotate
from flm_core.measurements import ImuSample

GRAVITY = 9.80665  # m/s^2, standard gravity


@dataclass(frozen=True)
class LevelerConfig:
    """tau: s, time constant with which the accelerometer corrects the propagated up vector (no orientation in the
    messages); accel_gate: relative deviation of |specific force| from g above which a sample does not correct
    (the robot is accelerating); max_dt: s, a gap after which the up vector restarts from the accelerometer;
    max_disagreement: rad, a message orientation whose up differs more than this from the gravity estimate is not
    used (counted in :attr:`ImuLeveler.disagreements`)."""

    tau: float = 5.0
    accel_gate: float = 0.15
    max_dt: float = 1.0
    max_disagreement: float = 0.5

    def __post_init__(self) -> None:
        for name in ('tau', 'accel_gate', 'max_dt', 'max_disagreement'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f'LevelerConfig.{name} must be a finite number > 0, got {v!r}')


def tilt_rate(angular_velocity: np.ndarray) -> float:
    """rad/s, how fast the platform rolls or pitches: the magnitude of the gyro's x, y rate ((3,) rad/s, base_link
    or a levelled IMU frame), what the filter's accelerometer bias walk follows (``EskfConfig.accel_tilt_time``)."""
    return math.hypot(float(angular_velocity[0]), float(angular_velocity[1]))


def _matrix(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in np.asarray(q, float) / np.linalg.norm(q))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def level_frame(up: np.ndarray) -> np.ndarray:
    """(3, 3) rows = the level frame's x, y, z axes in base_link, for ``up`` (3,) the unit up vector in base_link:
    z = up, x = base_link's x projected on the horizontal plane (its y when x is vertical)."""
    z = up / np.linalg.norm(up)
    ref = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.95 else np.array([0.0, 1.0, 0.0])
    x = ref - ref.dot(z) * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


@dataclass
class _Attitude:
    up: np.ndarray            # (3,) unit up vector in the IMU frame
    stamp: float


@dataclass
class ImuLeveler:
    """Levels IMU samples (see the module docstring). One instance per input stream; it keeps an up estimate per
    IMU frame."""

    config: LevelerConfig = field(default_factory=LevelerConfig)
    base_frame: str = 'base_link'
    disagreements: int = 0    # samples whose orientation contradicted gravity (not used for levelling)
    _att: dict[str, _Attitude] = field(default_factory=dict)

    def up(self, m: ImuSample, start: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """(unit up vector (3,) in the sample's IMU frame at its stamp, whether it is the message's orientation);
        updates the estimate. ``start``: the up vector to start the estimate from (base_link's z when the mount is
        known), else the first sample's specific force."""
        a = np.asarray(m.linear_acceleration, float)
        na = float(np.linalg.norm(a))
        att = self._att.get(m.frame_id)
        dt = None if att is None else float(m.stamp) - att.stamp
        if att is None or dt is None or not (0.0 <= dt <= self.config.max_dt):
            up = start if start is not None else (a / na if na > 1e-6 else np.array([0.0, 0.0, 1.0]))
        else:
            w = np.asarray(m.angular_velocity, float)
            up = att.up - dt * np.cross(w, att.up)        # a world-fixed vector seen from a frame rotating at w
            if na > 1e-6 and abs(na - GRAVITY) <= self.config.accel_gate * GRAVITY:
                up = up + min(dt / self.config.tau, 1.0) * (a / na - up)
            up /= np.linalg.norm(up)
        if m.orientation is not None:
            # the orientation rotates IMU-frame vectors into a gravity-aligned frame, where up is +z; a driver that
            # fills in a constant quaternion it does not estimate (identity on a z-down IMU) disagrees with gravity
            q = np.asarray(m.orientation, float)
            q = q / np.linalg.norm(q)
            up_o = quat_rotate(np.array([-q[0], -q[1], -q[2], q[3]]), np.array([0.0, 0.0, 1.0]))
            if float(up_o.dot(up)) >= math.cos(self.config.max_disagreement):
                self._att[m.frame_id] = _Attitude(up_o, float(m.stamp))
                return up_o, True
            self.disagreements += 1
        self._att[m.frame_id] = _Attitude(up, float(m.stamp))
        return up, False

    def level(self, m: ImuSample, mount: np.ndarray | None) -> ImuSample:
        """The sample in the level base frame (frame_id = ``base_frame``, no orientation, covariances rotated).
        ``mount``: (4,) quaternion of the IMU frame in base_link (from TF), None when unknown (taken as identity:
        levelled by gravity alone)."""
        R_bi = np.eye(3) if mount is None else _matrix(mount)
        if mount is not None and m.orientation is None:
            return self._rotated(m, R_bi)                # the mount alone: base_link is taken as level
        up_i, given = self.up(m, None if mount is None else R_bi[2].copy())   # R_bi^T e_z: base z in the IMU frame
        if mount is not None and not given:
            return self._rotated(m, R_bi)                # an orientation that contradicts gravity: the mount alone
        return self._rotated(m, level_frame(R_bi @ up_i) @ R_bi)   # IMU frame -> level base frame

    def _rotated(self, m: ImuSample, R: np.ndarray) -> ImuSample:
        rot = (lambda c: R @ np.asarray(c, float) @ R.T)
        return replace(m, frame_id=self.base_frame,
                       angular_velocity=R @ np.asarray(m.angular_velocity, float),
                       linear_acceleration=R @ np.asarray(m.linear_acceleration, float),
                       orientation=None, orientation_covariance=np.zeros((3, 3)),
                       angular_velocity_covariance=rot(m.angular_velocity_covariance),
                       linear_acceleration_covariance=rot(m.linear_acceleration_covariance))
