"""The pipeline's relocalization logic (flm_core.pipeline): what it does with the pose source's answers.

The pose source here is a scripted stand-in with a known world (the pipeline is the thing under test; the real model
is exercised by the node, fault and evaluation tests): the robot stands at ``truth``; in tracking mode the source
answers the prior it was given with a high score near the truth and a low one elsewhere, or a pose far from the
prior after a kidnap; in global mode it returns a scripted winner and alternatives. Measurements are real
``RangeSample``/``OdometrySample`` objects through the real front end, time buffer and filter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from flm_core.frontend import SensorFrontEnd
from flm_core.geometry import wrap_angle_float, yaw_to_quat
from flm_core.imu import GRAVITY
from flm_core.measurements import ImuSample, OdometrySample, RangeSample
from flm_core.model.tokens import Rig
from flm_core.pipeline import Inconsistent, Pipeline, PipelineConfig, State, max_position_std
from flm_core.site import Anchor, Site
from flm_core.timebuffer import TimeBufferConfig
from flm_core.validation import Expectations

SITE = Site(name='box', anchors=(Anchor('a0', np.array([0.0, 0.0, 2.5])), Anchor('a1', np.array([10.0, 0.0, 2.5]))))
SMALL = np.diag([0.05, 0.05, 0.02]) ** 2


@dataclass
class Est:
    pose: np.ndarray
    cov: np.ndarray
    score: float
    alternatives: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    floor: np.ndarray | None = None


class Scripted:
    """A world with the robot standing at ``truth`` (the truth moves to ``kidnap_to`` at ``kidnap_at``)."""

    def __init__(self, truth, global_pose, alternatives=(), alt_scores=(), kidnap_at=None, kidnap_to=None):
        self.truth, self.kidnap_at, self.kidnap_to = np.asarray(truth, float), kidnap_at, kidnap_to
        self.global_pose = np.asarray(global_pose, float)
        self.alternatives, self.alt_scores = [np.asarray(a, float) for a in alternatives], list(alt_scores)
        self.global_windows: list[dict] = []

    def where(self, t):
        return self.kidnap_to if self.kidnap_at is not None and t >= self.kidnap_at else self.truth

    def score(self, pose, t):
        return 0.95 if np.hypot(*(np.asarray(pose)[:2] - self.where(t)[:2])) < 0.5 else 0.4

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        if prior_pose is None:
            self.global_windows.append(window)
            alt = None
            if self.alternatives:
                alt = (np.stack(self.alternatives), np.stack([SMALL] * len(self.alternatives)),
                       np.asarray(self.alt_scores, float))
            return Est(self.global_pose.copy(), SMALL.copy(), 0.9, alt)
        here = self.where(t)
        if self.kidnap_at is not None and t >= self.kidnap_at and np.hypot(*(prior_pose[:2] - here[:2])) > 3.0:
            return Est(np.asarray(here, float).copy(), SMALL.copy(), 0.9)   # the sensors see another place
        # (before that, a symmetric world: any prior fits, and only the score tells the places apart)
        return Est(np.asarray(prior_pose, float).copy(), SMALL.copy(), self.score(prior_pose, t))

    def track_many(self, window, site, t, poses, covs, rig=None):
        return poses.copy(), np.stack([SMALL] * len(poses)), np.array([self.score(p, t) for p in poses])


def _pipeline(source, **cfg) -> Pipeline:
    front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
    config = PipelineConfig(process='odom', absolute_streams=('uwb',), model_streams=('uwb', 'odom'), **cfg)
    return Pipeline(config, SITE, source, front, ['uwb', 'odom'])


def _feed(pipe: Pipeline, t0: float, t1: float, rate: float = 10.0) -> list:
    """A standing robot: odometry and a UWB range every 1/rate s from t0 to t1, a step after each; the results."""
    out = []
    for t in np.arange(t0, t1, 1.0 / rate):
        t = float(round(t, 6))
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.zeros(3),
                                          orientation=yaw_to_quat(0.0), linear_velocity=np.zeros(3),
                                          angular_velocity=np.zeros(3)), t)
        pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
        r = pipe.step()
        if r is not None:
            out.append(r)
    return out


def _events(pipe: Pipeline) -> list[str]:
    return [w for _, w in pipe.events]


def test_an_ambiguous_global_result_keeps_the_rival_and_switches_to_it_when_it_wins():
    truth, wrong = np.array([2.0, 6.0, 0.5]), np.array([2.0, -6.0, 0.5])     # a mirror image of each other
    src = Scripted(truth, global_pose=wrong, alternatives=[truth, [2.3, -6.2, 0.6], [9.0, 9.0, 0.0]],
                   alt_scores=[0.85, 0.84, 0.2])
    pipe = _pipeline(src)
    first = _feed(pipe, 0.0, 1.05)
    assert first and first[-1].update == 'global'
    # the winner, one distinct rival close in score; the near-duplicate and the poorly scored one are not kept
    assert first[-1].hypotheses == 2 and pipe.state == State.RELOCALIZING
    assert 'ambiguous: 2 hypotheses' in _events(pipe)
    assert max_position_std(first[-1].cov) >= 5.0       # the published covariance spans both places
    later = _feed(pipe, 1.05, 3.0)
    ev = _events(pipe)
    assert 'switched to a rival hypothesis' in ev and 'ambiguity resolved' in ev
    assert pipe.state == State.TRACKING and later[-1].hypotheses == 1
    assert np.hypot(*(later[-1].pose[:2] - truth[:2])) < 0.1 and max_position_std(later[-1].cov) < 0.2
    # while undecided, every published pose covers the truth
    for r in later:
        if r.hypotheses > 1:
            assert np.hypot(*(r.pose[:2] - truth[:2])) <= 3 * max_position_std(r.cov)


def test_a_confirmed_global_result_is_tracked_alone():
    truth = np.array([2.0, 6.0, 0.5])
    src = Scripted(truth, global_pose=truth, alternatives=[[2.0, -6.0, 0.5]], alt_scores=[0.3])
    pipe = _pipeline(src)
    res = _feed(pipe, 0.0, 2.0)
    assert pipe.state == State.TRACKING and all(r.hypotheses == 1 for r in res)
    assert not any('ambiguous' in w for w in _events(pipe))


def test_a_global_result_is_published_as_uncertain_until_tracking_confirms_it():
    """After a (right) global result the published covariance stays site-wide for confirm_updates accepted poses,
    then it is the filter's, and /diagnostics' events say so."""
    truth = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Scripted(truth, global_pose=truth))
    res = _feed(pipe, 0.0, 2.0)
    k = next(i for i, r in enumerate(res) if r.update == 'global')
    n = pipe.config.confirm_updates
    assert n == 3 and all(max_position_std(r.cov) >= 5.0 for r in res[k:k + n])
    assert [r.update for r in res[k + 1:k + 1 + n]] == ['accepted'] * n
    assert all(max_position_std(r.cov) < 0.2 for r in res[k + n + 1:]) and len(res) > k + n + 5
    assert 'global result confirmed by tracking' in _events(pipe)


class WrongFirst:
    """The first global answer is the mirror image, later ones the truth; tracking fits the window only near the
    truth (elsewhere the solve finds the window inconsistent with the pose)."""

    def __init__(self, truth: np.ndarray, wrong: np.ndarray) -> None:
        self.truth, self.wrong, self.globals = truth, wrong, 0

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        if prior_pose is None:
            self.globals += 1
            return Est((self.wrong if self.globals == 1 else self.truth).copy(), SMALL.copy(), 0.9)
        if np.hypot(*(prior_pose[:2] - self.truth[:2])) > 1.0:
            return Inconsistent()
        return Est(self.truth.copy(), SMALL.copy(), 0.9)


@pytest.mark.parametrize('confirm', [3, 0])
def test_a_wrong_global_result_is_never_published_as_a_confident_one(confirm):
    """A wrong global result that tracking does not confirm: lost within 5 s, and until the right one is
    confirmed every published pose covers the truth within 3 sigma; without confirmation (0) it is published as
    confidently wrong."""
    truth, wrong = np.array([2.0, 6.0, 0.5]), np.array([2.0, -6.0, 0.5])
    pipe = _pipeline(WrongFirst(truth, wrong), confirm_updates=confirm)
    res = _feed(pipe, 0.0, 6.0)
    ev = dict((w, t) for t, w in reversed(pipe.events))
    assert ev['lost'] - ev['global localization'] < 5.0 and 'relocalized' in ev
    covered = [np.hypot(*(r.pose[:2] - truth[:2])) <= 3 * max_position_std(r.cov) for r in res]
    assert all(covered) == (confirm > 0)
    assert np.hypot(*(res[-1].pose[:2] - truth[:2])) < 0.1 and max_position_std(res[-1].cov) < 0.2


def test_rivals_can_be_switched_off():
    src = Scripted([2.0, 6.0, 0.5], global_pose=[2.0, -6.0, 0.5], alternatives=[[2.0, 6.0, 0.5]], alt_scores=[0.85])
    pipe = _pipeline(src, max_hypotheses=1)
    res = _feed(pipe, 0.0, 1.5)
    assert pipe.state == State.TRACKING and all(r.hypotheses == 1 for r in res)


def test_after_a_kidnap_relocalization_uses_only_data_from_the_first_failure_on():
    here, there = np.array([2.0, 6.0, 0.5]), np.array([8.0, -4.0, -1.0])
    src = Scripted(here, global_pose=there, kidnap_at=3.0, kidnap_to=there)
    pipe = _pipeline(src, lost_after_rejections=5)
    pipe.set_initial_pose(here, SMALL, 0.0)
    res = _feed(pipe, 0.0, 6.0)
    ev = _events(pipe)
    assert 'lost' in ev and 'relocalized' in ev
    first_rejected = min(r.stamp for r in res if r.update == 'rejected')
    assert first_rejected >= 3.0
    assert len(src.global_windows) == 1
    uwb = [s for s, _ in src.global_windows[0]['uwb']]
    assert uwb and min(uwb) >= first_rejected                   # nothing from before the kidnap
    assert max(uwb) - min(uwb) >= 1.0 - 1e-9                    # min_global_data of post-kidnap data
    odom = [s for s, _ in src.global_windows[0]['odom']]
    assert min(odom) < first_rejected                          # odometry (relative motion) is kept whole
    # between 'lost' and the relocalization the published pose says it is not to be trusted
    lost_t = next(t for t, w in pipe.events if w == 'lost')
    reloc_t = next(t for t, w in pipe.events if w == 'relocalized')
    between = [r for r in res if lost_t < r.stamp < reloc_t]
    assert SITE.extent() == pytest.approx(10.0)                  # the anchors' spread: the robot may be anywhere
    assert between and all(max_position_std(r.cov) >= 5.0 for r in between)
    assert np.hypot(*(res[-1].pose[:2] - there[:2])) < 0.1 and pipe.state == State.TRACKING


def test_after_a_blackout_nothing_is_published_until_the_sensors_re_anchor_the_estimate():
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Scripted(here, global_pose=here))
    pipe.set_initial_pose(here, SMALL, 0.0)
    assert len(_feed(pipe, 0.0, 2.0)) > 10                       # tracking: a pose per step
    # every sensor silent for 3 s; then odometry comes back first: its dead reckoning is not published
    quiet = []
    for t in (5.0, 5.1, 5.2):
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.zeros(3),
                                          orientation=yaw_to_quat(0.0), linear_velocity=np.zeros(3),
                                          angular_velocity=np.zeros(3)), t)
        quiet.append(pipe.step())
    assert quiet == [None, None, None]
    assert any(w.startswith('blackout of 3.1 s') for w in _events(pipe))
    back = _feed(pipe, 5.3, 6.0)                                 # UWB again: the model re-anchors it
    assert back and back[0].update == 'accepted' and back[0].stamp == pytest.approx(5.3)
    assert pipe.state == State.TRACKING


def test_a_short_gap_is_not_a_blackout():
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Scripted(here, global_pose=here), blackout=1.0)
    pipe.set_initial_pose(here, SMALL, 0.0)
    res = _feed(pipe, 0.0, 2.0) + _feed(pipe, 2.8, 3.5)          # 0.9 s without anything
    assert not any('blackout' in w for w in _events(pipe))
    assert any(r.stamp == pytest.approx(2.8) for r in res)


class Offset:
    """A pose source that always answers 0.2 m east of the truth (a correction the filter must take up)."""

    def __init__(self, truth):
        self.answer = np.asarray(truth, float) + np.array([0.2, 0.0, 0.0])

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        return Est(self.answer.copy(), SMALL.copy(), 0.9)


class Sure:
    """Answers ``here`` with a covariance of millimetres, and ``floor``: the error its answers share."""

    def __init__(self, here: np.ndarray, floor: np.ndarray | None) -> None:
        self.here, self.floor = here, floor

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        return Est(self.here.copy(), np.diag([1e-3, 1e-3, 1e-3]) ** 2, 0.9, floor=self.floor)


@pytest.mark.parametrize('floor', [np.array([0.05, 0.05, 0.015]), None])
def test_the_published_covariance_keeps_the_floor_that_the_poses_share(floor):
    """Ten poses a second of millimetre covariance shrink the filter to millimetres; what is published keeps each
    variance at least the floor the pose source names (the map's disagreement with the world does not average
    away), and with no floor named it is the filter's."""
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Sure(here, floor))
    pipe.set_initial_pose(here, SMALL, 0.0)
    last = _feed(pipe, 0.0, 3.0)[-1]
    filt = pipe.filter.pose_at(last.stamp)[1]
    assert max_position_std(filt) < 0.005
    if floor is None:
        np.testing.assert_allclose(last.cov, filt)
    else:
        np.testing.assert_allclose(np.sqrt(np.diag(last.cov)), floor)
        off = ~np.eye(3, dtype=bool)
        np.testing.assert_allclose(last.cov[off], filt[off])
        assert np.all(np.linalg.eigvalsh(last.cov) > 0)


