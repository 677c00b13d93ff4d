"""The systematic heading drift of wheel odometry while a filter dead-reckons on it.

Unequal wheel radii (or a wrong track width on a straight path) turn the odometry's heading by a fixed amount per
metre driven, ``k`` rad/m: a bias, not noise. A filter that models the odometry's heading error as a random walk
(variance growing with the distance) underestimates it once it dead-reckons for more than a metre or two: the bias
grows the heading error linearly with the distance d, and the position error it causes as d^2 / 2. This module
tracks how the pose at the end of a dead-reckoned path depends on ``k`` (a Schmidt-style consider parameter: never
estimated, only accounted for) so that the published covariance can include k's share::

    J = d pose / d k  (3,): m per (rad/m) for x, y; m (rad per rad/m) for yaw
    cov += sigma_k^2 J J^T

A segment of signed forward length s (backing up: negative) driven at heading yaw adds s to J's heading part (the
heading error grows by k * s) and moves its position part by s * (-sin yaw, cos yaw) * (the heading part at the
segment's middle). A pose measurement fused on the way shrinks each part of J as a scalar Kalman update would
(:meth:`observe`: a map match that sees the heading takes nearly all of it away, one UWB tag none of the heading's).
"""
from __future__ import annotations

import math

import numpy as np


class HeadingDrift:
    """The sensitivity of a dead-reckoned pose to the odometry's heading drift per metre (see the module
    docstring). Poses are (x, y, yaw) in m, m, rad (REP-103)."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None     # (3,) the path's newest pose
        self._J = np.zeros(3)

    def restart(self, pose: np.ndarray) -> None:
        """The heading is known at ``pose``: a new path starts there."""
        self._last = np.array(pose, dtype=np.float64).reshape(3)
        self._J = np.zeros(3)

    def add(self, pose: np.ndarray) -> None:
        """The path goes on to ``pose`` (the filter's estimate a step later; the first pose only starts it)."""
        pose = np.asarray(pose, dtype=np.float64).reshape(3)
        if self._last is None:
            self.restart(pose)
            return
        self._J = self.sensitivity(pose)
        self._last = pose.copy()

    def observe(self, pose: np.ndarray, cov: np.ndarray, sigma: float) -> None:
        """A pose measurement of covariance ``cov`` (3, 3) was fused and the filter now stands at ``pose`` (a
        correction, not travel): each part of J shrinks by cov_ii / (cov_ii + (sigma J_i)^2), the share of the
        drift's error a measurement of that variance leaves (sigma: rad/m, the drift's std)."""
        var = np.square(sigma * self._J)
        r = np.diag(np.asarray(cov, dtype=np.float64))
        with np.errstate(invalid='ignore', divide='ignore'):
            self._J = np.where(var > 0, self._J * r / (r + var), 0.0)
        self._last = np.array(pose, dtype=np.float64).reshape(3)

    def sensitivity(self, pose: np.ndarray) -> np.ndarray:
        """J (3,) at ``pose``, the path's newest pose followed by one more segment to it (not stored)."""
        if self._last is None:
            return np.zeros(3)
        x, y, yaw = self._last
        c, s = math.cos(yaw), math.sin(yaw)
        d = (float(pose[0]) - x) * c + (float(pose[1]) - y) * s      # signed forward length of the segment
        mid = self._J[2] + 0.5 * d
        return np.array([self._J[0] - s * d * mid, self._J[1] + c * d * mid, self._J[2] + d])

    def covariance(self, pose: np.ndarray, sigma: float) -> np.ndarray:
        """(3, 3) the share of a drift of std ``sigma`` rad/m in the covariance of ``pose`` (the path's end)."""
        J = self.sensitivity(pose)
        return sigma * sigma * np.outer(J, J)
