"""The heading of a differential robot from its track (flm_core.estimation.course)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from flm_core.estimation.course import Course


def _drive(course: Course, yaw: float, speed: float, t0: float, t1: float, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    for t in np.arange(t0, t1, 0.1):
        d = speed * t
        course.add(float(t), np.array([d * math.cos(yaw), d * math.sin(yaw)]) + rng.normal(0.0, noise, 2))


def test_a_straight_track_gives_its_direction_at_its_mean_stamp():
    c = Course(window=1.0, slip=0.1)
    _drive(c, 2.5, 0.4, 0.0, 3.0)
    stamp, yaw, var = c.heading()
    assert yaw == pytest.approx(2.5, abs=1e-9) and stamp == pytest.approx(2.45, abs=1e-9)
    assert var == pytest.approx(0.1 ** 2, rel=1e-6)                  # noise-free: the side slip alone
    t, v, cov = c.velocity()
    np.testing.assert_allclose(v, [0.4 * math.cos(2.5), 0.4 * math.sin(2.5)], atol=1e-9)


def test_its_variance_covers_the_error_of_noisy_tracks():
    """Over 400 noisy tracks (5 cm positions, 0.3 m/s, no slip) the squared heading errors over the variances
    average to about 1."""
    z = []
    for k in range(400):
        c = Course(window=1.0, slip=0.0)
        _drive(c, 0.3, 0.3, 0.0, 1.05, noise=0.05, seed=k)
        h = c.heading()
        if h is not None:
            z.append(math.remainder(h[1] - 0.3, 2 * math.pi) ** 2 / h[2])
    assert len(z) > 300 and 0.7 < np.mean(z) < 1.5


def test_backing_up_gives_the_reverse_of_the_course_only_near_a_known_heading():
    c = Course()
    _drive(c, 1.0, -0.3, 0.0, 2.0)
    assert c.heading()[1] == pytest.approx(1.0 - math.pi, abs=1e-9)          # unknown heading: forward
    assert c.heading(near=1.2)[1] == pytest.approx(1.0, abs=1e-9)            # known: the nearer of the two


def test_no_heading_while_standing_too_slow_or_too_short_and_time_going_back_starts_again():
    c = Course(window=1.0, min_speed=0.1)
    _drive(c, 0.0, 0.05, 0.0, 2.0)
    assert c.heading() is None                                   # slower than min_speed: turning in place, or still
    c = Course(window=1.0)
    _drive(c, 0.0, 0.3, 0.0, 0.4)
    assert c.heading() is None and c.velocity() is None          # less than half the window
    _drive(c, 0.0, 0.3, 0.4, 2.0)
    assert c.heading() is not None
    c.add(1.0, np.zeros(2))                                      # time went back
    assert c.velocity() is None
    c = Course(window=1.0)
    _drive(c, 0.0, 0.3, 0.0, 2.0, noise=0.5)
    assert c.heading() is None                                   # a speed within three stds of zero


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        Course(window=0.0)
    with pytest.raises(ValueError):
        Course(min_points=2)
