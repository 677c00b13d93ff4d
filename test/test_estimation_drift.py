"""The odometry's heading drift per metre (flm_core.estimation.drift): the sensitivity of a dead-reckoned pose to it
against the pose integrated with and without the drift, and what a fused pose measurement leaves of it."""
from __future__ import annotations

import math

import numpy as np

from flm_core.estimation.drift import HeadingDrift


def _drive(k: float, legs: list[tuple[float, float]], dt: float = 0.01) -> np.ndarray:
    """(N, 3) poses of a differential robot dead-reckoned through ``legs`` ((speed m/s, yaw rate rad/s), 1 s each)
    by odometry whose heading turns by k rad per metre driven (backing up: the other way)."""
    x = np.zeros(3)
    out = [x.copy()]
    for v, w in legs:
        for _ in range(int(round(1.0 / dt))):
            x = x + np.array([v * dt * math.cos(x[2]), v * dt * math.sin(x[2]), w * dt + k * v * dt])
            out.append(x.copy())
    return np.array(out)


def test_the_sensitivity_is_the_derivative_of_the_dead_reckoned_pose():
    """A path with turns and a stretch backing up, followed at 10 Hz: J matches (pose with drift k - pose without)
    / k for a small k to 2 %, straight ahead it is (-sin, cos) d^2 / 2 and d, and the covariance is sigma^2 J J^T."""
    legs = [(0.5, 0.0), (0.5, 0.4), (0.8, -0.2), (-0.4, 0.0), (0.6, 0.3), (0.6, 0.0)]
    k = 1e-5
    clean, drifted = _drive(0.0, legs), _drive(k, legs)
    drift = HeadingDrift()
    for p in clean[::10]:
        drift.add(p)
    J = drift.sensitivity(clean[-1])
    np.testing.assert_allclose(J, (drifted[-1] - clean[-1]) / k, rtol=0.02, atol=1e-3)
    straight = HeadingDrift()
    straight.restart(np.array([1.0, 2.0, 0.3]))
    d = 3.0
    J = straight.sensitivity(np.array([1.0 + d * math.cos(0.3), 2.0 + d * math.sin(0.3), 0.3]))
    np.testing.assert_allclose(J, [-math.sin(0.3) * d * d / 2, math.cos(0.3) * d * d / 2, d], atol=1e-12)
    np.testing.assert_allclose(straight.covariance(np.array([1.0 + d * math.cos(0.3), 2.0 + d * math.sin(0.3), 0.3]),
                                                   0.05), 0.05 ** 2 * np.outer(J, J), atol=1e-15)


def test_a_fused_pose_takes_away_what_it_observes():
    """A map match (position and heading to a few cm / mrad) leaves almost nothing of a 4 m path's drift; a pose
    that does not observe the heading (one UWB tag) leaves its heading part; and a new path starts at zero."""
    def walked() -> HeadingDrift:
        d = HeadingDrift()
        for x in np.linspace(0.0, 4.0, 41):
            d.add(np.array([x, 0.0, 0.0]))
        return d
    end = np.array([4.0, 0.0, 0.0])
    before = walked().sensitivity(end)
    matched = walked()
    matched.observe(end, np.diag([0.03 ** 2, 0.03 ** 2, 0.01 ** 2]), 0.05)
    assert np.all(np.abs(matched.sensitivity(end)) < 0.02 * np.abs(before) + 1e-12)
    tag = walked()
    tag.observe(end, np.diag([0.1 ** 2, 0.1 ** 2, 1e4]), 0.05)
    after = tag.sensitivity(end)
    assert after[2] > 0.99 * before[2] and abs(after[1]) < 0.2 * abs(before[1])
    tag.restart(end)
    np.testing.assert_array_equal(tag.sensitivity(end), np.zeros(3))