def test_estimate_is_the_filter_as_it_stands_and_update_fuses_the_model_pose():
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Offset(here))
    pipe.set_initial_pose(here, SMALL, 0.0)
    for t in (0.0, 0.1, 0.2):
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.zeros(3),
                                          orientation=yaw_to_quat(0.0), linear_velocity=np.zeros(3),
                                          angular_velocity=np.zeros(3)), t)
        pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
    before = pipe.estimate()                                    # no model run yet: the initial pose, carried on
    assert before.stamp == pytest.approx(0.2) and before.update == 'none' and before.model_latency is None
    assert np.hypot(*(before.pose[:2] - here[:2])) < 1e-6
    u = pipe.update()
    assert u.update == 'accepted' and u.model_latency is not None and u.stamp == pytest.approx(0.2)
    after = pipe.estimate()                                     # the model's pose is in the filter now
    assert after.pose[0] - here[0] > 0.05 and max_position_std(after.cov) < max_position_std(before.cov)
    assert pipe.update().update == 'none'                       # the same window is not fused twice


def test_auto_process_turns_to_the_imu_when_it_arrives_after_an_initial_pose():
    """An initial pose before any IMU data (``set_initial_pose`` at activation) made 'auto' odometry-driven for good;
    the first IMU sample now hands the pose, covariance and velocity over to an IMU-driven filter. Before any data
    the filter is constant-velocity, and the first odometry sample makes it odometry-driven."""
    here = np.array([2.0, 6.0, 0.5])
    front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
    pipe = Pipeline(PipelineConfig(process='auto', absolute_streams=('uwb',), model_streams=('uwb', 'odom', 'imu')),
                    SITE, Offset(here), front, ['uwb', 'odom', 'imu'])
    pipe.set_initial_pose(here, SMALL, 0.0)
    assert pipe.process == 'cv'
    v = np.array([0.5, 0.0, 0.0])                     # driving forward along the yaw at 0.5 m/s
    for t in np.arange(0.0, 0.45, 0.05):
        t = float(round(t, 6))
        pos = np.array([0.5 * t, 0.0, 0.0])
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=pos,
                                          orientation=yaw_to_quat(0.0), linear_velocity=v,
                                          angular_velocity=np.zeros(3)), t)
        assert pipe.process == 'odom' and pipe.filter.config.process == 'odom'
    assert any('odometry-driven' in w for w in _events(pipe))
    before, cov_before = pipe.pose_at(0.4)
    vel_before = pipe.filter.state_at(0.4)[0][3:5].copy()
    pipe.offer('imu', ImuSample(stamp=0.4, frame_id='base_link', angular_velocity=np.zeros(3),
                                linear_acceleration=np.array([0.0, 0.0, 9.81])), 0.4)
    assert pipe.process == 'imu' and pipe.filter.config.process == 'imu'
    assert any('IMU-driven' in w for w in _events(pipe))
    after, cov_after = pipe.pose_at(0.4)
    np.testing.assert_allclose(after, before, atol=1e-9)
    np.testing.assert_allclose(cov_after, cov_before, atol=1e-12)
    np.testing.assert_allclose(pipe.filter.state_at(0.4)[0][3:5], vel_before, atol=1e-9)
    assert np.linalg.norm(vel_before) > 0.4          # the velocity was really carried, not zero
    ahead, _ = pipe.pose_at(0.6)                     # and the IMU-driven filter keeps moving with it
    assert np.hypot(*(ahead[:2] - after[:2])) > 0.05
    assert pipe.estimate() is not None


