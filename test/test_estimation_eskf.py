"""The planar error-state filter: consistency (NEES), delayed measurements, gating, reset, odometry process model."""
from __future__ import annotations

import numpy as np
import pytest

from flm_core.estimation.eskf import DIM, Eskf, EskfConfig, UpdateResult, imu_propagate, state_error
from flm_core.evaluation.metrics import chi2_bounds
from flm_core.geometry import se2_compose, se2_inverse
from flm_core.imu import GRAVITY

_NEES_CFG = EskfConfig(gyro_noise=1e-3, accel_noise=0.02, gyro_bias_rw=1e-4, accel_bias_rw=1e-3, gate_prob=0.0,
                       init_vel_sigma=0.1, init_gyro_bias_sigma=0.005, init_accel_bias_sigma=0.05)


def _mc_run(rng: np.random.Generator, T: float = 3.0, rate: float = 100.0, meas_every: int = 20
            ) -> tuple[float, float]:
    """One Monte Carlo run of a near-linear case (straight line, constant acceleration, small yaw errors) whose
    truth is drawn from the filter's own prior and noise model. Returns (8-dof NEES, 3-dof pose NEES) at the end."""
    cfg = _NEES_CFG
    f = Eskf(cfg)
    f.reset(np.zeros(3), np.diag([0.1 ** 2, 0.1 ** 2, 0.02 ** 2]), stamp=0.0)
    xt = f.x + np.linalg.cholesky(f.P) @ rng.standard_normal(DIM)
    dt = 1.0 / rate
    R = np.diag([0.05 ** 2, 0.05 ** 2, 0.01 ** 2])
    LR = np.linalg.cholesky(R)
    sg, sa = cfg.gyro_noise / np.sqrt(dt), cfg.accel_noise / np.sqrt(dt)
    a_true = np.array([0.3, 0.0])
    t = 0.0
    for k in range(1, int(T * rate) + 1):
        t = k * dt
        # the sample stamped t is held by the filter over [t, t + dt]; the truth moves over the same interval
        f.predict_imu(t, xt[5] + sg * rng.standard_normal(), a_true + xt[6:8] + sa * rng.standard_normal(2))
        xt = imu_propagate(xt, dt, xt[5], a_true + xt[6:8])
        xt[5] += cfg.gyro_bias_rw * np.sqrt(dt) * rng.standard_normal()
        xt[6:8] += cfg.accel_bias_rw * np.sqrt(dt) * rng.standard_normal(2)
        if k % meas_every == 0:
            assert f.update_pose(t + dt, xt[:3] + LR @ rng.standard_normal(3), R) == UpdateResult.ACCEPTED
    x, P = f.state_at(t + dt)
    e = state_error(x, xt)
    return float(e @ np.linalg.solve(P, e)), float(e[:3] @ np.linalg.solve(P[:3, :3], e[:3]))


def test_nees_within_chi2_bounds() -> None:
    rng = np.random.default_rng(1234)
    runs = 80
    v = np.array([_mc_run(rng) for _ in range(runs)])
    lo8, hi8 = chi2_bounds(DIM, runs, 0.99)
    lo3, hi3 = chi2_bounds(3, runs, 0.99)
    assert lo8 <= v[:, 0].mean() <= hi8, (v[:, 0].mean(), lo8, hi8)
    assert lo3 <= v[:, 1].mean() <= hi3, (v[:, 1].mean(), lo3, hi3)


def _events(seed: int = 3) -> list[tuple]:
    """A mixed stream: IMU at 100 Hz, odometry at 50 Hz (twist), pose measurements at 5 Hz, in stamp order."""
    rng = np.random.default_rng(seed)
    ev: list[tuple] = []
    yaw = 0.0
    pos = np.zeros(2)
    for k in range(1, 201):
        t = k * 0.01
        gyro = 0.2 + 0.01 * rng.standard_normal()
        ev.append((t, 'imu', (gyro, np.array([0.1, 0.02]) + 0.01 * rng.standard_normal(2))))
        if k % 2 == 0:
            yaw += 0.2 * 0.02
            pos += 0.5 * 0.02 * np.array([np.cos(yaw), np.sin(yaw)])
            ev.append((t + 0.003, 'odom', (np.array([pos[0], pos[1], yaw]), np.array([0.5, 0.0, 0.2]))))
        if k % 20 == 0:
            ev.append((t + 0.001, 'pose', (np.array([pos[0], pos[1], yaw]) + 0.03 * rng.standard_normal(3),
                                           np.diag([0.05, 0.05, 0.02]) ** 2)))
    return ev


