"""Evaluation metrics agree with evo (within 1e-6) on the same TUM files; TUM round trip; interpolation."""
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