def test_a_rocking_platform_widens_the_accelerometer_bias_of_the_filter():
    """The pipeline hands the filter each IMU sample's roll/pitch rate: the same specific force with the gyro showing
    the platform rocking about x lets the accelerometer bias move (filter.accel_tilt_time), on a level platform not."""
    def bias_std(roll_rate: float) -> float:
        front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
        pipe = Pipeline(PipelineConfig(process='imu', absolute_streams=('uwb',), model_streams=('uwb', 'imu')),
                        SITE, Offset(np.array([2.0, 6.0, 0.0])), front, ['uwb', 'imu'])
        pipe.set_initial_pose(np.array([2.0, 6.0, 0.0]), SMALL, 0.0)
        for k in range(101):
            t = 0.01 * k
            pipe.offer('imu', ImuSample(stamp=t, frame_id='base_link', angular_velocity=np.array([roll_rate, 0, 0]),
                                        linear_acceleration=np.array([0.0, 0.0, 9.81])), t)
        return float(np.sqrt(pipe.filter.state_at(1.0)[1][7, 7]))

    level, rocking = bias_std(0.0), bias_std(0.05)
    assert rocking > 2.0 * level
    assert rocking == pytest.approx(np.hypot(level, GRAVITY * 0.05 * np.sqrt(1.0)), rel=0.05)


