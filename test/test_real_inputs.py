"""Inputs as real drivers send them: shared-stamp UWB frames, tilted and z-down IMUs, glitching odometry,
sparse logs."""
import math

import numpy as np
import pytest

from flm_core.frontend import IMPLAUSIBLE_RUN, SensorFrontEnd
from flm_core.geometry import yaw_to_quat
from flm_core.imu import GRAVITY, ImuLeveler
from flm_core.measurements import ImuSample, OdometrySample, RangeSample
from flm_core.pipeline import ROUTINE_KEEP, Pipeline, PipelineConfig
from flm_core.site import Anchor, Site
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict
from flm_core.validation import Expectations

Z_DOWN = np.array([1.0, 0.0, 0.0, 0.0])   # 180 deg about x: the IMU's z points down (quaternion x y z w)


def _quat_axis(axis, angle: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.array([*(a * math.sin(angle / 2)), math.cos(angle / 2)])


def _rot(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


# ------------------------------------------------------------------------------------------- UWB ranging frames
def test_ranges_of_one_frame_share_a_stamp_and_are_all_kept():
    buf = TimeBuffer()
    for a in ('a0', 'a1', 'a2', 'a3'):
        assert buf.add('uwb', 1.0, a, key=a) == Verdict.ACCEPTED
    assert buf.add('uwb', 1.0, 'a2 again', key='a2') == Verdict.DUPLICATE     # one range per anchor and stamp
    assert buf.add('uwb', 0.99, 'a0', key='a0') == Verdict.ACCEPTED
    assert [m for _, m in buf.window(1.0)['uwb']] == ['a0', 'a0', 'a1', 'a2', 'a3']
    assert buf.counts()['uwb'] == {'accepted': 5, 'duplicate': 1}
    assert buf.add('scan', 1.0, 's') == Verdict.ACCEPTED and buf.add('scan', 1.0, 't') == Verdict.DUPLICATE


def test_one_stale_frame_of_ranges_is_not_a_time_jump():
    buf = TimeBuffer(TimeBufferConfig(jump_back=1.0, jump_confirm=3))
    for t in (10.0, 10.1):
        buf.add('uwb', t, 'x', key='a0')
    for a in ('a0', 'a1', 'a2', 'a3'):           # four ranges of one old frame: late, not a bag loop
        assert buf.add('uwb', 5.0, a, key=a) == Verdict.TOO_LATE
    assert buf.resets == 0
    buf.add('uwb', 5.1, 'y', key='a0')
    assert buf.add('uwb', 5.2, 'z', key='a0') == Verdict.RESET      # three distinct old stamps: it is one
    assert buf.resets == 1


def test_the_front_end_keeps_every_anchor_of_a_frame():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(anchor_ids=frozenset({'a0', 'a1', 'a2'})))
    verdicts = [front.offer('uwb', RangeSample(stamp=3.0, anchor_id=a, range=2.0), 3.0) for a in ('a0', 'a1', 'a2')]
    assert verdicts == [Verdict.ACCEPTED] * 3
    assert len(front.buffer.window(3.0)['uwb']) == 3


# ------------------------------------------------------------------------------------------------------ IMU
def _specific_force(R_world_imu: np.ndarray, accel_world: np.ndarray) -> np.ndarray:
    """What an accelerometer with attitude R (IMU -> world, z up) measures: R^T (a + g up)."""
    return R_world_imu.T @ (accel_world + np.array([0.0, 0.0, GRAVITY]))


def test_a_z_down_imu_is_rotated_by_its_mount():
    acc_world, w_world = np.array([0.8, -0.3, 0.0]), np.array([0.0, 0.0, 0.4])   # base level, heading 0
    R = _rot(Z_DOWN)                                      # IMU -> base (= world here)
    m = ImuSample(stamp=0.0, frame_id='imu', angular_velocity=R.T @ w_world,
                  linear_acceleration=_specific_force(R, acc_world))
    out = ImuLeveler().level(m, Z_DOWN)
    assert out.frame_id == 'base_link' and out.orientation is None
    np.testing.assert_allclose(out.linear_acceleration, [0.8, -0.3, GRAVITY], atol=0.25)   # |a| != g: no tilt pull
    np.testing.assert_allclose(out.angular_velocity, [0.0, 0.0, 0.4], atol=1e-9)
    raw_planar = np.hypot(*m.linear_acceleration[:2])
    assert raw_planar == pytest.approx(np.hypot(0.8, 0.3))   # (the raw x, y are not base_link's: y flipped)
    assert m.angular_velocity[2] == pytest.approx(-0.4)


def test_a_z_down_imu_without_tf_is_levelled_by_gravity_alone():
    R = _rot(Z_DOWN)
    lev = ImuLeveler()
    for k in range(5):                                    # standing still
        out = lev.level(ImuSample(stamp=0.01 * k, frame_id='imu', angular_velocity=R.T @ np.array([0, 0, 0.3]),
                                  linear_acceleration=_specific_force(R, np.zeros(3))), None)
    np.testing.assert_allclose(out.linear_acceleration, [0.0, 0.0, GRAVITY], atol=1e-6)
    assert out.angular_velocity[2] == pytest.approx(0.3, abs=1e-3)          # yaw rate about the vertical


def test_a_tilted_platform_leaks_no_gravity_with_the_orientation_given():
    tilt = _quat_axis([1.0, 0.5, 0.0], 0.25)              # 14 deg roll/pitch: a ramp, a drone
    R = _rot(tilt)
    acc_world = np.array([0.5, 0.2, 0.0])
    m = ImuSample(stamp=0.0, frame_id='base_link', angular_velocity=np.zeros(3),
                  linear_acceleration=_specific_force(R, acc_world), orientation=tilt)
    raw_leak = np.hypot(*(m.linear_acceleration[:2] - R.T[:2, :2] @ acc_world[:2]))
    assert raw_leak > 1.5                                  # what the filter integrated before: ~g sin(14 deg)
    out = ImuLeveler().level(m, None)
    heading = math.atan2(R[1, 0], R[0, 0])                 # base_link's x projected on the horizontal plane
    c, s = math.cos(heading), math.sin(heading)
    expect = np.array([c * acc_world[0] + s * acc_world[1], -s * acc_world[0] + c * acc_world[1]])
    np.testing.assert_allclose(out.linear_acceleration[:2], expect, atol=1e-9)
    assert out.linear_acceleration[2] == pytest.approx(GRAVITY)


def test_without_orientation_the_tilt_is_estimated_and_a_bad_orientation_is_not_trusted():
    tilt = _quat_axis([0.0, 1.0, 0.0], 0.2)
    R = _rot(tilt)
    lev = ImuLeveler()
    f = _specific_force(R, np.zeros(3))
    for k in range(200):                                   # 2 s standing on the slope
        out = lev.level(ImuSample(stamp=0.01 * k, frame_id='imu', angular_velocity=np.zeros(3),
                                  linear_acceleration=f), None)
    np.testing.assert_allclose(out.linear_acceleration, [0, 0, GRAVITY], atol=1e-6)
    # a driver that always sends the identity quaternion on a z-down IMU: gravity says otherwise
    Rd = _rot(Z_DOWN)
    lev2 = ImuLeveler()
    out = lev2.level(ImuSample(stamp=0.0, frame_id='imu', angular_velocity=np.zeros(3),
                               linear_acceleration=_specific_force(Rd, np.zeros(3)),
                               orientation=np.array([0.0, 0.0, 0.0, 1.0])), None)
    assert lev2.disagreements == 1
    np.testing.assert_allclose(out.linear_acceleration, [0, 0, GRAVITY], atol=1e-6)


def test_the_front_end_levels_imu_samples_with_the_tf_mount():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(), mount=lambda f: Z_DOWN if f == 'imu' else None)
    R = _rot(Z_DOWN)
    v, m = front.admit('imu', ImuSample(stamp=1.0, frame_id='imu', angular_velocity=R.T @ np.array([0, 0, 0.5]),
                                        linear_acceleration=_specific_force(R, np.zeros(3))), 1.0)
    assert v == Verdict.ACCEPTED and m.frame_id == 'base_link'
    assert m.angular_velocity[2] == pytest.approx(0.5)
    assert front.buffer.window(1.0)['imu'][0][1] is m and not front.unmounted
    front.offer('imu', ImuSample(stamp=1.1, frame_id='imu2', angular_velocity=np.zeros(3),
                                 linear_acceleration=np.array([0, 0, GRAVITY])), 1.1)
    assert front.unmounted == {'imu2'}
    assert front.stats(['imu'], 1.1)['imu']['levelled_by_gravity_only'] == 'imu2'   # what /diagnostics shows


