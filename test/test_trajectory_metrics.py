"""Evaluation metrics agree with evo (within 1e-6) on the same TUM files; TUM round trip; interpolation; position
NEES, sigma coverage and confidently-wrong time on numbers worked by hand; event strings for the error plot."""
import numpy as np
import pytest

from flm_core.evaluation.trajectory import (
    Trajectory, ape_stats, failure_segments, interpolate, read_tum, rpe_stats, write_tum)


def _trajs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = 1000.0 + np.cumsum(rng.uniform(0.05, 0.15, n))
    yaw = np.cumsum(rng.normal(0, 0.05, n))
    xy = np.cumsum(np.column_stack([np.cos(yaw), np.sin(yaw)]) * 0.1, axis=0)
    gt = np.column_stack([xy, yaw])
    est = gt + np.column_stack([rng.normal(0, 0.1, (n, 2)), rng.normal(0, 0.03, n)])
    return Trajectory(t, est), Trajectory(t, gt)


def test_tum_round_trip(tmp_path):
    est, _ = _trajs()
    back = read_tum(write_tum(tmp_path / 'e.tum', est))
    np.testing.assert_allclose(back.t, est.t, atol=1e-9)
    np.testing.assert_allclose(back.poses[:, :2], est.poses[:, :2], atol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (back.poses[:, 2] - est.poses[:, 2]))), 0, atol=1e-8)
    (tmp_path / 'bad.tum').write_text('1 2 3\n')
    with pytest.raises(ValueError, match='8 columns'):
        read_tum(tmp_path / 'bad.tum')


def test_ape_and_rpe_match_evo(tmp_path):
    from evo.core import metrics, sync
    from evo.tools import file_interface

    est, gt = _trajs()
    write_tum(tmp_path / 'est.tum', est)
    write_tum(tmp_path / 'gt.tum', gt)
    ref = file_interface.read_tum_trajectory_file(str(tmp_path / 'gt.tum'))
    e = file_interface.read_tum_trajectory_file(str(tmp_path / 'est.tum'))
    ref, e = sync.associate_trajectories(ref, e)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((ref, e))
    ours = ape_stats(read_tum(tmp_path / 'est.tum').poses, read_tum(tmp_path / 'gt.tum').poses)
    for k, v in ape.get_all_statistics().items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k
    rpe = metrics.RPE(metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames,
                      all_pairs=False)
    rpe.process_data((ref, e))
    ours = rpe_stats(read_tum(tmp_path / 'est.tum').poses, read_tum(tmp_path / 'gt.tum').poses, delta=1)
    for k, v in rpe.get_all_statistics().items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k


def test_interpolation_and_gaps():
    gt = Trajectory(np.array([0.0, 1.0, 2.0, 5.0]), np.array([[0, 0, 3.0], [1, 0, -3.0], [2, 0, 0], [5, 0, 0]]))
    p, ok = interpolate(gt, np.array([0.5, 1.5, 3.0, 6.0]), max_gap=1.0)
    assert ok.tolist() == [True, True, False, False]
    assert p[0, 0] == pytest.approx(0.5)
    assert abs(p[0, 2]) == pytest.approx(np.pi, abs=1e-9)   # shortest arc through +-pi, not through 0
    assert np.isnan(p[2]).all()


def test_failure_segments():
    t = np.arange(10.0)
    err = np.array([0.1, 2, 3, 0.2, 0.1, np.nan, 5, 0.1, 0.1, 2])
    assert failure_segments(t, err, 1.0) == [(1.0, 2.0), (5.0, 6.0), (9.0, 9.0)]