def test_an_initial_pose_before_any_data_applies_at_the_first_stamp():
    """A filter reset at stamp 0 would propagate step by step up to the first real stamp (1.7e9 s of wall-clock
    stamps: a hang); the pose waits for the first accepted measurement instead."""
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Offset(here))
    pipe.set_initial_pose(here, SMALL)
    assert not pipe.filter.initialized and pipe.estimate() is None
    t = 1.7e9
    pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
    assert pipe.filter.initialized and pipe.filter.stamp == pytest.approx(t)
    assert np.hypot(*(pipe.estimate().pose[:2] - here[:2])) < 1e-6
    assert any(w == 'initial pose' for w in _events(pipe))


class Contradicted:
    """A pose source whose solves stop fitting the window (a kidnap): Inconsistent from the fourth update on."""

    def __init__(self, here):
        self.here, self.n = np.asarray(here, float), 0

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        self.n += 1
        if prior_pose is not None and self.n > 3:
            return Inconsistent()
        return Offset(self.here).localize(window, site, t, prior_pose, prior_cov, rig)


def test_inconsistent_answers_count_toward_lost_like_gated_poses():
    here = np.array([2.0, 6.0, 0.5])
    pipe = _pipeline(Contradicted(here))
    pipe.set_initial_pose(here, SMALL, 0.0)
    updates = []
    for k in range(4 + pipe.config.lost_after_rejections):
        t = 0.1 * k
        pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
        u = pipe.update()
        updates.append(u.update if u else None)
    assert updates.count('inconsistent') >= pipe.config.lost_after_rejections
    assert 'lost' in _events(pipe)


