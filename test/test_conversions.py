"""Round trips and error cases of flm_ros.conversions with the real rclpy message classes (no mocks).

Raw PointCloud2 / Image buffers are built independently with numpy dtypes (any field order, padding, both byte
orders) so decoding is checked against bytes this file wrote itself, not against the module's own encoder.
"""
from __future__ import annotations

import array
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Imu, LaserScan, PointCloud2, PointField, Range
from sensor_msgs.msg import Image as ImageMsg
from std_msgs.msg import Header

from flm_core.measurements import (
    CameraIntrinsics,
    Image,
    ImuSample,
    LaserScan2D,
    OdometrySample,
    PointCloud,
    PoseWithCovariance,
    RangeSample,
)
from flm_core.site import OccupancyMap
from flm_ros import conversions as cv

RNG_SEED = 1234


# --------------------------------------------------------------------------------------------------- helpers
def assert_msg_equal(a, b, path: str = 'msg') -> None:
    """Field-by-field message equality that treats NaN as equal to NaN (rclpy's __eq__ does not)."""
    assert type(a) is type(b), f'{path}: {type(a).__name__} != {type(b).__name__}'
    if hasattr(a, 'get_fields_and_field_types'):
        for name in a.get_fields_and_field_types():
            assert_msg_equal(getattr(a, name), getattr(b, name), f'{path}.{name}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{path}: length {len(a)} != {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            assert_msg_equal(x, y, f'{path}[{i}]')
    elif isinstance(a, (array.array, np.ndarray)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f'{path}: NaN != {b!r}'
    else:
        assert a == b, f'{path}: {a!r} != {b!r}'


def wire(msg):
    """The message after a CDR serialize/deserialize round trip (bytes, as rclpy wants)."""
    data = serialize_message(msg)
    assert isinstance(data, bytes)
    return deserialize_message(bytes(data), type(msg))


def f32(x: float) -> float:
    """x rounded to float32, as a float32 message field carries it."""
    return float(np.float32(x))


def header(stamp: float = 12.25, frame_id: str = 'sensor') -> Header:
    return Header(stamp=cv.sec_to_stamp(stamp), frame_id=frame_id)


def raw_cloud(struct: np.ndarray, fields: list[PointField], *, big: bool = False, row_pad: int = 0,
              pad_byte: int = 0xAB) -> PointCloud2:
    """A PointCloud2 from a (H, W) structured numpy array (its dtype gives offsets, byte order and point_step),
    with ``row_pad`` junk bytes after every row."""
    h, w = struct.shape
    step = struct.dtype.itemsize
    rows = np.frombuffer(struct.tobytes(), np.uint8).reshape(h, w * step)
    if row_pad:
        rows = np.concatenate([rows, np.full((h, row_pad), pad_byte, np.uint8)], axis=1)
    msg = PointCloud2(header=header(), height=h, width=w, fields=fields, is_bigendian=big, point_step=step,
                      row_step=w * step + row_pad, is_dense=False)
    msg.data = array.array('B', rows.tobytes())
    return msg


def pf(name: str, offset: int, datatype: int, count: int = 1) -> PointField:
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


# ------------------------------------------------------------------------------------------------------ time
@pytest.mark.parametrize('t, sec, nsec', [
    (0.0, 0, 0), (1.5, 1, 500_000_000), (-0.25, -1, 750_000_000), (-1.0, -1, 0),
    (1.9999999999, 2, 0), (-1e-10, 0, 0), (2.0000000004, 2, 0), (3.0000000006, 3, 1),
])
def test_sec_to_stamp_values(t, sec, nsec):
    s = cv.sec_to_stamp(t)
    assert isinstance(s, Time)
    assert (s.sec, s.nanosec) == (sec, nsec)


def test_stamp_round_trips():
    assert cv.stamp_to_sec(Time(sec=3, nanosec=250_000_000)) == 3.25
    assert cv.stamp_to_sec(Time(sec=-1, nanosec=750_000_000)) == -0.25
    for t in np.concatenate([np.linspace(-5, 5, 1001), [1.7e9 + 0.123456789, 1e-9, 0.999999999]]):
        s = cv.sec_to_stamp(float(t))
        assert 0 <= s.nanosec < 1_000_000_000
        assert abs(cv.stamp_to_sec(s) - t) <= 1e-9 + 4e-16 * abs(t)
    big = Time(sec=1_700_000_000, nanosec=123_456_789)
    back = cv.sec_to_stamp(cv.stamp_to_sec(big))
    assert back.sec == big.sec and abs(back.nanosec - big.nanosec) < 1000   # float64 resolution at 1.7e9 s


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf'), 2.0 ** 31, -(2.0 ** 31) - 1])
def test_sec_to_stamp_rejects(bad):
    with pytest.raises(ValueError):
        cv.sec_to_stamp(bad)


# ------------------------------------------------------------------------------------------------- LaserScan
def scan_msg(n: int = 1080, with_intensities: bool = True) -> LaserScan:
    rng = np.random.default_rng(RNG_SEED)
    ranges = rng.uniform(0.2, 25.0, n).astype(np.float32)
    ranges[[0, 5, 9, 13, 17]] = [np.inf, -np.inf, np.nan, 0.01, 99.0]   # REP-117 + out of [min, max]
    inc = 2 * math.pi / n
    msg = LaserScan(header=header(100.5, 'laser'), angle_min=f32(-math.pi), angle_increment=f32(inc),
                    range_min=0.1, range_max=30.0, time_increment=f32(1e-5), scan_time=0.1)
    msg.angle_max = f32(msg.angle_min + (n - 1) * msg.angle_increment)
    msg.range_min, msg.range_max, msg.scan_time = f32(0.1), f32(30.0), f32(0.1)
    msg.ranges = array.array('f', ranges.tobytes())
    if with_intensities:
        msg.intensities = array.array('f', rng.uniform(0, 1000, n).astype(np.float32).tobytes())
    return msg


def test_scan_from_msg_keeps_rep117_beams():
    msg = scan_msg()
    scan = cv.scan_from_msg(msg)
    assert scan.stamp == 100.5 and scan.frame_id == 'laser'
    assert scan.ranges.dtype == np.float32 and scan.ranges.shape == (1080,)
    np.testing.assert_array_equal(scan.ranges, np.frombuffer(msg.ranges, np.float32))
    assert scan.ranges[0] == np.inf and scan.ranges[5] == -np.inf and np.isnan(scan.ranges[9])
    assert scan.ranges[13] == np.float32(0.01) and scan.ranges[17] == 99.0
    valid = scan.valid()
    assert not valid[[0, 5, 9, 13, 17]].any() and valid[[1, 2, 3]].all()
    expect = (msg.angle_min + np.arange(1080) * msg.angle_increment).astype(np.float32)
    np.testing.assert_array_equal(scan.angles, expect)
    assert scan.angles.dtype == np.float32
    assert scan.range_min == pytest.approx(0.1) and scan.range_max == 30.0
    np.testing.assert_array_equal(scan.intensities, np.frombuffer(msg.intensities, np.float32))
    # the measurement owns its arrays
    msg.ranges[1] = 7.0
    assert scan.ranges[1] != 7.0


@pytest.mark.parametrize('with_intensities', [True, False])
def test_scan_round_trip_and_wire(with_intensities):
    msg = scan_msg(with_intensities=with_intensities)
    scan = cv.scan_from_msg(msg)
    assert (scan.intensities is None) == (not with_intensities)
    out = cv.scan_to_msg(scan)
    np.testing.assert_array_equal(np.frombuffer(out.ranges, np.float32), np.frombuffer(msg.ranges, np.float32))
    assert len(out.intensities) == len(msg.intensities)
    assert out.angle_min == msg.angle_min
    assert out.angle_increment == pytest.approx(msg.angle_increment, rel=1e-6)
    assert out.angle_max == pytest.approx(msg.angle_max, abs=1e-5)
    assert (out.range_min, out.range_max, out.scan_time, out.time_increment) == \
        (msg.range_min, msg.range_max, msg.scan_time, msg.time_increment)
    assert_msg_equal(out.header, msg.header)
    again = cv.scan_from_msg(wire(out))
    np.testing.assert_allclose(again.angles, scan.angles, atol=2e-6)
    np.testing.assert_array_equal(again.ranges, scan.ranges)
    assert_msg_equal(wire(out), out)


def test_scan_to_msg_from_measurement():
    n = 360
    angles = np.linspace(-1.0, 1.0, n).astype(np.float32)
    scan = LaserScan2D(stamp=3.0, frame_id='l', angles=angles, ranges=np.full(n, 2.0, np.float32),
                       range_min=0.1, range_max=10.0)
    msg = cv.scan_to_msg(scan)
    assert msg.angle_min == np.float32(-1.0) and msg.angle_max == pytest.approx(1.0, abs=1e-6)
    assert msg.angle_increment == pytest.approx(2.0 / (n - 1), rel=1e-6)
    assert len(msg.intensities) == 0 and len(msg.ranges) == n
    np.testing.assert_allclose(cv.scan_from_msg(msg).angles, angles, atol=1e-6)


def test_scan_errors():
    msg = scan_msg(20)
    msg.intensities = array.array('f', [1.0] * 19)
    with pytest.raises(ValueError, match='intensities'):
        cv.scan_from_msg(msg)
    angles = np.array([0.0, 0.1, 0.3, 0.4], np.float32)
    with pytest.raises(ValueError, match='evenly'):
        cv.scan_to_msg(LaserScan2D(0.0, 'l', angles, np.ones(4, np.float32), 0.1, 10.0))
    with pytest.raises(ValueError, match='angles'):
        cv.scan_to_msg(LaserScan2D(0.0, 'l', angles[:3], np.ones(4, np.float32), 0.1, 10.0))
    with pytest.raises(ValueError, match='intensities'):
        cv.scan_to_msg(LaserScan2D(0.0, 'l', np.arange(4, dtype=np.float32), np.ones(4, np.float32), 0.1, 10.0,
                                   intensities=np.ones(3, np.float32)))


def test_scan_empty():
    scan = cv.scan_from_msg(LaserScan(header=header()))
    assert scan.ranges.shape == (0,) and scan.angles.shape == (0,) and scan.intensities is None
    msg = cv.scan_to_msg(scan)
    assert len(msg.ranges) == 0


# ----------------------------------------------------------------------------------------------- PointCloud2
def sample_cloud(n: int = 1000, h: int = 1, seed: int = RNG_SEED) -> PointCloud:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 10, (n, 3)).astype(np.float32)
    xyz[3] = np.nan
    return PointCloud(stamp=42.125, frame_id='lidar', xyz=xyz, intensity=rng.uniform(0, 255, n).astype(np.float32),
                      ring=(np.arange(n) % 128).astype(np.uint16), time=np.linspace(0, 0.1, n).astype(np.float32),
                      height=h, width=n // h)


def assert_cloud_equal(a: PointCloud, b: PointCloud) -> None:
    assert (a.stamp, a.frame_id, a.height, a.width) == (b.stamp, b.frame_id, b.height, b.width)
    np.testing.assert_array_equal(a.xyz, b.xyz)
    for name in ('intensity', 'ring', 'time'):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_cloud_to_msg_layout_and_bytes():
    cloud = sample_cloud()
    msg = cv.cloud_to_msg(cloud)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('x', 0, PointField.FLOAT32, 1), ('y', 4, PointField.FLOAT32, 1), ('z', 8, PointField.FLOAT32, 1),
        ('intensity', 12, PointField.FLOAT32, 1), ('time', 16, PointField.FLOAT32, 1),
        ('ring', 20, PointField.UINT16, 1)]
    assert (msg.point_step, msg.row_step, msg.height, msg.width) == (24, 24 * 1000, 1, 1000)
    assert msg.is_bigendian is False and msg.is_dense is False        # one NaN point
    assert len(msg.data) == 24 * 1000
    # decode independently of the module
    dt = np.dtype({'names': ['xyz', 'i', 't', 'r'], 'formats': [('<f4', (3,)), '<f4', '<f4', '<u2'],
                   'offsets': [0, 12, 16, 20], 'itemsize': 24})
    raw = np.frombuffer(bytes(msg.data), dt)
    np.testing.assert_array_equal(raw['xyz'], cloud.xyz)
    np.testing.assert_array_equal(raw['i'], cloud.intensity)
    np.testing.assert_array_equal(raw['t'], cloud.time)
    np.testing.assert_array_equal(raw['r'], cloud.ring)
    assert bytes(msg.data)[22::24] == b'\0' * 1000                   # padding is zeroed
    assert cv.stamp_to_sec(msg.header.stamp) == 42.125 and msg.header.frame_id == 'lidar'


def test_cloud_round_trip_and_wire():
    cloud = sample_cloud()
    msg = cv.cloud_to_msg(cloud)
    assert_cloud_equal(cv.cloud_from_msg(msg), cloud)
    back = wire(msg)
    assert_msg_equal(back, msg)
    assert_cloud_equal(cv.cloud_from_msg(back), cloud)


@pytest.mark.parametrize('present', [(), ('intensity',), ('ring',), ('time',), ('intensity', 'ring')])
def test_cloud_optional_fields(present):
    full = sample_cloud(50)
    cloud = PointCloud(stamp=1.0, frame_id='f', xyz=full.xyz, **{k: getattr(full, k) for k in present})
    msg = cv.cloud_to_msg(cloud)
    assert [f.name for f in msg.fields][3:] == [k for k in ('intensity', 'time', 'ring') if k in present]
    assert msg.point_step % 4 == 0
    assert_cloud_equal(cv.cloud_from_msg(msg), cloud)


def test_cloud_shuffled_fields_padding_and_extra_fields():
    rng = np.random.default_rng(7)
    h, w = 1, 300
    # point_step 48 > sum of fields; fields in a shuffled order, z before x, gaps and unread fields between
    dt = np.dtype({'names': ['ring', 'intensity', 'z', 'time', 'x', 'label', 'y', 'rgb'],
                   'formats': ['<u2', '<f8', '<f4', '<f8', '<f4', '<u4', '<f4', '<f4'],
                   'offsets': [0, 3, 12, 17, 26, 30, 36, 40], 'itemsize': 48})
    s = np.zeros((h, w), dt)
    for k in ('x', 'y', 'z'):
        s[k] = rng.normal(0, 5, (h, w))
    s['intensity'] = rng.uniform(0, 100, (h, w))
    s['time'] = rng.uniform(0, 0.1, (h, w))
    s['ring'] = rng.integers(0, 64, (h, w))
    s['label'] = 0xFFFFFFFF
    fields = [pf('rgb', 40, PointField.FLOAT32), pf('y', 36, PointField.FLOAT32), pf('time', 17, PointField.FLOAT64),
              pf('intensity', 3, PointField.FLOAT64), pf('label', 30, PointField.UINT32),
              pf('normals', 44, PointField.INT8, count=4),          # unread field with count > 1: ignored
              pf('x', 26, PointField.FLOAT32), pf('z', 12, PointField.FLOAT32), pf('ring', 0, PointField.UINT16)]
    cloud = cv.cloud_from_msg(raw_cloud(s, fields))
    assert cloud.xyz.shape == (w, 3) and cloud.xyz.dtype == np.float32 and cloud.xyz.flags.c_contiguous
    np.testing.assert_array_equal(cloud.xyz, np.stack([s['x'][0], s['y'][0], s['z'][0]], -1))
    np.testing.assert_array_equal(cloud.intensity, s['intensity'][0].astype(np.float32))
    np.testing.assert_array_equal(cloud.time, s['time'][0].astype(np.float32))
    np.testing.assert_array_equal(cloud.ring, s['ring'][0])
    assert cloud.ring.dtype == np.uint16 and cloud.time.dtype == np.float32 and cloud.intensity.dtype == np.float32
    # and back through our own (packed) layout
    assert_cloud_equal(cv.cloud_from_msg(cv.cloud_to_msg(cloud)), cloud)


@pytest.mark.parametrize('fmt, code', [('i1', PointField.INT8), ('u1', PointField.UINT8), ('i2', PointField.INT16),
                                       ('u2', PointField.UINT16), ('i4', PointField.INT32),
                                       ('u4', PointField.UINT32), ('f4', PointField.FLOAT32),
                                       ('f8', PointField.FLOAT64)])
@pytest.mark.parametrize('big', [False, True])
def test_cloud_every_datatype_both_endians(fmt, code, big):
    e = '>' if big else '<'
    n = 40
    dt = np.dtype({'names': ['x', 'y', 'z', 'intensity'], 'formats': [e + fmt] * 4,
                   'offsets': [0, 8, 16, 24], 'itemsize': 33})
    s = np.zeros((1, n), dt)
    info = np.iinfo(fmt) if fmt[0] in 'iu' else None
    lo, hi = (info.min, info.max) if info else (-1e4, 1e4)
    vals = np.linspace(lo, hi, 4 * n).reshape(4, n)
    vals = np.round(vals) if info else vals
    for k, v in zip(('x', 'y', 'z', 'intensity'), vals):
        s[k] = v.astype(fmt)
    fields = [pf(k, o, code) for k, o in zip(('x', 'y', 'z', 'intensity'), (0, 8, 16, 24))]
    cloud = cv.cloud_from_msg(raw_cloud(s, fields, big=big))
    expect = np.stack([s['x'][0], s['y'][0], s['z'][0]], -1).astype(np.float32)
    np.testing.assert_array_equal(cloud.xyz, expect)
    np.testing.assert_array_equal(cloud.intensity, s['intensity'][0].astype(np.float32))
    assert cloud.xyz.dtype == np.float32 and cloud.xyz.dtype.isnative


def test_cloud_big_endian_xyzirt_manual_bytes():
    n = 100
    dt = np.dtype({'names': ['x', 'y', 'z', 'intensity', 'ring', 'time'],
                   'formats': ['>f4', '>f4', '>f4', '>f4', '>u2', '>f4'], 'offsets': [0, 4, 8, 16, 20, 22],
                   'itemsize': 32})
    s = np.zeros((1, n), dt)
    s['x'], s['y'], s['z'] = np.arange(n), -np.arange(n), 0.5 * np.arange(n)
    s['intensity'] = 1000 + np.arange(n)
    s['ring'] = 300 + np.arange(n)                 # > 255: a byte-order mistake would show
    s['time'] = 1e-3 * np.arange(n)
    fields = [pf('x', 0, 7), pf('y', 4, 7), pf('z', 8, 7), pf('intensity', 16, 7), pf('ring', 20, 4), pf('time', 22, 7)]
    msg = raw_cloud(s, fields, big=True)
    assert bytes(msg.data)[:4] == np.float32(0.0).tobytes() and bytes(msg.data)[32:36] == b'\x3f\x80\x00\x00'
    cloud = cv.cloud_from_msg(msg)
    np.testing.assert_array_equal(cloud.xyz[:, 0], np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(cloud.xyz[:, 1], -np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(cloud.xyz[:, 2], 0.5 * np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(cloud.ring, 300 + np.arange(n))
    np.testing.assert_array_equal(cloud.intensity, 1000 + np.arange(n, dtype=np.float32))
    np.testing.assert_allclose(cloud.time, 1e-3 * np.arange(n), rtol=1e-6)
    # re-encoded little-endian, decoded equal
    out = cv.cloud_to_msg(cloud)
    assert out.is_bigendian is False
    assert_cloud_equal(cv.cloud_from_msg(wire(out)), cloud)


def test_cloud_organised_with_row_padding():
    h, w, pad = 4, 5, 7
    dt = np.dtype({'names': ['x', 'y', 'z', 'intensity'], 'formats': ['<f4'] * 4, 'offsets': [0, 4, 8, 16],
                   'itemsize': 20})
    s = np.zeros((h, w), dt)
    rows, cols = np.mgrid[0:h, 0:w]
    s['x'], s['y'], s['z'], s['intensity'] = rows, cols, rows * 10 + cols, -1.0
    s['z'][1, 2] = np.nan
    fields = [pf('x', 0, 7), pf('y', 4, 7), pf('z', 8, 7), pf('intensity', 16, 7)]
    msg = raw_cloud(s, fields, row_pad=pad)
    assert msg.row_step == w * 20 + pad and len(msg.data) == h * (w * 20 + pad)
    cloud = cv.cloud_from_msg(msg)
    assert (cloud.height, cloud.width) == (h, w) and cloud.xyz.shape == (h * w, 3)
    # row-major: point k is row k // w, column k % w
    np.testing.assert_array_equal(cloud.xyz[:, 0], rows.reshape(-1))
    np.testing.assert_array_equal(cloud.xyz[:, 1], cols.reshape(-1))
    assert np.isnan(cloud.xyz[1 * w + 2, 2]) and cloud.finite().sum() == h * w - 1
    np.testing.assert_array_equal(cloud.intensity, -np.ones(h * w, np.float32))
    out = cv.cloud_to_msg(cloud)
    assert (out.height, out.width, out.row_step) == (h, w, w * out.point_step) and out.is_dense is False
    assert_cloud_equal(cv.cloud_from_msg(wire(out)), cloud)


def test_cloud_ouster_t_field_nanoseconds():
    n = 10
    dt = np.dtype({'names': ['x', 'y', 'z', 't'], 'formats': ['<f4', '<f4', '<f4', '<u4'],
                   'offsets': [0, 4, 8, 12], 'itemsize': 16})
    s = np.zeros((1, n), dt)
    s['t'] = np.arange(n) * 5_000_000            # 5 ms steps in ns
    msg = raw_cloud(s, [pf('x', 0, 7), pf('y', 4, 7), pf('z', 8, 7), pf('t', 12, PointField.UINT32)])
    cloud = cv.cloud_from_msg(msg)
    np.testing.assert_allclose(cloud.time, np.arange(n) * 0.005, rtol=1e-6)
    assert cloud.intensity is None and cloud.ring is None


def test_cloud_result_does_not_alias_message():
    msg = cv.cloud_to_msg(sample_cloud(20))
    cloud = cv.cloud_from_msg(msg)
    x0 = float(cloud.xyz[0, 0])
    msg.data[0:4] = array.array('B', np.float32(123.0).tobytes())
    assert cloud.xyz[0, 0] == x0
    cloud.xyz[0, 0] = 5.0                       # writable
    assert cv.cloud_from_msg(msg).xyz[0, 0] == 123.0


def test_cloud_empty():
    cloud = PointCloud(stamp=0.0, frame_id='f', xyz=np.zeros((0, 3), np.float32))
    msg = cv.cloud_to_msg(cloud)
    assert len(msg.data) == 0 and msg.is_dense is True
    back = cv.cloud_from_msg(wire(msg))
    assert back.xyz.shape == (0, 3) and back.width == 0


def _xyz_msg(n: int = 4) -> PointCloud2:
    return cv.cloud_to_msg(PointCloud(stamp=0.0, frame_id='f', xyz=np.ones((n, 3), np.float32)))


def test_cloud_errors():
    msg = _xyz_msg()
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match='47 bytes, expected'):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.data = msg.data + array.array('B', [0] * 12)
    with pytest.raises(ValueError, match='bytes, expected'):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.width = 5
    with pytest.raises(ValueError, match='row_step'):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.fields = [f for f in msg.fields if f.name != 'z']
    with pytest.raises(ValueError, match='lacks field.*z'):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.fields = []
    with pytest.raises(ValueError, match='x, y, z'):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.fields[0].count = 3
    with pytest.raises(ValueError, match="'x' has count 3"):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.fields[1].datatype = 9
    with pytest.raises(ValueError, match="'y' has unknown datatype 9"):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.fields[2].offset = 10
    with pytest.raises(ValueError, match="'z'.*does not fit point_step 12"):
        cv.cloud_from_msg(msg)
    msg = _xyz_msg()
    msg.point_step = 0
    with pytest.raises(ValueError, match='point_step'):
        cv.cloud_from_msg(msg)


def test_cloud_to_msg_errors():
    xyz = np.zeros((6, 3), np.float32)
    with pytest.raises(ValueError, match=r'\(N, 3\)'):
        cv.cloud_to_msg(PointCloud(0.0, 'f', np.zeros((6, 2), np.float32)))
    with pytest.raises(ValueError, match='height\\*width'):
        cv.cloud_to_msg(PointCloud(0.0, 'f', xyz, height=2, width=4))
    with pytest.raises(ValueError, match='ring'):
        cv.cloud_to_msg(PointCloud(0.0, 'f', xyz, ring=np.zeros(5, np.uint16)))


# ----------------------------------------------------------------------------------------------------- Image
def sample_image(encoding: str, h: int = 7, w: int = 11) -> np.ndarray:
    rng = np.random.default_rng(3)
    if encoding in ('rgb8', 'bgr8'):
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if encoding == 'mono8':
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if encoding == '16UC1':
        return rng.integers(0, 65536, (h, w), dtype=np.uint16)
    return rng.uniform(0.1, 10.0, (h, w)).astype(np.float32)


@pytest.mark.parametrize('encoding', ['mono8', 'rgb8', 'bgr8', '16UC1', '32FC1'])
def test_image_round_trip_and_wire(encoding):
    data = sample_image(encoding)
    img = Image(stamp=5.5, frame_id='cam', encoding=encoding, data=data)
    msg = cv.image_to_msg(img)
    bpp = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, '16UC1': 2, '32FC1': 4}[encoding]
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == (7, 11, 11 * bpp, encoding, 0)
    assert len(msg.data) == 7 * 11 * bpp
    back = cv.image_from_msg(wire(msg))
    assert back.encoding == encoding and back.frame_id == 'cam' and back.stamp == 5.5
    assert back.data.dtype == data.dtype and back.data.shape == data.shape
    np.testing.assert_array_equal(back.data, data)
    assert_msg_equal(wire(msg), msg)


def test_image_bgr8_is_rgb_in_the_measurement():
    msg = ImageMsg(header=header(), height=1, width=2, encoding='bgr8', step=6)
    msg.data = array.array('B', [10, 20, 30, 40, 50, 60])      # pixel 0: b=10 g=20 r=30
    img = cv.image_from_msg(msg)
    np.testing.assert_array_equal(img.data, [[[30, 20, 10], [60, 50, 40]]])
    assert img.encoding == 'bgr8'
    assert list(cv.image_to_msg(img).data) == [10, 20, 30, 40, 50, 60]
    rgb = cv.image_to_msg(Image(0.0, 'c', 'rgb8', img.data))
    assert list(rgb.data) == [30, 20, 10, 60, 50, 40]


@pytest.mark.parametrize('encoding, fmt', [('mono8', 'u1'), ('rgb8', 'u1'), ('bgr8', 'u1'), ('16UC1', 'u2'),
                                           ('32FC1', 'f4')])
@pytest.mark.parametrize('big', [False, True])
def test_image_step_padding_and_endianness(encoding, fmt, big):
    data = sample_image(encoding, 5, 6)
    pix = data[..., ::-1] if encoding == 'bgr8' else data           # what goes on the wire
    rows = pix.reshape(5, -1).astype(('>' if big else '<') + fmt)
    row_bytes = np.frombuffer(rows.tobytes(), np.uint8).reshape(5, -1)
    pad = 5
    raw = np.concatenate([row_bytes, np.full((5, pad), 0xEE, np.uint8)], axis=1)
    msg = ImageMsg(header=header(), height=5, width=6, encoding=encoding, is_bigendian=int(big),
                   step=row_bytes.shape[1] + pad)
    msg.data = array.array('B', raw.tobytes())
    img = cv.image_from_msg(msg)
    np.testing.assert_array_equal(img.data, data)
    assert img.data.dtype.isnative and img.data.flags.c_contiguous and img.data.flags.writeable


def test_image_errors():
    msg = ImageMsg(header=header(), height=2, width=2, encoding='yuv422', step=4)
    msg.data = array.array('B', [0] * 8)
    with pytest.raises(ValueError, match="'yuv422'"):
        cv.image_from_msg(msg)
    with pytest.raises(ValueError, match="'bayer_rggb8'"):
        cv.image_to_msg(Image(0.0, 'c', 'bayer_rggb8', np.zeros((2, 2), np.uint8)))
    msg = ImageMsg(header=header(), height=2, width=2, encoding='mono8', step=2)
    msg.data = array.array('B', [0] * 5)
    with pytest.raises(ValueError, match='5 bytes, expected'):
        cv.image_from_msg(msg)
    msg = ImageMsg(header=header(), height=2, width=2, encoding='16UC1', step=3)
    msg.data = array.array('B', [0] * 6)
    with pytest.raises(ValueError, match='step 3'):
        cv.image_from_msg(msg)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        cv.image_to_msg(Image(0.0, 'c', 'rgb8', np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match='uint8'):
        cv.image_to_msg(Image(0.0, 'c', 'mono8', np.zeros((2, 2), np.float32)))


def test_image_depth_units_survive():
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    img = cv.image_from_msg(cv.image_to_msg(Image(0.0, 'd', '16UC1', mm)))
    d = img.depth_m()
    assert np.isnan(d[0, 0]) and d[0, 1] == pytest.approx(1.5)


# ------------------------------------------------------------------------------------------------ CameraInfo
def test_camera_info_round_trip():
    K = np.array([[525.0, 0.0, 319.5], [0.0, 526.0, 239.5], [0.0, 0.0, 1.0]])
    D = np.array([0.1, -0.2, 0.001, 0.002, 0.05])
    intr = CameraIntrinsics(width=640, height=480, K=K, D=D, distortion_model='plumb_bob', frame_id='cam_optical')
    msg = cv.camera_info_to_msg(intr, stamp=2.0)
    np.testing.assert_array_equal(msg.k, K.reshape(9))
    np.testing.assert_array_equal(msg.p.reshape(3, 4)[:, :3], K)
    np.testing.assert_array_equal(msg.r, np.eye(3).reshape(9))
    assert msg.header.frame_id == 'cam_optical' and msg.header.stamp.sec == 2
    back = cv.camera_info_from_msg(wire(msg))
    np.testing.assert_array_equal(back.K, K)
    np.testing.assert_array_equal(back.D, D)
    assert (back.width, back.height, back.distortion_model, back.frame_id) == (640, 480, 'plumb_bob', 'cam_optical')
    assert_msg_equal(wire(msg), msg)
    ci = CameraInfo(width=4, height=3, distortion_model='equidistant', d=[0.1, 0.2, 0.3, 0.4])
    ci.k = np.arange(9, dtype=np.float64)
    intr2 = cv.camera_info_from_msg(ci)
    assert intr2.K[1, 2] == 5.0 and intr2.K[2, 0] == 6.0 and list(intr2.D) == [0.1, 0.2, 0.3, 0.4]
    with pytest.raises(ValueError, match='K'):
        cv.camera_info_to_msg(CameraIntrinsics(4, 3, np.eye(2)))


# ------------------------------------------------------------------------------------------------------- Imu
def test_imu_round_trip_with_orientation():
    s = ImuSample(stamp=7.125, frame_id='imu', angular_velocity=np.array([0.1, -0.2, 0.3]),
                  linear_acceleration=np.array([0.0, 0.5, 9.81]), orientation=np.array([0.0, 0.0, 0.6, 0.8]),
                  orientation_covariance=np.diag([1e-3, 2e-3, 3e-3]),
                  angular_velocity_covariance=np.arange(9.0).reshape(3, 3),
                  linear_acceleration_covariance=np.eye(3) * 0.01)
    msg = cv.imu_to_msg(s)
    assert msg.orientation.z == 0.6 and msg.angular_velocity.y == -0.2 and msg.angular_velocity_covariance[5] == 5.0
    back = cv.imu_from_msg(wire(msg))
    for k in ('angular_velocity', 'linear_acceleration', 'orientation', 'orientation_covariance',
              'angular_velocity_covariance', 'linear_acceleration_covariance'):
        np.testing.assert_array_equal(getattr(back, k), getattr(s, k), err_msg=k)
    assert back.stamp == 7.125 and back.frame_id == 'imu'
    assert_msg_equal(wire(msg), msg)


def test_imu_unknown_orientation():
    msg = Imu(header=header())
    msg.orientation_covariance = np.array([-1.0, 0, 0, 0, 0, 0, 0, 0, 0])
    msg.linear_acceleration.z = 9.8
    s = cv.imu_from_msg(msg)
    assert s.orientation is None and s.linear_acceleration[2] == 9.8
    out = cv.imu_to_msg(s)
    assert out.orientation_covariance[0] == -1.0
    assert cv.imu_from_msg(wire(out)).orientation is None
    # orientation=None written from a fresh sample forces the marker
    fresh = cv.imu_to_msg(ImuSample(0.0, 'imu', np.zeros(3), np.zeros(3)))
    assert fresh.orientation_covariance[0] == -1.0 and fresh.orientation.w == 1.0
    # a known orientation with a zero covariance is not "unknown"
    msg.orientation_covariance = np.zeros(9)
    assert cv.imu_from_msg(msg).orientation is not None


# -------------------------------------------------------------------------------------------------- Odometry
def test_odometry_round_trip():
    cov = np.arange(36.0).reshape(6, 6)
    s = OdometrySample(stamp=9.0, frame_id='odom', child_frame_id='base_link', position=np.array([1.0, 2.0, 0.0]),
                       orientation=np.array([0.0, 0.0, math.sin(0.2), math.cos(0.2)]),
                       linear_velocity=np.array([0.5, 0.0, 0.0]), angular_velocity=np.array([0.0, 0.0, 0.1]),
                       pose_covariance=cov, twist_covariance=cov.T.copy())
    msg = cv.odometry_to_msg(s)
    assert msg.child_frame_id == 'base_link' and msg.pose.covariance[1] == 1.0 and msg.twist.covariance[1] == 6.0
    back = cv.odometry_from_msg(wire(msg))
    for k in ('position', 'orientation', 'linear_velocity', 'angular_velocity', 'pose_covariance',
              'twist_covariance'):
        np.testing.assert_array_equal(getattr(back, k), getattr(s, k), err_msg=k)
    assert (back.stamp, back.frame_id, back.child_frame_id) == (9.0, 'odom', 'base_link')
    assert_msg_equal(wire(msg), msg)
    with pytest.raises(ValueError, match='pose_covariance'):
        cv.odometry_to_msg(OdometrySample(0.0, 'o', 'b', np.zeros(3), np.array([0, 0, 0, 1.0]), np.zeros(3),
                                          np.zeros(3), pose_covariance=np.zeros((3, 3))))


# ----------------------------------------------------------------------------------------------------- Range
def test_range_round_trip_uwb():
    msg = Range(header=header(11.5, 'anchor_7'), radiation_type=Range.INFRARED, field_of_view=f32(6.28),
                min_range=f32(0.1), max_range=f32(50.0), range=f32(12.34), variance=f32(0.01))
    s = cv.range_from_msg(wire(msg))
    assert (s.anchor_id, s.stamp) == ('anchor_7', 11.5)
    assert s.range == pytest.approx(12.34, rel=1e-7) and s.valid()
    out = cv.range_to_msg(s, radiation_type=Range.INFRARED, variance=0.01)
    assert_msg_equal(out, msg)
    assert_msg_equal(wire(out), out)
    for bad in (float('inf'), float('nan'), 60.0):
        msg.range = bad
        r = cv.range_from_msg(msg)
        assert not r.valid() and (r.range == bad or (math.isnan(bad) and math.isnan(r.range)))
    default = cv.range_to_msg(RangeSample(0.0, 'a1', 3.0))
    assert default.max_range == float('inf') and default.header.frame_id == 'a1' and default.radiation_type == 0


# ---------------------------------------------------------------------------------------------- OccupancyGrid
def test_occupancy_grid_round_trip():
    h, w = 3, 5
    grid = np.full((h, w), -1, np.int8)
    grid[0, :] = 0
    grid[0, 4] = 100
    grid[2, 1] = 55
    m = OccupancyMap(grid=grid, resolution=0.05, origin=np.array([-1.5, 2.0, 0.3]))
    msg = cv.occupancy_grid_to_msg(m, stamp=4.0, frame_id='map')
    assert (msg.info.width, msg.info.height) == (w, h)
    assert list(msg.data[:w]) == [0, 0, 0, 0, 100]           # row 0 (lowest y) first
    assert msg.data[2 * w + 1] == 55 and msg.header.frame_id == 'map' and msg.info.map_load_time.sec == 4
    assert msg.info.origin.orientation.z == pytest.approx(math.sin(0.15))
    back = cv.occupancy_grid_from_msg(wire(msg))
    np.testing.assert_array_equal(back.grid, grid)
    assert back.grid.dtype == np.int8 and back.grid.shape == (h, w)
    assert back.resolution == 0.05                             # not 0.05000000074505806
    np.testing.assert_allclose(back.origin, [-1.5, 2.0, 0.3], atol=1e-12)
    np.testing.assert_allclose(back.cell_to_world(np.array([4, 0])), m.cell_to_world(np.array([4, 0])))
    assert_msg_equal(wire(msg), msg)


def test_occupancy_grid_errors():
    msg = OccupancyGrid(header=header())
    msg.info.width, msg.info.height, msg.info.resolution = 3, 2, 0.1
    msg.data = array.array('b', [0] * 5)
    with pytest.raises(ValueError, match='5 cells'):
        cv.occupancy_grid_from_msg(msg)
    msg.data = array.array('b', [0] * 6)
    msg.info.resolution = 0.0
    with pytest.raises(ValueError, match='resolution'):
        cv.occupancy_grid_from_msg(msg)
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        cv.occupancy_grid_to_msg(OccupancyMap(grid=np.zeros(4, np.int8), resolution=0.1))


# ------------------------------------------------------------------------------------- PoseWithCovariance
def test_pose_round_trip():
    cov = np.diag([0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    cov[0, 5] = cov[5, 0] = 0.004
    p = PoseWithCovariance(stamp=1e9 + 0.5, frame_id='map', position=np.array([3.0, -4.0, 0.1]),
                           orientation=np.array([0.0, 0.0, 0.38268343236, 0.92387953251]), covariance=cov)
    msg = cv.pose_to_msg(p)
    assert isinstance(msg, PoseWithCovarianceStamped) and msg.pose.covariance[5] == 0.004
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_000_000_000, 500_000_000)
    back = cv.pose_from_msg(wire(msg))
    np.testing.assert_array_equal(back.position, p.position)
    np.testing.assert_array_equal(back.orientation, p.orientation)
    np.testing.assert_array_equal(back.covariance, cov)
    assert back.stamp == p.stamp and back.frame_id == 'map'
    assert_msg_equal(wire(msg), msg)


# -------------------------------------------------------------------------------------------------- dispatch
def test_dispatch():
    cloud = sample_cloud(10)
    msg = cv.to_msg(cloud)
    assert isinstance(msg, PointCloud2)
    assert_cloud_equal(cv.from_msg(msg), cloud)
    grid = cv.to_msg(OccupancyMap(grid=np.zeros((2, 2), np.int8), resolution=0.1), frame_id='world')
    assert isinstance(grid, OccupancyGrid) and grid.header.frame_id == 'world'
    assert isinstance(cv.from_msg(Odometry()), OdometrySample)
    with pytest.raises(TypeError):
        cv.from_msg(Header())
    with pytest.raises(TypeError):
        cv.to_msg(np.zeros(3))


# --------------------------------------------------------------------------------- rosbags-decoded messages
def _measurements() -> list:
    """One measurement per sensor stream, with NaN/inf and optional fields where the message allows them."""
    scan = LaserScan2D(stamp=3.5, frame_id='laser', angles=np.linspace(-1.0, 1.0, 7, dtype=np.float32),
                       ranges=np.array([1.0, np.inf, np.nan, 2.5, 0.05, 30.0, 4.0], np.float32), range_min=0.1,
                       range_max=20.0, intensities=np.arange(7, dtype=np.float32))
    imu = ImuSample(stamp=7.125, frame_id='imu', angular_velocity=np.array([0.1, -0.2, 0.3]),
                    linear_acceleration=np.array([0.0, 0.5, 9.81]), orientation=np.array([0.0, 0.0, 0.6, 0.8]),
                    angular_velocity_covariance=np.arange(9.0).reshape(3, 3))
    odom = OdometrySample(stamp=9.0, frame_id='odom', child_frame_id='base_link', position=np.array([1.0, 2.0, 0.0]),
                          orientation=np.array([0.0, 0.0, math.sin(0.2), math.cos(0.2)]),
                          linear_velocity=np.array([0.5, 0.0, 0.0]), angular_velocity=np.array([0.0, 0.0, 0.1]),
                          pose_covariance=np.arange(36.0).reshape(6, 6))
    rng = RangeSample(stamp=11.5, anchor_id='anchor_7', range=f32(12.34), min_range=f32(0.1), max_range=f32(50.0))
    img = Image(stamp=5.5, frame_id='cam', encoding='16UC1', data=sample_image('16UC1'))
    return [scan, sample_cloud(50), img, rng, imu, odom]


@pytest.mark.parametrize('measurement', _measurements(), ids=lambda m: type(m).__name__)
def test_rosbags_decoded_messages_convert_like_rclpy(measurement):
    """flm-eval decodes bags with rosbags (dataclasses, numpy arrays) and converts them with the node's functions:
    the measurement must be the same as from the rclpy message of the same bytes."""
    from rosbags.typesys import Stores, get_typestore

    msg = cv.to_msg(measurement)
    raw = serialize_message(msg)
    mod = type(msg).__module__.split('.')[0]
    decoded = get_typestore(Stores.ROS2_JAZZY).deserialize_cdr(raw, f'{mod}/msg/{type(msg).__name__}')
    assert type(decoded).__module__ != type(msg).__module__      # really a rosbags object
    from flm_ros.sensor_input import MESSAGES, convert
    stream = next(k for k, (cls, _) in MESSAGES.items() if cls is type(msg))
    a, b = convert(stream, deserialize_message(raw, type(msg))), convert(stream, decoded)
    assert type(a) is type(b)
    for name, va in vars(a).items():
        vb = getattr(b, name)
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=name)
            assert np.asarray(va).dtype == np.asarray(vb).dtype, name
        elif isinstance(va, float) and math.isnan(va):
            assert math.isnan(vb), name
        else:
            assert va == vb, name
