"""AMCL's interface pieces on a real pipeline (no DDS): the hypotheses with weights, the filter's twist with its
covariance, the saved-pose file in AMCL's format."""
from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import PoseArray
from std_msgs.msg import Header

from flm_core import config as C
from flm_core.estimation.baselines import UwbPoseSource
from flm_core.geometry import quat_to_yaw, wrap_angle_float, yaw_to_quat
from flm_core.measurements import ImuSample, OdometrySample, RangeSample
from flm_core.pipeline import Rival
from flm_core.site import Anchor, Site
from flm_ros import amcl_interface as amcl
from flm_ros.localizer_node import TABLE

ANCHORS = {'a0': (0.0, 0.0, 2.5), 'a1': (10.0, 0.0, 2.5), 'a2': (0.0, 8.0, 2.5), 'a3': (10.0, 8.0, 2.5)}
SITE = Site(name='four_anchors', anchors=tuple(Anchor(k, np.array(v)) for k, v in ANCHORS.items()))


def _pipeline(**overrides):
    p = {q.name: q.default for q in TABLE}
    p.update(overrides)
    return C.make_pipeline(C.load_config(p), SITE, UwbPoseSource())


def _drive(pipe, seconds: float, speed: float = 0.2, imu: bool = False) -> float:
    """Odometry at 50 Hz (and IMU) of a robot driving along +x at ``speed`` m/s from (2, 3), heading 0."""
    t0 = 1000.0
    t = t0
    for k in range(int(seconds * 50)):
        t = t0 + 0.02 * k
        x = speed * (t - t0)
        pipe.offer('odom', OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link',
                                          position=np.array([x, 0.0, 0.0]), orientation=yaw_to_quat(0.0),
                                          linear_velocity=np.array([speed, 0.0, 0.0]),
                                          angular_velocity=np.zeros(3)), None)
        if imu:
            pipe.offer('imu', ImuSample(stamp=t, frame_id='base_link', angular_velocity=np.zeros(3),
                                        linear_acceleration=np.array([0.0, 0.0, 9.81])), None)
        if k % 5 == 0:
            for i, (a, xyz) in enumerate(ANCHORS.items()):  # one range per stamp (the buffer drops duplicates)
                d = float(np.linalg.norm(np.array([2.0 + x, 3.0, 0.0]) - np.array(xyz)))
                pipe.offer('uwb', RangeSample(stamp=t + 0.001 * i, anchor_id=a, range=d, max_range=50.0), None)
    return t


def test_hypotheses_are_the_filter_and_its_rivals_weighted_by_model_likelihood():
    pipe = _pipeline()
    assert pipe.hypotheses(1000.0) is None, 'nothing before the first pose'
    t = _drive(pipe, 1.0)
    pipe.set_initial_pose(np.array([2.2, 3.0, 0.0]), np.diag([0.01, 0.01, 0.01]), t)
    poses, w = pipe.hypotheses(t)
    assert poses.shape == (1, 3) and w.tolist() == [1.0]
    assert poses[0] == pytest.approx([2.2, 3.0, 0.0], abs=1e-6)
    # an ambiguous global result leaves rivals (the pipeline makes them in _keep_rivals, as here)
    pipe._rivals.append(Rival(pipe._new_filter_at(np.array([7.8, 5.0, math.pi]), np.diag([0.01] * 3), t),
                              logscore=-1.0))
    pipe._logscore = 0.0
    poses, w = pipe.hypotheses(t)
    assert poses[:, :2] == pytest.approx(np.array([[2.2, 3.0], [7.8, 5.0]]), abs=1e-6)
    assert w == pytest.approx([1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))])
    header = Header(frame_id='map')
    cloud = amcl.cloud_message('pose_array', header, poses, w)
    assert isinstance(cloud, PoseArray) and len(cloud.poses) == 2
    yaw = float(quat_to_yaw(np.array([getattr(cloud.poses[1].orientation, c) for c in 'xyzw'])))
    assert abs(wrap_angle_float(yaw - math.pi)) < 1e-6
    if amcl.NAV2_MSGS:
        pc = amcl.cloud_message('particle_cloud', header, poses, w)
        assert [p.weight for p in pc.particles] == pytest.approx(w.tolist())
        assert pc.header.frame_id == 'map'