def test_position_sigma_and_nees():
    from flm_core.evaluation.metrics import position_nees, position_sigma, pose_nees
    cov = np.array([np.diag([0.04, 0.01, 0.1]), np.diag([0.01, 0.09, 0.1]), np.full((3, 3), np.nan)])
    np.testing.assert_allclose(position_sigma(cov), [0.2, 0.3, np.inf])
    gt = np.zeros((3, 3))
    est = np.array([[0.2, 0.1, 0.3], [0.0, -0.3, 0.0], [1.0, 1.0, 0.0]])
    # 2 dof: x^2/sx^2 + y^2/sy^2 (the yaw error does not enter)
    np.testing.assert_allclose(position_nees(est, cov, gt)[:2], [0.04 / 0.04 + 0.01 / 0.01, 0.09 / 0.09])
    np.testing.assert_allclose(pose_nees(est, cov, gt)[:2], [2.0 + 0.09 / 0.1, 1.0])


def test_within_sigma_of_a_consistent_estimator():
    """Gaussian errors drawn from the stated covariance: the fractions inside 1 and 2 sigma are the chi2(2) ones."""
    from flm_core.evaluation.metrics import CONSISTENT_WITHIN, position_nees, within_sigma
    rng = np.random.default_rng(1)
    n = 20000
    cov = np.tile(np.diag([0.3 ** 2, 0.1 ** 2, 0.05 ** 2]), (n, 1, 1))
    est = rng.multivariate_normal(np.zeros(3), cov[0], n)
    v = position_nees(est, cov, np.zeros((n, 3)))
    assert within_sigma(v, 1) == pytest.approx(CONSISTENT_WITHIN[1], abs=0.01)
    assert within_sigma(v, 2) == pytest.approx(CONSISTENT_WITHIN[2], abs=0.01)
    assert CONSISTENT_WITHIN[1] == pytest.approx(0.3935, abs=1e-4) and CONSISTENT_WITHIN[2] == pytest.approx(0.8647,
                                                                                                         abs=1e-4)
    assert within_sigma(v * 4, 1) < 0.2                        # an overconfident estimator: far fewer inside
    assert np.isnan(within_sigma(np.array([np.nan]), 1))


def test_confidently_wrong():
    from flm_core.evaluation.metrics import confidently_wrong
    t = np.arange(12) * 0.1                                    # 10 Hz
    err = np.array([0.1, 0.8, 0.9, 0.9, 0.2, 2.0, 2.0, 0.6, 0.6, 0.6, 0.2, 3.0])
    sig = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    # wrong: 1-3 (0.3 s), not 5 (2.0 < 3 * 1.0), 6-9 (0.4 s), 11 (the last: the median interval, 0.1 s)
    w = confidently_wrong(t, err, sig)
    assert w.total_s == pytest.approx(0.8)
    assert w.longest_s == pytest.approx(0.4)
    assert w.longest == pytest.approx((0.6, 1.0))
    # errors under 0.5 m are never 'wrong', however small the sigma; NaN errors (no ground truth) neither
    assert confidently_wrong(t, np.full(12, 0.45), np.full(12, 1e-3)).total_s == 0.0
    assert confidently_wrong(t, np.full(12, np.nan), np.full(12, 1e-3)).longest is None
    # a gap in the output counts at most max_hold s
    w = confidently_wrong(np.array([0.0, 10.0]), np.array([5.0, 5.0]), np.array([0.1, 0.1]), max_hold=1.0)
    assert w.total_s == pytest.approx(2.0)


def test_event_strings_are_parsed_for_the_error_plot():
    from flm_core.evaluation.report import parse_events
    ev = ['0.50 s: initial pose', '1.25 s: global localization', '3.00 s: IMU data: the filter is IMU-driven from now '
          'on', '4.10 s: lost', '5.00 s: ambiguous: 3 hypotheses', '6.00 s: ambiguity resolved', 'garbage']
    assert parse_events(ev) == [(0.5, 'initial pose'), (1.25, 'global localization'), (4.1, 'lost'),
                                (5.0, 'ambiguous: 3 hypotheses'), (6.0, 'ambiguity resolved')]


def test_largest_gap():
    from flm_core.evaluation.trajectory import largest_gap
    g = Trajectory(np.array([0.0, 0.1, 2.1, 2.2]), np.zeros((4, 3)))
    assert largest_gap(g) == pytest.approx((2.0, 0.1))
    assert largest_gap(Trajectory(np.zeros(1), np.zeros((1, 3))))[0] == 0.0
