"""Typed sensor measurements: the common currency between ROS messages, generated data and the model.

No ROS imports. Stamps are float seconds (the ROS time of the message header, sim or wall), positions metres,
angles radians, frames REP-103. Array shapes are given per field; float fields are float32 for bulk data
(scans, clouds, images) and float64 for poses and covariances.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LaserScan2D:
    """A planar scan. ``ranges`` keeps REP-117 semantics: +inf no return within range_max, -inf too close,
    NaN erroneous; values outside [range_min, range_max] are invalid too (see :meth:`valid`)."""

    stamp: float
    frame_id: str
    angles: np.ndarray           # (N,) float32 rad, beam directions in the sensor frame
    ranges: np.ndarray           # (N,) float32 m
    range_min: float
    range_max: float
    intensities: np.ndarray | None = None  # (N,) float32 or None
    time_increment: float = 0.0  # s between beams
    scan_time: float = 0.0       # s between scans

    def valid(self) -> np.ndarray:
        """(N,) bool: finite ranges within [range_min, range_max]."""
        r = self.ranges
        return np.isfinite(r) & (r >= self.range_min) & (r <= self.range_max)

    def points(self) -> np.ndarray:
        """(M, 2) float32 xy in the sensor frame of the valid beams."""
        m = self.valid()
        r, a = self.ranges[m], self.angles[m]
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=-1).astype(np.float32)


@dataclass
class PointCloud:
    """A 3D point cloud. Organised clouds keep (height, width); unorganised ones have height 1.
    Invalid points (NaN xyz) are kept, as in ROS, and dropped by :meth:`finite`."""

    stamp: float
    frame_id: str
    xyz: np.ndarray                         # (N,3) float32 m, N = height*width, row-major
    intensity: np.ndarray | None = None     # (N,) float32
    ring: np.ndarray | None = None          # (N,) uint16 laser ring index
    time: np.ndarray | None = None          # (N,) float32 s, per-point time relative to stamp
    height: int = 1
    width: int = 0

    def __post_init__(self) -> None:
        if self.width == 0:
            self.width = int(self.xyz.shape[0])

    def finite(self) -> np.ndarray:
        """(N,) bool mask of points whose xyz are all finite."""
        return np.all(np.isfinite(self.xyz), axis=-1)


@dataclass
class CameraIntrinsics:
    """Pinhole model of a camera (``sensor_msgs/CameraInfo``)."""

    width: int
    height: int
    K: np.ndarray                        # (3,3) float64
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))  # distortion coefficients
    distortion_model: str = 'plumb_bob'
    frame_id: str = ''

    def rays(self) -> np.ndarray:
        """(H, W, 3) float32 unit-z rays (x/z, y/z, 1) of each pixel centre, optical frame (REP-103 camera)."""
        u, v = np.meshgrid(np.arange(self.width) + 0.0, np.arange(self.height) + 0.0)
        x = (u - self.K[0, 2]) / self.K[0, 0]
        y = (v - self.K[1, 2]) / self.K[1, 1]
        return np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float32)


@dataclass
class Image:
    """A camera image. ``data`` is (H, W) for mono8/16UC1/32FC1 and (H, W, 3) uint8 RGB for rgb8/bgr8
    (bgr8 is converted to RGB order). Depth encodings are converted to metres by :meth:`depth_m`."""

    stamp: float
    frame_id: str
    encoding: str                        # the ROS encoding the data came from
    data: np.ndarray

    def depth_m(self) -> np.ndarray:
        """(H, W) float32 depth in metres (16UC1 is millimetres, 32FC1 metres); 0/NaN -> NaN."""
        if self.encoding == '16UC1':
            d = self.data.astype(np.float32) * 1e-3
            d[self.data == 0] = np.nan
            return d
        if self.encoding == '32FC1':
            d = self.data.astype(np.float32, copy=True)
            d[~(d > 0)] = np.nan
            return d
        raise ValueError(f'image encoding {self.encoding!r} is not a depth encoding (16UC1 or 32FC1)')


@dataclass
class ImuSample:
    """One IMU reading (``sensor_msgs/Imu``). ``orientation`` is None when the sender marks it unknown
    (orientation_covariance[0] == -1)."""

    stamp: float
    frame_id: str
    angular_velocity: np.ndarray         # (3,) float64 rad/s
    linear_acceleration: np.ndarray      # (3,) float64 m/s^2 (includes gravity, REP-145)
    orientation: np.ndarray | None = None  # (4,) float64 quaternion (x, y, z, w)
    orientation_covariance: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    angular_velocity_covariance: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    linear_acceleration_covariance: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))


@dataclass
class OdometrySample:
    """One ``nav_msgs/Odometry``: the pose of child_frame_id in frame_id and its twist in child_frame_id."""

    stamp: float
    frame_id: str
    child_frame_id: str
    position: np.ndarray                 # (3,) float64 m
    orientation: np.ndarray              # (4,) float64 (x, y, z, w)
    linear_velocity: np.ndarray          # (3,) float64 m/s
    angular_velocity: np.ndarray         # (3,) float64 rad/s
    pose_covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
    twist_covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))


@dataclass
class RangeSample:
    """One UWB range (``sensor_msgs/Range``, one message per anchor; ``anchor_id`` is header.frame_id).
    ``tag_frame``: the TF frame of the tag on the robot that measured it (a robot may carry several tags, each
    publishing on its own topic); '' = the configured primary tag (``Rig.uwb_frame``)."""

    stamp: float
    anchor_id: str
    range: float                         # m (may be inf/NaN when the sender says so; see valid())
    min_range: float = 0.0
    max_range: float = float('inf')
    field_of_view: float = 2 * np.pi
    tag_frame: str = ''

    def valid(self) -> bool:
        return bool(np.isfinite(self.range) and self.min_range <= self.range <= self.max_range)


@dataclass
class PoseWithCovariance:
    """A pose with 6x6 covariance (``geometry_msgs/PoseWithCovarianceStamped``), order x y z roll pitch yaw."""

    stamp: float
    frame_id: str
    position: np.ndarray                 # (3,) float64
    orientation: np.ndarray              # (4,) float64 (x, y, z, w)
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