def test_cloud_type_follows_the_parameter_and_what_is_installed():
    assert amcl.cloud_type('pose_array') == ('pose_array', PoseArray)
    kind, _ = amcl.cloud_type('auto')
    assert kind == ('particle_cloud' if amcl.NAV2_MSGS else 'pose_array')
    if not amcl.NAV2_MSGS:
        with pytest.raises(ValueError, match='nav2_msgs'):
            amcl.cloud_type('particle_cloud')


@pytest.mark.parametrize('process', ['odom', 'imu'])
def test_twist_comes_from_the_filter_with_a_covariance_that_is_never_zero(process):
    pipe = _pipeline(**{'filter.process': process})
    assert amcl.twist(pipe, 1000.0) is None
    _drive(pipe, 0.5, imu=process == 'imu')
    pipe.set_initial_pose(np.array([2.0, 3.0, 0.0]), np.diag([0.01, 0.01, 0.01]), 1000.0)
    t = 1000.0 + 3.0
    for k in range(150):  # the robot keeps driving; the filter follows
        s = 1000.5 + 0.02 * k
        x = 0.2 * (s - 1000.0)
        pipe.offer('odom', OdometrySample(stamp=s, frame_id='odom', child_frame_id='base_link',
                                          position=np.array([x, 0.0, 0.0]), orientation=yaw_to_quat(0.0),
                                          linear_velocity=np.array([0.2, 0.0, 0.0]), angular_velocity=np.zeros(3)),
                   None)
        if process == 'imu':
            pipe.offer('imu', ImuSample(stamp=s, frame_id='base_link', angular_velocity=np.zeros(3),
                                        linear_acceleration=np.array([0.0, 0.0, 9.81])), None)
        t = s
    v, cov = amcl.twist(pipe, t)
    assert v[0] == pytest.approx(0.2, abs=0.03) and abs(v[1]) < 0.03 and abs(v[2]) < 0.02
    assert np.all(np.isfinite(cov)) and np.allclose(cov, cov.T)
    assert np.all(np.linalg.eigvalsh(cov) > 0), 'a covariance, never zero'
    assert cov[0, 0] < 0.05, 'the filter knows its velocity'
    if process == 'odom':
        assert cov[2, 2] == amcl.UNKNOWN_VAR, 'the odometry-driven filter has no yaw-rate covariance: unknown'
    else:
        assert 0 < cov[2, 2] < 0.01


def test_saved_pose_file_round_trip_and_errors(tmp_path):
    f = tmp_path / 'saved_pose'
    amcl.save_pose_file(f, 1738678400.25, 'map', np.array([1.5, -2.25, 3.0]))
    pose, stamp = amcl.load_pose_file(f, 'map')
    assert pose == pytest.approx([1.5, -2.25, 3.0]) and stamp == pytest.approx(1738678400.25)
    assert not (tmp_path / 'saved_pose.tmp').exists()
    # AMCL's own files: the old format without timestamp and frame, and comments
    f.write_text('# AMCL Saved Pose\nx: 3.0\ny: 4.0\nz: 0.0\nyaw: 0.785\n')
    pose, stamp = amcl.load_pose_file(f, 'map')
    assert pose == pytest.approx([3.0, 4.0, 0.785]) and stamp == 0.0
    with pytest.raises(ValueError, match="frame 'world'"):
        f.write_text('frame_id: world\nx: 1\ny: 2\nyaw: 0\n')
        amcl.load_pose_file(f, 'map')
    with pytest.raises(ValueError, match="no 'yaw'"):
        f.write_text('x: 1\ny: 2\n')
        amcl.load_pose_file(f, 'map')
    with pytest.raises(ValueError, match='not finite'):
        f.write_text('x: nan\ny: 2\nyaw: 0\n')
        amcl.load_pose_file(f, 'map')
    with pytest.raises(ValueError, match='No such file'):
        amcl.load_pose_file(tmp_path / 'missing', 'map')


def test_filter_parameters_reach_the_pipelines_filter():
    pipe = _pipeline(**{'filter.gate_prob': 0.99, 'filter.gyro_noise': 0.01, 'filter.history': 3.0})
    cfg = pipe.config.eskf
    assert (cfg.gate_prob, cfg.gyro_noise, cfg.history) == (0.99, 0.01, 3.0)
    assert pipe.filter.config.gate_prob == 0.99
    assert C.load_config({q.name: q.default for q in TABLE}).pipeline.eskf == type(cfg)()