# ------------------------------------------------------------------------------------------------- odometry
def _odom(t: float, x: float, vx: float = 0.0, yaw: float = 0.0) -> OdometrySample:
    return OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.array([x, 0.0, 0.0]),
                          orientation=yaw_to_quat(yaw), linear_velocity=np.array([vx, 0.0, 0.0]),
                          angular_velocity=np.zeros(3))


def test_implausible_odometry_is_rejected_and_counted():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(max_speed=2.0, max_yaw_rate=3.0))
    assert front.offer('odom', _odom(0.0, 0.0), 0.0) == Verdict.ACCEPTED
    assert front.offer('odom', _odom(0.1, 0.1, 1.0), 0.1) == Verdict.ACCEPTED
    assert front.offer('odom', _odom(0.101, 0.17, 1.0), 0.101) == 'implausible_increment'   # 7 cm in 1 ms
    assert front.offer('odom', _odom(0.2, 0.2, 1.0), 0.2) == Verdict.ACCEPTED               # from 0.1: 1 m/s
    assert front.offer('odom', _odom(0.3, 0.3, 59.0), 0.3) == 'implausible_twist'
    assert front.offer('odom', _odom(0.31, 0.3, 0.0, yaw=0.5), 0.31) == 'implausible_increment'  # 50 rad/s
    assert front.rejections[('odom', 'implausible_increment')] == 2
    assert front.rejections[('odom', 'implausible_twist')] == 1