class Track:
    """A robot driving at ``speed`` m/s along the heading ``yaw`` (negative speed: backing up), seen by one UWB tag:
    positions with ``noise`` m of error and the heading unobserved (as one tag gives them)."""

    def __init__(self, yaw: float, noise: float = 0.03, seed: int = 0):
        self.yaw, self.noise, self.rng = yaw, noise, np.random.default_rng(seed)
        self.legs: list[tuple[float, float]] = []        # (start s, speed m/s)

    def at(self, t: float) -> np.ndarray:
        d, last_t, last_v = 0.0, 0.0, 0.0
        for t0, v in self.legs:
            if t0 > t:
                break
            d += last_v * (t0 - last_t)
            last_t, last_v = t0, v
        d += last_v * (t - last_t)
        return np.array([1.0 + d * np.cos(self.yaw), 2.0 + d * np.sin(self.yaw)])

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        xy = self.at(t) + self.rng.normal(0.0, self.noise, 2)
        yaw = 0.0 if prior_pose is None else float(prior_pose[2])
        return Est(np.array([xy[0], xy[1], yaw]), np.diag([self.noise ** 2, self.noise ** 2, 1e4]), 0.9)


def _drive(pipe: Pipeline, t0: float, t1: float) -> None:
    for t in np.arange(t0, t1, 0.1):
        t = float(round(t, 6))
        pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
        pipe.step()


