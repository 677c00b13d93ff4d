"""The heading of a differential robot from its track: base_link does not slide sideways, so where it goes is where
it points (forward, or backward when reversing).

One UWB tag does not observe the heading, and without an IMU or odometry nothing else does; yet the tag's lever arm
(a tag 0.16 m off base_link on the LIAS trolley) needs it: under an unknown heading base_link can only be placed at
the tag, and the lever arm stays in the error (0.21 m RMSE of which ~0.16 m is the lever arm; with the true heading
0.09 m). A straight-line fit to the positions of the last ``window`` s gives the velocity; its direction is the
heading to the accuracy of the fit and of the side slip (``slip``: base_link off the wheel axle, castors). Errors
that the positions of one window share (range biases, multipath that changes slowly) cancel in the slope, which is
why the fit runs on positions and not on the filter's velocity (its position updates are inflated for exactly
those shared errors, so its velocity is poorly known).

No ROS imports; SI units; REP-103 (yaw counter-clockwise from the map's x axis).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

#: Robot kinematics, as AMCL's robot_model_type: only a differential robot's track tells its heading.
ROBOT_MODELS = ('differential', 'omnidirectional')
#: m: a UWB tag nearer base_link than this needs no heading to place base_link (the heading error moves it by
#: less than a range's noise), and the course is not used for it.
MIN_LEVER_ARM = 0.05


class Course:
    """Positions of base_link over the last ``window`` s (:meth:`add`) and the heading their straight-line fit
    gives (:meth:`heading`). ``min_speed``: m/s, the least speed whose direction is taken as a heading (a robot
    standing still or turning in place has none); ``slip``: rad, the std of the angle between the velocity and the
    heading (side slip); ``min_points``: positions the fit needs, spanning at least half the window."""

    def __init__(self, window: float = 1.0, min_speed: float = 0.1, slip: float = 0.1, min_points: int = 5) -> None:
        if not (window > 0 and min_speed > 0 and slip >= 0 and min_points >= 3):
            raise ValueError(f'Course: window and min_speed must be > 0, slip >= 0, min_points >= 3; got {window}, '
                             f'{min_speed}, {slip}, {min_points}')
        self.window = window
        self.min_speed = min_speed
        self.slip = slip
        self.min_points = min_points
        self._track: deque[tuple[float, float, float]] = deque()

    def clear(self) -> None:
        """Forget the track (a relocalization: the old positions may be somewhere else)."""
        self._track.clear()

    def add(self, t: float, xy: np.ndarray) -> None:
        """Position ``xy`` (2,) m of base_link in the map at stamp ``t`` (s); a stamp not after the newest starts
        the track again (time went back, or the same window twice)."""
        if self._track and t <= self._track[-1][0]:
            self._track.clear()
        self._track.append((float(t), float(xy[0]), float(xy[1])))
        while self._track[0][0] < t - self.window:
            self._track.popleft()

    def velocity(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(mean stamp s, velocity (2,) m/s, its covariance (2, 2)) of the straight-line fit to the track, or None
        while the track is too short (fewer than ``min_points`` positions, or spanning less than half the window)."""
        if len(self._track) < self.min_points or self._track[-1][0] - self._track[0][0] < 0.5 * self.window:
            return None
        a = np.asarray(self._track)
        dt = a[:, 0] - a[:, 0].mean()
        sxx = float(dt @ dt)
        v = dt @ (a[:, 1:] - a[:, 1:].mean(0)) / sxx
        res = a[:, 1:] - a[:, 1:].mean(0) - np.outer(dt, v)
        s2 = float(np.sum(res * res)) / (2 * (len(a) - 2))   # per-axis residual variance, pooled over x and y
        return float(a[:, 0].mean()), v, np.eye(2) * s2 / sxx

    def heading(self, near: float | None = None) -> tuple[float, float, float] | None:
        """(stamp s, heading rad, variance rad^2) the track gives, or None (too short, too slow, or a speed within
        three stds of zero). The stamp is the track's mean stamp: a straight-line fit's slope is the velocity there
        (on a turn, the newest stamp's heading would lag by half the window's turn). ``near``: a heading already
        known (rad): the course's reverse when that is closer (a robot backing up); None: forward."""
        fit = self.velocity()
        if fit is None:
            return None
        stamp, v, cov = fit
        speed = math.hypot(float(v[0]), float(v[1]))
        var_v = float(np.trace(cov)) / 2.0
        if speed < self.min_speed or speed * speed < 9.0 * var_v:
            return None
        yaw = math.atan2(float(v[1]), float(v[0]))
        if near is not None and abs(math.remainder(near - yaw, 2 * math.pi)) > 0.5 * math.pi:
            yaw = math.remainder(yaw + math.pi, 2 * math.pi)
        return stamp, yaw, var_v / (speed * speed) + self.slip ** 2
