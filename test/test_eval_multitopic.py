"""flm-eval on a bag with two scan topics (GitHub-style issue 16): a generated run whose 360 deg scans are split into
a front half (``/front/scan``, the lidar's own frame) and a rear half (``/rear/scan``, a frame turned by pi, its
mount in /tf_static), both with the scan's stamp. Read as two lidars, the run localizes as well as from the whole
scans: both topics are read, every message of both is buffered (one stamp, two frames: no duplicates), and the
model sees the same points.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from flm_core.datagen.bagwriter import write_bag
from flm_core.datagen.config import BuildingConfig, ScenarioConfig
from flm_core.datagen.scenario import generate_scenario
from flm_core.datagen.seeds import EVAL_SEED_MIN
from flm_core.geometry import quat_multiply, yaw_to_quat
from flm_ros.evaluate import main as flm_eval

MAX_ATE = 0.5          # m, as test_eval: the model on a short unseen building
SAME = 0.05            # m, the two-lidar run's APE RMSE against the one-lidar run's


def split_scans(src: Path, dst: Path) -> int:
    """Copy bag ``src`` to ``dst`` with every /scan message split in two halves on /front/scan (frame
    ``front_laser``: the scan's own frame) and /rear/scan (frame ``rear_laser``: turned by pi), and their mounts
    added to /tf_static. Returns the number of scans split."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    LaserScan = ts.types['sensor_msgs/msg/LaserScan']
    Header = ts.types['std_msgs/msg/Header']
    n = 0
    with Reader(src) as reader:
        writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        try:
            out = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=ts,
                                               offered_qos_profiles=c.ext.offered_qos_profiles)
                   for c in reader.connections if c.topic != '/scan'}
            halves = {name: writer.add_connection(name, 'sensor_msgs/msg/LaserScan', typestore=ts)
                      for name in ('/front/scan', '/rear/scan')}
            laser = next(c for c in reader.connections if c.topic == '/scan')
            scan_frame = _scan_frame(reader, laser, ts)
            frame = None
            for conn, t_ns, raw in reader.messages():
                if conn.topic == '/tf_static':
                    msg = ts.deserialize_cdr(raw, conn.msgtype)
                    for tr in list(msg.transforms):
                        if tr.child_frame_id == scan_frame:
                            q = np.array([tr.transform.rotation.x, tr.transform.rotation.y, tr.transform.rotation.z,
                                          tr.transform.rotation.w])
                            front = ts.deserialize_cdr(ts.serialize_cdr(tr, 'geometry_msgs/msg/TransformStamped'),
                                                       'geometry_msgs/msg/TransformStamped')
                            front.child_frame_id = 'front_laser'
                            rear = ts.deserialize_cdr(ts.serialize_cdr(tr, 'geometry_msgs/msg/TransformStamped'),
                                                      'geometry_msgs/msg/TransformStamped')
                            rear.child_frame_id = 'rear_laser'
                            qr = quat_multiply(q, yaw_to_quat(math.pi))
                            rear.transform.rotation.x, rear.transform.rotation.y = float(qr[0]), float(qr[1])
                            rear.transform.rotation.z, rear.transform.rotation.w = float(qr[2]), float(qr[3])
                            msg.transforms = [*msg.transforms, front, rear]
                            frame = scan_frame
                    writer.write(out[conn.id], t_ns, ts.serialize_cdr(msg, conn.msgtype))
                elif conn.topic == '/scan':
                    s = ts.deserialize_cdr(raw, conn.msgtype)
                    k = len(s.ranges) // 2
                    inc = s.angle_increment
                    for name, sl, amin, fr in (('/front/scan', slice(0, k), s.angle_min, 'front_laser'),
                                               ('/rear/scan', slice(k, None), s.angle_min + inc * k - math.pi,
                                                'rear_laser')):
                        r = np.ascontiguousarray(s.ranges[sl])
                        half = LaserScan(header=Header(stamp=s.header.stamp, frame_id=fr), angle_min=amin,
                                         angle_max=amin + inc * (len(r) - 1), angle_increment=inc,
                                         time_increment=s.time_increment, scan_time=s.scan_time,
                                         range_min=s.range_min, range_max=s.range_max, ranges=r,
                                         intensities=np.zeros(0, np.float32))
                        writer.write(halves[name], t_ns, ts.serialize_cdr(half, 'sensor_msgs/msg/LaserScan'))
                    n += 1
                else:
                    writer.write(out[conn.id], t_ns, raw)
        finally:
            writer.close()
    assert frame is not None, 'the scan frame is not in /tf_static'
    return n


def _scan_frame(reader, laser, ts) -> str:
    for conn, _, raw in reader.messages(connections=[laser]):
        return ts.deserialize_cdr(raw, conn.msgtype).header.frame_id
    raise AssertionError('no scans')


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    out = tmp_path_factory.mktemp('two_lidars')
    cfg = ScenarioConfig(duration=8.0, building=BuildingConfig(families=('cluttered',)))
    one = write_bag(generate_scenario(cfg, EVAL_SEED_MIN + 7), out, storage='mcap')
    two = out / 'bag_two_lidars'
    n = split_scans(one, two)
    return one, two, n


def _flm(out: Path) -> dict:
    return json.loads((out / 'metrics.json').read_text())['methods']['flm']


def test_two_scan_topics_localize_as_one_lidar(bags, tmp_path, capsys):
    one, two, n = bags
    common = ['--no-progress', '--disable', 'uwb', '--initial-pose', 'gt']
    assert flm_eval([str(one), '--out', str(tmp_path / 'one'), *common]) == 0, capsys.readouterr().err
    code = flm_eval([str(two), '--site', str(one.parent / 'site.yaml'), '--out', str(tmp_path / 'two'),
                     '--topic', 'scan=/front/scan', '--topic', 'scan=/rear/scan', *common])
    assert code == 0, capsys.readouterr().err
    m1, m2 = _flm(tmp_path / 'one'), _flm(tmp_path / 'two')
    counts = m2['counts']
    assert counts['read_by_topic'] == {'/front/scan': n, '/rear/scan': n, **{
        t: c for t, c in counts['read_by_topic'].items() if 'scan' not in t}}, counts['read_by_topic']
    assert counts['read']['scan'] == 2 * n and counts['buffer']['scan'].get('accepted') == 2 * n, counts
    assert 'duplicate' not in counts['buffer']['scan'], counts['buffer']['scan']
    assert m2['ape_m']['rmse'] < MAX_ATE, m2['ape_m']
    assert abs(m2['ape_m']['rmse'] - m1['ape_m']['rmse']) < SAME, (m1['ape_m'], m2['ape_m'])
    # a further UWB topic without its tag's frame is refused with the reason
    assert flm_eval([str(two), '--site', str(one.parent / 'site.yaml'), '--out', str(tmp_path / 'bad'),
                     '--topic', 'uwb=/uwb/ranges', '--topic', 'uwb=/uwb/tag2', '--no-progress']) == 2
    assert 'name its frame' in capsys.readouterr().err
