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