def _feed(f: Eskf, e: tuple) -> UpdateResult:
    t, kind, d = e
    if kind == 'imu':
        return f.predict_imu(t, *d)
    if kind == 'odom':
        return f.predict_odom(t, *d)
    return f.update_pose(t, *d)


@pytest.mark.parametrize('process', ['imu', 'odom'])
def test_delayed_measurement_equals_on_time(process: str) -> None:
    cfg = EskfConfig(process=process)
    ev = _events()
    on_time = Eskf(cfg)
    on_time.reset(np.zeros(3), np.diag([0.01, 0.01, 0.001]), stamp=0.0)
    for e in ev:
        _feed(on_time, e)
    late = Eskf(cfg)
    late.reset(np.zeros(3), np.diag([0.01, 0.01, 0.001]), stamp=0.0)
    # every pose measurement arrives 0.3 s after its stamp; one odometry sample arrives 0.05 s late
    held = sorted([(e[0] + 0.3, e) for e in ev if e[1] == 'pose'] +
                  [(e[0] + 0.05, e) for e in ev if e[1] == 'odom'][5:6], key=lambda p: p[0])
    delayed_ids = {id(e) for _, e in held}
    stream = [e for e in ev if id(e) not in delayed_ids]
    merged = sorted([(e[0], 0, e) for e in stream] + [(a, 1, e) for a, e in held], key=lambda p: (p[0], p[1]))
    for _, _, e in merged:
        assert _feed(late, e) in (UpdateResult.ACCEPTED, UpdateResult.IGNORED)
    assert late.replays > 0
    assert late.stamp == on_time.stamp
    np.testing.assert_allclose(late.x, on_time.x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(late.P, on_time.P, rtol=0, atol=1e-9)
    assert late.counts['pose'] == on_time.counts['pose']


def test_gating_rejects_outliers_and_counts_them() -> None:
    f = Eskf(EskfConfig())
    f.reset(np.array([1.0, 2.0, 0.3]), np.diag([0.05, 0.05, 0.01]) ** 2, stamp=0.0)
    R = np.diag([0.05, 0.05, 0.02]) ** 2
    for k in range(1, 11):
        assert f.update_pose(0.1 * k, np.array([1.0, 2.0, 0.3]), R) == UpdateResult.ACCEPTED
    before = f.x
    outliers = [np.array([4.0, 2.0, 0.3]), np.array([1.0, 2.0, 2.0]), np.array([1.5, 1.5, 0.3])]
    for k, z in enumerate(outliers):
        assert f.update_pose(1.05 + 0.01 * k, z, R) == UpdateResult.REJECTED
    assert f.rejections('pose') == 3
    assert f.counts['pose'] == {'accepted': 10, 'rejected': 3}
    assert f.consecutive_rejections('pose') == 3
    # a rejected measurement leaves the state alone (apart from the propagation to its stamp)
    x_now, _ = f.state_at(1.07)
    np.testing.assert_allclose(x_now[:3], before[:3], atol=1e-6)
    assert f.update_pose(1.1, np.array([1.0, 2.0, 0.3]), R).accepted
    assert f.consecutive_rejections('pose') == 0
    # the gate is off on request
    assert f.update_pose(1.2, np.array([4.0, 2.0, 0.3]), R, gate=False) == UpdateResult.ACCEPTED


def test_reset_and_too_late() -> None:
    f = Eskf(EskfConfig(history=1.0))
    assert not f.initialized
    # an uninitialised filter takes its first full pose as initialisation
    assert f.update_pose(0.0, np.array([0.0, 0.0, 0.0]), np.eye(3) * 0.01) == UpdateResult.INITIALIZED
    for k in range(1, 300):
        f.predict_imu(0.01 * k, 0.0, np.array([0.2, 0.0]))
    assert f.pose[0] > 0.5
    # measurements older than the history are refused
    assert f.update_pose(0.5, np.zeros(3), np.eye(3) * 0.01) == UpdateResult.TOO_LATE
    assert f.counts['pose']['too_late'] == 1
    # a global relocalization re-initialises the pose and the covariance
    new, cov = np.array([10.0, -3.0, 2.5]), np.diag([0.2, 0.2, 0.05]) ** 2
    f.reset(new, cov, stamp=3.0)
    np.testing.assert_allclose(f.pose, new)
    np.testing.assert_allclose(f.pose_cov, cov)
    np.testing.assert_allclose(f.x[3:5], 0.0)
    assert f.stamp == 3.0
    # nothing before the reset can change the state
    assert f.update_pose(2.95, np.zeros(3), np.eye(3) * 0.01) == UpdateResult.TOO_LATE
    assert f.update_pose(3.01, new, cov).accepted


def test_odom_process_dead_reckons_the_odometry() -> None:
    f = Eskf(EskfConfig(process='odom'))
    start = np.array([2.0, 1.0, 0.5])
    f.reset(start, np.diag([0.01, 0.01, 0.001]), stamp=0.0)
    odo0 = np.array([5.0, -1.0, -0.3])      # the odom frame is arbitrary
    odo = odo0.copy()
    assert f.predict_odom(0.0, odo0, np.array([1.0, 0.0, 0.5])).accepted   # the first sample is the reference
    for k in range(1, 101):
        odo = se2_compose(odo, np.array([0.02, 0.0, 0.01]))
        assert f.predict_odom(0.02 * k, odo, np.array([1.0, 0.0, 0.5])).accepted
    expected = se2_compose(start, se2_compose(se2_inverse(odo0), odo))
    np.testing.assert_allclose(f.pose, expected, atol=1e-9)
    # the uncertainty grew with the distance travelled
    assert f.pose_cov[0, 0] + f.pose_cov[1, 1] > 0.02
    # between samples the twist is held
    p, _ = f.pose_at(2.0 + 0.1)
    np.testing.assert_allclose(p, se2_compose(expected, np.array([0.1 * np.cos(0.025) , 0.1 * np.sin(0.025), 0.05])),
                               atol=1e-3)
    # IMU samples are not used by the odometry process model
    assert f.predict_imu(2.05, 0.0, np.zeros(2)) == UpdateResult.IGNORED


def test_imu_and_odometry_track_a_turn() -> None:
    """Constant speed on a circle: IMU propagation and odometry velocity keep the pose close without any fix."""
    f = Eskf(EskfConfig())
    v, w = 0.8, 0.4
    f.reset(np.zeros(3), np.diag([1e-4, 1e-4, 1e-5]), stamp=0.0, velocity=[v, 0.0])
    for k in range(0, 1001):
        t = 0.005 * k
        f.predict_imu(t, w, np.array([0.0, v * w]))       # centripetal acceleration to the left
        if k % 4 == 0:
            yaw = w * t
            f.predict_odom(t, np.array([v / w * np.sin(yaw), v / w * (1 - np.cos(yaw)), yaw]),
                           np.array([v, 0.0, w]))
    T = 5.0
    truth = np.array([v / w * np.sin(w * T), v / w * (1 - np.cos(w * T)), w * T])
    assert np.hypot(*(f.pose[:2] - truth[:2])) < 0.02
    assert abs(f.pose[2] - truth[2]) < 1e-3
    assert f.rejections() == 0


def test_odometry_gap_holds_the_pose_and_grows_the_covariance():
    """Odometry stopping is not the robot driving on: after odom_max_hold the pose stops moving and the
    uncertainty grows; when odometry returns the filter follows it again."""
    f = Eskf(EskfConfig(process='odom', odom_max_hold=0.5))
    f.reset(np.zeros(3), np.diag([0.01, 0.01, 0.001]), stamp=0.0)
    for k in range(1, 11):                      # 1 m/s along x for 1 s
        t = 0.1 * k
        f.predict_odom(t, [t, 0.0, 0.0], [1.0, 0.0, 0.0])
    p_last = f.pose_at(1.0)[0]
    p_hold, c_hold = f.pose_at(1.5)
    p_late, c_late = f.pose_at(11.0)            # 10 s without odometry
    assert p_hold[0] - p_last[0] == pytest.approx(0.5, abs=1e-6)   # the twist is held for 0.5 s
    assert p_late[0] == pytest.approx(p_hold[0], abs=1e-6)         # then no invented motion
    assert c_late[0, 0] > c_hold[0, 0] + 0.3 ** 2 * 9.0            # variance grew like the blind random walk
    f.predict_odom(11.0, [1.5, 0.0, 0.0], [0.0, 0.0, 0.0])         # odometry back: the robot stopped at 1.5 m
    f.predict_odom(11.1, [1.5, 0.0, 0.0], [0.0, 0.0, 0.0])
    assert f.pose_at(11.1)[0][0] == pytest.approx(p_last[0] + 0.5, abs=1e-6)


def _after_imu_gap(accel_bias_rw: float, imu_max_hold: float) -> Eskf:
    """1 s of IMU at 100 Hz (accelerating at 0.2 m/s^2, turning at 0.05 rad/s) from 1 m/s, then nothing."""
    f = Eskf(EskfConfig(accel_bias_rw=accel_bias_rw, imu_max_hold=imu_max_hold))
    f.reset(np.zeros(3), np.diag([0.01, 0.01, 0.001]), stamp=0.0, velocity=[1.0, 0.0])
    for k in range(1, 101):
        f.predict_imu(0.01 * k, 0.05, [0.2, 0.0])
    return f


def test_imu_gap_coasts_and_the_biases_stop_moving_the_pose():
    """An IMU that stops is missing, not reporting: after imu_max_hold the filter coasts on the last measured
    motion, and the accelerometer bias, free to wander (a tilting platform), no longer turns into metres of position
    uncertainty over a 10 s gap; the bias's own variance still grows, and the IMU drives again when it is back."""
    coast, held = _after_imu_gap(0.2, 0.5), _after_imu_gap(0.2, 60.0)
    x, P = coast.state_at(11.0)
    xh, Ph = held.state_at(11.0)
    assert np.allclose(x, xh, atol=1e-9)                  # the same motion is extrapolated either way
    assert Ph[0, 0] > 9.0 * P[0, 0] and Ph[1, 1] > 9.0 * P[1, 1]   # holding: the bias walk's t^5 growth
    # coasting, the position variance grows as with a bias that barely wanders (what the velocity's and the white
    # noise's variance give), not as the wandering bias would make it
    slow = _after_imu_gap(0.002, 0.5)
    grow = P[0, 0] - coast.state_at(1.5)[1][0, 0]
    grow_slow = slow.state_at(11.0)[1][0, 0] - slow.state_at(1.5)[1][0, 0]
    assert grow == pytest.approx(grow_slow, rel=0.2)
    assert P[6, 6] > coast.state_at(1.0)[1][6, 6] + 0.2 ** 2 * 9.9   # the bias itself still wanders
    coast.predict_imu(11.0, 0.0, [0.0, 0.0])             # the IMU is back: it drives again
    coast.predict_imu(11.01, 0.1, [0.0, 0.0])
    bg = coast.x[5]
    assert coast.state_at(11.02)[0][2] == pytest.approx(x[2] + (0.0 - bg) * 0.01 + (0.1 - bg) * 0.01, abs=1e-9)


def test_the_accelerometer_bias_walks_faster_while_the_platform_rolls_or_pitches():
    """A rocking platform leaks gravity into the horizontal specific force at up to g x its roll/pitch rate: the
    bias's variance grows by (accel_bias_rw^2 + (g r)^2 accel_tilt_time) per second; on a level platform (r = 0) by
    accel_bias_rw^2 alone, and with accel_tilt_time 0 the rate is ignored."""
    def bias_var_growth(tilt_rate: float, tilt_time: float) -> float:
        f = Eskf(EskfConfig(accel_bias_rw=0.01, accel_tilt_time=tilt_time))
        f.reset(np.zeros(3), np.diag([0.01, 0.01, 0.001]), stamp=0.0)
        for k in range(0, 101):
            f.predict_imu(0.01 * k, 0.0, [0.0, 0.0], tilt_rate)
        return f.state_at(1.0)[1][6, 6] - f.state_at(0.0)[1][6, 6]

    assert bias_var_growth(0.0, 1.0) == pytest.approx(0.01 ** 2, rel=1e-6)
    assert bias_var_growth(0.04, 2.0) == pytest.approx(0.01 ** 2 + (GRAVITY * 0.04) ** 2 * 2.0, rel=1e-6)
    assert bias_var_growth(0.04, 0.0) == pytest.approx(0.01 ** 2, rel=1e-6)