@pytest.mark.parametrize('robot_model, lever', [('differential', -0.15), ('omnidirectional', -0.15),
                                                ('differential', 0.0)])
def test_a_differential_robot_with_one_tag_takes_its_heading_from_its_track(robot_model, lever):
    """One UWB tag, no IMU, no odometry: the heading is unobserved. A differential robot whose tag sits off
    base_link takes it from its track (forward while unknown) and keeps it when it backs up, with a std that says so
    (under 0.5 rad: the constant-velocity model lets the heading turn by 0.5 rad/s/sqrt(Hz), and the newest course
    is half a window old); an omnidirectional robot, or a tag at base_link (no lever arm to take off), stays
    unobserved."""
    src = Track(yaw=0.7)
    src.legs = [(0.0, 0.0), (1.0, 0.3), (5.0, -0.3)]
    front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
    cfg = PipelineConfig(process='cv', absolute_streams=('uwb',), model_streams=('uwb',), robot_model=robot_model,
                         confirm_updates=0)
    pipe = Pipeline(cfg, SITE, src, front, ['uwb'])
    pipe.rig = Rig(mounts={'uwb_tag': (0.0, lever, 1.0, 0.0)})
    _drive(pipe, 0.0, 4.5)
    x, P = pipe.filter.state_at(4.4)
    if robot_model == 'differential' and lever:
        assert abs(wrap_angle_float(x[2] - 0.7)) < 0.15 and np.sqrt(P[2, 2]) < 0.5
        assert pipe.filter.counts['course']['accepted'] > 10
        _drive(pipe, 4.5, 8.0)                                  # backing up: still facing the same way
        x, P = pipe.filter.state_at(7.9)
        assert abs(wrap_angle_float(x[2] - 0.7)) < 0.15 and np.sqrt(P[2, 2]) < 0.5
    else:
        assert 'course' not in pipe.filter.counts and np.sqrt(P[2, 2]) > 1.0


