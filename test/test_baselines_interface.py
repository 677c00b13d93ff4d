"""The common baseline interface: reset / step / estimate behave the same for every filter baseline."""
from __future__ import annotations

import numpy as np

from flm_core.estimation.baselines import Baseline, DeadReckoningBaseline, Estimate, UwbBaseline
from flm_core.geometry import yaw_to_quat
from flm_core.measurements import ImuSample, OdometrySample, RangeSample
from flm_core.site import Anchor, Site

ANCHORS = (Anchor('a0', np.array([0.0, 0.0, 2.5])), Anchor('a1', np.array([10.0, 0.0, 2.5])),
           Anchor('a2', np.array([10.0, 8.0, 2.5])), Anchor('a3', np.array([0.0, 8.0, 2.5])))


def _odom(t: float, x: float) -> OdometrySample:
    return OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.array([x, 0.0, 0.0]),
                          orientation=yaw_to_quat(0.0), linear_velocity=np.array([0.5, 0.0, 0.0]),
                          angular_velocity=np.zeros(3))


def _imu(t: float) -> ImuSample:
    return ImuSample(stamp=t, frame_id='imu_link', angular_velocity=np.zeros(3),
                     linear_acceleration=np.array([0.0, 0.0, 9.81]))


def test_uniform_interface_and_uwb_fix() -> None:
    site = Site(name='box', anchors=ANCHORS)
    ext = {'uwb_tag': (0.0, 0.0, 0.8, 0.0)}
    for b in (DeadReckoningBaseline(ext), UwbBaseline(site, ext)):
        assert isinstance(b, Baseline)
        assert b.estimate(0.0) is None                     # nothing before the initial pose
        b.reset(0.0, np.array([2.0, 3.0, 0.0]), np.diag([0.1, 0.1, 0.05]) ** 2)
        fixes = []
        for k in range(0, 201):
            t = 0.01 * k
            assert b.step(_imu(t)) is None
            if k % 2 == 0:
                assert b.step(_odom(t, 0.5 * t)) is None
            if k % 10 == 5 and isinstance(b, UwbBaseline):
                tag = np.array([2.0 + 0.5 * t, 3.0, 0.8])
                for a in ANCHORS:
                    out = b.step(RangeSample(stamp=t, anchor_id=a.id, range=float(np.linalg.norm(a.position - tag))))
                    if out is not None:
                        fixes.append(out)
        est = b.estimate(2.0)
        assert isinstance(est, Estimate) and est.source == b.name
        np.testing.assert_allclose(est.pose, [3.0, 3.0, 0.0], atol=0.05)
        assert est.cov.shape == (3, 3)
        if isinstance(b, UwbBaseline):
            assert len(fixes) >= 15 and all(f.info['inliers'] == 4 for f in fixes)
            assert len(b.update_times) == 4 * 20
            # an unknown anchor is ignored, not an error
            assert b.step(RangeSample(stamp=2.1, anchor_id='zz', range=3.0)) is None
            assert b.diagnostics()['uwb_ignored'] == 1


class _Rig:
    """The part of flm_core.model.tokens.Rig a pose source uses."""

    def __init__(self, mounts: dict, uwb_frame: str = 'uwb_tag') -> None:
        self.mounts, self.uwb_frame = mounts, uwb_frame

    def mount(self, frame_id: str) -> np.ndarray:
        return np.asarray(self.mounts.get(frame_id, (0.0, 0.0, 0.0, 0.0)), dtype=np.float64)


def test_pose_sources_for_the_pipeline() -> None:
    """make_pose_source('icp'/'uwb') localize from a measurement window like the model does."""
    import pytest

    from flm_core.datagen import ScenarioConfig, generate_scenario
    from flm_core.estimation.baselines import make_pose_source
    from flm_core.estimation.harness import scenario_extrinsics

    cfg = ScenarioConfig(duration=4.0)
    cfg.building.families = ('hall',)
    cfg.building.size_x, cfg.building.size_y = (15.0, 16.0), (12.0, 13.0)
    cfg.anchors.count, cfg.anchors.layouts = (6, 6), ('corners',)
    cfg.motion.kidnap_prob = 0.0
    sc = generate_scenario(cfg, 61)
    names = {'lidar2d': 'scan', 'uwb': 'uwb', 'odom': 'odom'}
    window_all = {names[k]: [(m.stamp, m) for m in sc.streams[k].measurements()] for k in names}
    rig = _Rig(scenario_extrinsics(sc))
    site = sc.site()
    t = 3.0
    window = {k: [(s, m) for s, m in v if t - 1.0 <= s <= t] for k, v in window_all.items()}
    truth = sc.trajectory.sample(np.array([t])).pose[0]
    icp = make_pose_source('icp')
    assert icp.localize(window, site, t, rig=rig) is None               # no global mode
    est = icp.localize(window, site, t, truth + [0.25, -0.1, 0.1], np.diag([0.3, 0.3, 0.2]) ** 2, rig=rig)
    assert est is not None and est.health['scan'] > 0.8
    assert np.hypot(*(est.pose[:2] - truth[:2])) < 0.05 and abs(est.pose[2] - truth[2]) < 0.01
    uwb = make_pose_source('uwb')
    g = uwb.localize(window, site, t, rig=rig)
    assert g is not None and g.mode == 'global' and np.hypot(*(g.pose[:2] - truth[:2])) < 0.4
    tr = uwb.localize(window, site, t, truth, np.eye(3) * 0.01, rig=rig)
    assert tr.mode == 'tracking' and tr.pose[2] == truth[2] and tr.cov[2, 2] >= 1e3
    with pytest.raises(ValueError, match='unknown classical pose source'):
        make_pose_source('nope')