def test_an_odometry_reset_is_taken_after_a_run_of_rejections():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(max_speed=2.0))
    front.offer('odom', _odom(0.0, 0.0), 0.0)
    verdicts = [front.offer('odom', _odom(0.1 * k, 50.0 + 0.1 * k), 0.1 * k) for k in range(1, IMPLAUSIBLE_RUN + 3)]
    assert verdicts[:IMPLAUSIBLE_RUN] == ['implausible_increment'] * IMPLAUSIBLE_RUN
    assert verdicts[IMPLAUSIBLE_RUN:] == [Verdict.ACCEPTED, Verdict.ACCEPTED]


# ------------------------------------------------------------------------------------------- the pipeline
SITE = Site(name='square', anchors=tuple(Anchor(a, np.array(p, float)) for a, p in (
    ('a0', (0, 0, 2)), ('a1', (10, 0, 2)), ('a2', (10, 10, 2)), ('a3', (0, 10, 2)))))


class Truth:
    """A pose source that reports where the robot really is (a straight line at 1 m/s) with 0.1 m std."""

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        from flm_core.estimation.baselines import Estimate
        return Estimate(stamp=t, pose=np.array([1.0 + t, 5.0, 0.0]), cov=np.diag([0.01, 0.01, 0.01]), source='t')


def test_a_sparse_log_does_not_push_the_important_events_out():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(anchor_ids=frozenset({'a0', 'a1', 'a2', 'a3'})))
    pipe = Pipeline(PipelineConfig(min_global_data=0.0, blackout=1.0), SITE, Truth(), front, ['uwb'])
    t = 0.0
    for k in range(300):                          # a frame of ranges every 2 s: a blackout before each
        for a in ('a0', 'a1', 'a2', 'a3'):
            pipe.offer('uwb', RangeSample(stamp=t, anchor_id=a, range=5.0), t)
        pipe.step(t)
        t += 2.0
    whats = [w for _, w in pipe.events]
    assert whats[0] == 'global localization'
    assert sum(w.startswith('blackout') for w in whats) == ROUTINE_KEEP
    assert pipe.event_counts['blackout'] == 299 and pipe.event_counts['global localization'] == 1


def test_without_imu_and_odometry_the_filter_keeps_up_with_a_moving_robot():
    """UWB only (a tag on a trolley): the constant-velocity model follows 1 m/s, where a filter that held its pose
    (the odometry model without odometry) lagged and gated the fixes out."""
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(anchor_ids=frozenset({'a0', 'a1', 'a2', 'a3'})))
    pipe = Pipeline(PipelineConfig(min_global_data=0.0), SITE, Truth(), front, ['uwb', 'imu', 'odom'])
    errs = []
    for k in range(80):
        t = 0.1 * k
        pipe.offer('uwb', RangeSample(stamp=t, anchor_id='a0', range=5.0), t)
        r = pipe.step(t)
        errs.append(abs(r.pose[0] - (1.0 + t)))
    assert pipe.process == 'cv'
    assert pipe.filter_counts()['model'].get('rejected', 0) == 0
    assert max(errs[20:]) < 0.1
