"""REP-105: map->odom from the filter and the odometry; odom stays continuous, map->odom * odom->base = filter pose."""
from __future__ import annotations

import numpy as np

from flm_core.estimation.eskf import Eskf, EskfConfig
from flm_core.estimation.frames import (MapOdomTracker, map_to_odom, odom_jump, planar_to_transform,
                                        transform_to_planar)
from flm_core.geometry import se2_compose


def test_map_to_odom_composes_back() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mb = np.array([*rng.uniform(-10, 10, 2), rng.uniform(-np.pi, np.pi)])
        ob = np.array([*rng.uniform(-10, 10, 2), rng.uniform(-np.pi, np.pi)])
        np.testing.assert_allclose(se2_compose(map_to_odom(mb, ob), ob), mb, atol=1e-12)
    t, q = planar_to_transform(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(transform_to_planar(t, q), [1.0, 2.0, 3.0], atol=1e-12)


def test_odom_continuous_and_filter_pose_recovered() -> None:
    """Odometry drifts (wrong scale); the filter is corrected by poses; map->odom absorbs every correction."""
    f = Eskf(EskfConfig(process='odom'))
    tracker = MapOdomTracker()
    truth = np.array([1.0, 1.0, 0.2])
    f.reset(truth, np.diag([0.01, 0.01, 0.001]), stamp=0.0)
    odom = np.zeros(3)
    step_true = np.array([0.02, 0.0, 0.004])
    step_odom = np.array([0.021, 0.0, 0.0042])          # 5 % scale error
    prev_odom, prev_map_odom = None, None
    jumps = []
    for k in range(0, 301):
        t = 0.02 * k
        if k:
            truth = se2_compose(truth, step_true)
            odom = se2_compose(odom, step_odom)
        tracker.add_odom(t, odom)
        f.predict_odom(t, odom, step_odom / 0.02)
        if k % 25 == 0 and k:
            assert f.update_pose(t, truth, np.diag([0.02, 0.02, 0.01]) ** 2).accepted
        pose, _ = f.pose_at(t)
        mo = tracker.update(t, pose)
        assert mo is not None
        # the published map->odom composed with the odometry is the filter pose
        np.testing.assert_allclose(tracker.map_pose(odom), pose, atol=1e-9)
        # odom->base_link is the odometry itself: continuous, steps of the odometry's own size
        if prev_odom is not None:
            d, a = odom_jump(prev_odom, odom)
            assert d < 0.03 and a < 0.01
        if prev_map_odom is not None:
            jumps.append(odom_jump(prev_map_odom, mo)[0])
        prev_odom, prev_map_odom = odom.copy(), mo
    # the corrections went into map->odom (it moved), and the estimate followed the truth, not the odometry
    assert max(jumps) > 1e-3
    assert np.hypot(*(f.pose[:2] - truth[:2])) < 0.1
    assert np.hypot(*(se2_compose(np.array([1.0, 1.0, 0.2]), odom)[:2] - truth[:2])) > 0.2


def test_tracker_interpolates_odometry_at_the_filter_stamp() -> None:
    tr = MapOdomTracker()
    assert tr.update(0.0, np.zeros(3)) is None
    tr.add_odom(0.0, np.array([0.0, 0.0, 3.1]))
    tr.add_odom(0.1, np.array([1.0, 0.0, -3.1]))          # yaw wraps through pi
    o = tr.odom_at(0.05)
    np.testing.assert_allclose(o[:2], [0.5, 0.0])
    assert abs(abs(o[2]) - np.pi) < 1e-9
    assert tr.odom_at(1.0) is None                          # beyond the extrapolation limit
    mo = tr.update(0.05, np.array([2.0, 3.0, 0.0]))
    np.testing.assert_allclose(se2_compose(mo, o), [2.0, 3.0, 0.0], atol=1e-12)