def test_a_course_track_belongs_to_one_filter():
    """The track is the positions one filter accepted: after a switch to another filter (here a rival at the same
    place with the heading unknown, as _weigh_rivals swaps it in) no course is fused until the new filter's own
    positions span half a window, and then it gives the heading again."""
    src = Track(yaw=0.7)
    src.legs = [(0.0, 0.0), (1.0, 0.3)]
    front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
    cfg = PipelineConfig(process='cv', absolute_streams=('uwb',), model_streams=('uwb',), confirm_updates=0)
    pipe = Pipeline(cfg, SITE, src, front, ['uwb'])
    pipe.rig = Rig(mounts={'uwb_tag': (0.0, -0.15, 1.0, 0.0)})
    _drive(pipe, 0.0, 4.0)
    assert pipe.filter.counts['course']['accepted'] > 10
    x, P = pipe.filter.state_at(3.9)
    pipe.filter = pipe._new_filter_at(np.array([x[0], x[1], 0.0]), np.diag([0.01, 0.01, 10.0]), 3.9)
    _drive(pipe, 4.0, 4.3)                                     # three updates: positions of the new filter only
    assert 'course' not in pipe.filter.counts
    _drive(pipe, 4.3, 6.0)
    x, P = pipe.filter.state_at(5.9)
    assert pipe.filter.counts['course']['accepted'] > 5
    assert abs(wrap_angle_float(x[2] - 0.7)) < 0.15 and np.sqrt(P[2, 2]) < 0.5


@pytest.mark.parametrize('drift', [0.05, 0.0])
def test_dead_reckoning_on_unequal_wheels_publishes_their_drift(drift):
    """Odometry whose heading turns by 0.12 rad per metre (5 % between the wheels of a 0.4 m track) while the robot
    drives 4 m straight with nothing to localize it: the filter's random walk alone (odom_heading_drift 0) calls
    the heading error it leaves over 3 sigma; with the drift accounted for (the default, 0.05 rad/m) the published
    covariance covers heading and position within 3 sigma."""
    k, v = 0.12, 1.0
    cfg = PipelineConfig(process='odom', absolute_streams=('uwb',), model_streams=('uwb', 'odom'),
                         odom_heading_drift=drift)
    front = SensorFrontEnd(TimeBufferConfig(window=2.0), Expectations(anchor_ids=frozenset({'a0', 'a1'})))
    pipe = Pipeline(cfg, SITE, None, front, ['odom'])
    start = np.array([1.0, 2.0, 0.0])
    pipe.set_initial_pose(start, np.diag([0.01 ** 2, 0.01 ** 2, 0.005 ** 2]), 0.0)
    for t in np.arange(0.0, 4.0 + 1e-9, 0.05):
        t = float(round(t, 6))
        d = v * t
        yaw = k * d                                    # what the odometry believes: a curve
        pos = np.array([math.sin(yaw) / k, (1.0 - math.cos(yaw)) / k, 0.0])
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=pos,
                                          orientation=yaw_to_quat(yaw), linear_velocity=np.array([v, 0.0, 0.0]),
                                          angular_velocity=np.array([0.0, 0.0, k * v])), t)
        if abs(t * 10 - round(t * 10)) < 1e-9:
            pipe.step(t)
    est = pipe.estimate(4.0)
    truth = np.array([start[0] + 4.0 * v, start[1], 0.0])
    e = est.pose - truth
    yaw_sigmas = abs(wrap_angle_float(e[2])) / math.sqrt(est.cov[2, 2])
    pos_maha = float(e[:2] @ np.linalg.solve(est.cov[:2, :2], e[:2]))
    assert abs(wrap_angle_float(e[2]) - k * 4.0) < 0.02           # the odometry's heading error, 0.48 rad
    if drift:
        assert yaw_sigmas < 3.0 and pos_maha < 11.8                # within 3 sigma (chi-square 2-dof 99.7 %)
    else:
        assert yaw_sigmas > 3.0
