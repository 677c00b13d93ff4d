"""Bags written by flm_core.datagen read back with rosbags and with rclpy's message types."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from flm_core.datagen import ScenarioConfig, generate_scenario, write_bag
from flm_core.datagen.bagwriter import BAG_EPOCH
from flm_core.site import load_site

EXPECTED = {
    '/scan': 'sensor_msgs/msg/LaserScan', '/points': 'sensor_msgs/msg/PointCloud2',
    '/camera/depth/image_raw': 'sensor_msgs/msg/Image', '/camera/depth/camera_info': 'sensor_msgs/msg/CameraInfo',
    '/uwb/ranges': 'sensor_msgs/msg/Range', '/imu/data': 'sensor_msgs/msg/Imu', '/odom': 'nav_msgs/msg/Odometry',
    '/tf': 'tf2_msgs/msg/TFMessage', '/tf_static': 'tf2_msgs/msg/TFMessage', '/map': 'nav_msgs/msg/OccupancyGrid',
    '/ground_truth/pose': 'geometry_msgs/msg/PoseStamped',
}


@pytest.fixture(scope='module')
def scenario():
    cfg = ScenarioConfig(duration=1.5)
    cfg.building.size_x, cfg.building.size_y = (12.0, 14.0), (10.0, 12.0)
    cfg.sensors.lidar3d.enabled = cfg.sensors.depth.enabled = True
    cfg.sensors.lidar3d.beams = 90
    return generate_scenario(cfg, 9)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_reads_back(scenario, tmp_path, storage):
    from rosbags.highlevel import AnyReader

    bag = write_bag(scenario, tmp_path / 'out', storage)
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['version'] == 9 and meta['storage_identifier'] == storage
    site = load_site(tmp_path / 'out' / 'site.yaml')
    assert site.map is not None and [a.id for a in site.anchors] == list(scenario.anchors.ids)
    counts: dict[str, int] = {}
    stamps: list[int] = []
    with AnyReader([bag]) as r:
        types = {c.topic: c.msgtype for c in r.connections}
        assert types == EXPECTED
        qos = {c.topic: c.ext.offered_qos_profiles for c in r.connections}
        assert qos['/tf_static'][0].durability.name == 'TRANSIENT_LOCAL'
        for c, t, raw in r.messages():
            stamps.append(t)
            counts[c.topic] = counts.get(c.topic, 0) + 1
            msg = r.deserialize(raw, c.msgtype)
            if c.topic == '/uwb/ranges':
                assert msg.header.frame_id in scenario.anchors.ids
            if c.topic == '/scan' and counts[c.topic] == 1:
                st = scenario.streams['lidar2d']
                np.testing.assert_array_equal(msg.ranges, st.ranges[np.argmin(st.timing.arrival)])
            if c.topic == '/tf_static':
                frames = {tf.child_frame_id for tf in msg.transforms}
                assert {'laser', 'imu_link', 'uwb_tag', 'lidar3d', 'camera_depth_optical_frame'} <= frames
            if c.topic == '/map':
                assert msg.info.width == scenario.building.map.shape[1]
                np.testing.assert_array_equal(msg.data, scenario.building.map.grid.ravel())
    assert stamps == sorted(stamps)
    for name, topic in (('lidar2d', '/scan'), ('imu', '/imu/data'), ('uwb', '/uwb/ranges'), ('odom', '/odom'),
                        ('lidar3d', '/points'), ('depth', '/camera/depth/image_raw')):
        assert counts[topic] == len(scenario.streams[name].timing.t)
    assert counts['/tf'] == counts['/odom'] and counts['/map'] == counts['/tf_static'] == 1


def test_bag_messages_deserialize_with_rclpy(scenario, tmp_path):
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader

    bag = write_bag(scenario, tmp_path / 'out', 'mcap')
    seen = set()
    with AnyReader([bag]) as r:
        for c, _, raw in r.messages():
            if c.topic in seen and c.topic not in ('/uwb/ranges',):
                continue
            seen.add(c.topic)
            pkg, _, name = c.msgtype.split('/')
            cls = getattr(importlib.import_module(f'{pkg}.msg'), name)
            msg = deserialize_message(bytes(raw), cls)
            ref = r.deserialize(raw, c.msgtype)
            if hasattr(msg, 'header'):
                assert msg.header.frame_id == ref.header.frame_id
                assert msg.header.stamp.sec == ref.header.stamp.sec and msg.header.stamp.sec >= int(BAG_EPOCH)
            if name == 'LaserScan':
                np.testing.assert_array_equal(np.asarray(msg.ranges, dtype=np.float32), ref.ranges)
            elif name == 'Range':
                assert msg.range == pytest.approx(ref.range)
            elif name == 'Imu':
                assert msg.orientation_covariance[0] == -1.0
                assert msg.linear_acceleration.z == pytest.approx(ref.linear_acceleration.z)
            elif name == 'PointCloud2':
                assert msg.width * msg.height * msg.point_step == len(msg.data)
                assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'time', 'ring']
            elif name == 'Image':
                assert msg.encoding == '32FC1' and len(msg.data) == msg.step * msg.height
            elif name == 'TFMessage':
                assert len(msg.transforms) >= 1
            elif name == 'OccupancyGrid':
                assert len(msg.data) == msg.info.width * msg.info.height
    assert seen == set(EXPECTED)


def test_topic_names_configurable(tmp_path):
    from rosbags.highlevel import AnyReader

    cfg = ScenarioConfig(duration=0.5)
    cfg.building.size_x, cfg.building.size_y = (12.0, 12.0), (10.0, 10.0)
    cfg.topics.scan, cfg.topics.uwb = '/robot/scan', '/robot/uwb'
    bag = write_bag(generate_scenario(cfg, 2), Path(tmp_path), 'sqlite3')
    with AnyReader([bag]) as r:
        topics = {c.topic for c in r.connections}
    assert {'/robot/scan', '/robot/uwb'} <= topics and '/scan' not in topics
