"""The ROS-free sensor front end: content checks, decimation of huge clouds, counters."""
import numpy as np

from flm_core.frontend import SensorFrontEnd
from flm_core.geometry import yaw_to_quat
from flm_core.measurements import ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample
from flm_core.timebuffer import TimeBufferConfig, Verdict
from flm_core.validation import MAX_POINTS, Expectations


def _front():
    return SensorFrontEnd(TimeBufferConfig(), Expectations(anchor_ids=frozenset({'a0'})))


def test_reasons_are_counted_and_good_data_kept():
    f = _front()
    imu = ImuSample(stamp=1.0, frame_id='imu', angular_velocity=np.zeros(3), linear_acceleration=np.zeros(3))
    assert f.offer('imu', imu, None) == Verdict.ACCEPTED
    bad = ImuSample(stamp=1.1, frame_id='imu', angular_velocity=np.array([np.nan, 0, 0]),
                    linear_acceleration=np.zeros(3))
    assert f.offer('imu', bad, None) == 'nonfinite'
    zq = ImuSample(stamp=1.2, frame_id='imu', angular_velocity=np.zeros(3), linear_acceleration=np.zeros(3),
                   orientation=np.zeros(4))
    assert f.offer('imu', zq, None) == 'bad_quaternion'
    assert f.offer('uwb', RangeSample(stamp=1.0, anchor_id='b9', range=3.0), None) == 'unknown_anchor'
    assert f.offer('uwb', RangeSample(stamp=1.0, anchor_id='a0', range=-3.0), None) == 'invalid_range'
    odom = OdometrySample(stamp=1.0, frame_id='map', child_frame_id='base_link', position=np.zeros(3),
                          orientation=yaw_to_quat(0.0), linear_velocity=np.zeros(3), angular_velocity=np.zeros(3))
    assert f.offer('odom', odom, None) == 'wrong_frame'
    odom.frame_id = 'odom'
    odom.pose_covariance = np.full((6, 6), np.nan)
    assert f.offer('odom', odom, None) == 'nonfinite_covariance'
    empty = LaserScan2D(stamp=1.0, frame_id='laser', angles=np.zeros(0, np.float32),
                        ranges=np.zeros(0, np.float32), range_min=0.1, range_max=10.0)
    assert f.offer('scan', empty, None) == 'empty'
    s = f.stats(['imu', 'uwb', 'odom', 'scan'], now=2.0)
    assert s['imu']['received'] == 3 and s['imu']['buffer.accepted'] == 1
    assert s['imu']['rejected.nonfinite'] == 1 and s['imu']['rejected.bad_quaternion'] == 1
    assert s['uwb']['rejected.unknown_anchor'] == 1 and s['uwb']['rejected.invalid_range'] == 1
    assert s['scan']['rejected.empty'] == 1
    assert len(f.buffer.window(1.0)['imu']) == 1


def test_huge_cloud_is_decimated_not_rejected():
    f = _front()
    n = 2_000_000
    xyz = np.zeros((n, 3), np.float32)
    xyz[:, 0] = np.arange(n)
    v = f.offer('points', PointCloud(stamp=1.0, frame_id='lidar', xyz=xyz, ring=np.zeros(n, np.uint16)), None)
    assert v == Verdict.ACCEPTED
    (_, kept), = f.buffer.window(1.0)['points']
    assert kept.xyz.shape[0] <= MAX_POINTS and kept.ring.shape[0] == kept.xyz.shape[0]
    assert kept.xyz[1, 0] - kept.xyz[0, 0] == -(-n // MAX_POINTS)
    assert f.rejections[('points', 'decimated')] == 1
