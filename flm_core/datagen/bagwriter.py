"""rosbag2 output (mcap or sqlite3, metadata version 9 = Jazzy/Kilted) with standard message types, via the
pure-Python ``rosbags`` library (no ROS install needed), plus the site file next to the bag.

Topics (names from ``ScenarioConfig.topics``): scan LaserScan, points PointCloud2 (x y z time ring), depth Image
32FC1 + camera_info CameraInfo, uwb Range (one message per anchor range, header.frame_id = anchor id), imu Imu
(orientation unknown: orientation_covariance[0] = -1), odom Odometry (odom -> base_link), tf TFMessage
(odom -> base_link at the odometry rate), tf_static TFMessage (base_link -> sensor frames, transient local),
map OccupancyGrid (transient local), ground_truth PoseStamped (base_link in map, at ground_truth_rate).
Header stamps are the sensors' stamps + ``BAG_EPOCH``; the record (receive) time is the arrival time + BAG_EPOCH.

Realism (scenario.py): ``/map`` and the site file carry the mapped map, not the world the sensors saw; mounts are
full rotations in ``/tf_static`` (a z-down IMU: rolled by pi); a tilted platform's ground truth has its roll and
pitch; a UWB tag that moves up and down is published on ``/tf`` (base_link -> tag at every ranging frame) instead of
``/tf_static``.
"""
from __future__ import annotations

import heapq
import math
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..geometry import quat_multiply, yaw_to_quat
from .platform import ypr_to_quat
from ..site import save_site
from .scenario import Scenario

BAG_EPOCH = 1_700_000_000.0  # s, added to simulated time in bags (a plausible wall-clock origin)
OPTICAL_FROM_BODY = np.array([-0.5, 0.5, -0.5, 0.5])  # rotation body (x fwd, y left, z up) -> optical (z fwd)
STORAGES = ('mcap', 'sqlite3')


def _time(ts: Any, t: float) -> Any:
    ns = int(round((t + BAG_EPOCH) * 1e9))
    return ts.types['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def write_bag(sc: Scenario, out_dir: str | Path, storage: str = 'mcap', distro: str = 'jazzy',
              site_stem: str = 'site') -> Path:
    """Write scenario ``sc`` as a rosbag2 directory ``out_dir/bag_<storage>`` and its site file
    ``out_dir/<site_stem>.yaml`` (+ map). Returns the bag directory."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    if storage not in STORAGES:
        raise ValueError(f'storage: must be one of {STORAGES}, got {storage!r}')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_site(sc.site(), out_dir, site_stem)
    ts = get_typestore({'jazzy': Stores.ROS2_JAZZY, 'kilted': Stores.ROS2_KILTED}[distro])
    T = ts.types
    Header, Time = T['std_msgs/msg/Header'], T['builtin_interfaces/msg/Time']
    Vec3, Quat = T['geometry_msgs/msg/Vector3'], T['geometry_msgs/msg/Quaternion']
    Point, Pose = T['geometry_msgs/msg/Point'], T['geometry_msgs/msg/Pose']
    Transform, TfS = T['geometry_msgs/msg/Transform'], T['geometry_msgs/msg/TransformStamped']
    TFMessage = T['tf2_msgs/msg/TFMessage']
    cfg, topics = sc.config, sc.config.topics
    latched = Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, QosTime(0, 0),
                  QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)

    def hdr(t: float, frame: str) -> Any:
        return Header(stamp=_time(ts, t), frame_id=frame)

    def quat(q: np.ndarray) -> Any:
        return Quat(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    bag = out_dir / f'bag_{storage}'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3)
    writer.open()
    conns: dict[str, Any] = {}

    def conn(topic: str, msgtype: str, qos: Any = None) -> Any:
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=ts,
                                                 offered_qos_profiles=[qos] if qos is not None else [])
        return conns[topic]

    # each source: (record times ns (sorted), builder(i) -> (connection, message, msgtype))
    sources: list[tuple[np.ndarray, Callable[[int], tuple[Any, Any, str]]]] = []

    def add_source(record_t: np.ndarray, build: Callable[[int], tuple[Any, Any, str]]) -> None:
        order = np.argsort(record_t, kind='stable')
        ns = np.round((np.asarray(record_t)[order] + BAG_EPOCH) * 1e9).astype(np.int64)
        sources.append((ns, lambda k, order=order: build(int(order[k]))))

    t_start = 0.0
    # static transforms and map
    statics = []
    tag_moves = sc.habits is not None and sc.habits.tag_height is not None
    for name, st in sc.streams.items():
        if name == 'odom' or (name == 'uwb' and tag_moves):
            continue
        m = getattr(cfg.sensors, name).mount
        q = ypr_to_quat(m.yaw, m.pitch, m.roll)
        if name == 'depth':
            q = quat_multiply(q, OPTICAL_FROM_BODY)
        statics.append(TfS(header=hdr(t_start, 'base_link'), child_frame_id=getattr(cfg.sensors, name).frame_id,
                           transform=Transform(translation=Vec3(x=m.x, y=m.y, z=m.z), rotation=quat(q))))
    c_static = conn(topics.tf_static, 'tf2_msgs/msg/TFMessage', latched)
    add_source(np.array([t_start]), lambda i: (c_static, TFMessage(transforms=statics), 'tf2_msgs/msg/TFMessage'))
    om = sc.building.map
    OccupancyGrid, MapMetaData = T['nav_msgs/msg/OccupancyGrid'], T['nav_msgs/msg/MapMetaData']
    grid_msg = OccupancyGrid(
        header=hdr(t_start, 'map'),
        info=MapMetaData(map_load_time=_time(ts, t_start), resolution=float(om.resolution), width=om.shape[1],
                         height=om.shape[0], origin=Pose(position=Point(x=float(om.origin[0]), y=float(om.origin[1]),
                                                                        z=0.0), orientation=quat(yaw_to_quat(om.origin[2])))),
        data=np.ascontiguousarray(om.grid.ravel(), dtype=np.int8))
    c_map = conn(topics.map, 'nav_msgs/msg/OccupancyGrid', latched)
    add_source(np.array([t_start]), lambda i: (c_map, grid_msg, 'nav_msgs/msg/OccupancyGrid'))
    # ground truth
    gt = sc.ground_truth
    gq = sc.base_orientation(gt.t)
    PoseStamped = T['geometry_msgs/msg/PoseStamped']
    c_gt = conn(topics.ground_truth, 'geometry_msgs/msg/PoseStamped')
    add_source(gt.t, lambda i: (c_gt, PoseStamped(header=hdr(gt.t[i], 'map'), pose=Pose(
        position=Point(x=float(gt.pose[i, 0]), y=float(gt.pose[i, 1]), z=0.0), orientation=quat(gq[i]))),
        'geometry_msgs/msg/PoseStamped'))

    s = sc.streams
    if 'lidar2d' in s:
        st = s['lidar2d']
        LaserScan = T['sensor_msgs/msg/LaserScan']
        c = conn(topics.scan, 'sensor_msgs/msg/LaserScan')
        amin, inc = float(st.angles[0]), float(st.angles[1] - st.angles[0]) if len(st.angles) > 1 else 0.0
        empty = np.zeros(0, dtype=np.float32)
        add_source(st.timing.arrival, lambda i, st=st, c=c: (c, LaserScan(
            header=hdr(st.timing.stamp[i], st.frame_id), angle_min=amin, angle_max=amin + inc * (len(st.angles) - 1),
            angle_increment=inc, time_increment=st.time_increment, scan_time=st.scan_time, range_min=st.range_min,
            range_max=st.range_max, ranges=st.ranges[i], intensities=empty), 'sensor_msgs/msg/LaserScan'))
    if 'lidar3d' in s:
        st = s['lidar3d']
        PC2, PF = T['sensor_msgs/msg/PointCloud2'], T['sensor_msgs/msg/PointField']
        fields = [PF(name='x', offset=0, datatype=7, count=1), PF(name='y', offset=4, datatype=7, count=1),
                  PF(name='z', offset=8, datatype=7, count=1), PF(name='time', offset=12, datatype=7, count=1),
                  PF(name='ring', offset=16, datatype=4, count=1)]
        dt = np.dtype({'names': ['x', 'y', 'z', 'time', 'ring'], 'formats': ['<f4', '<f4', '<f4', '<f4', '<u2'],
                       'offsets': [0, 4, 8, 12, 16], 'itemsize': 20})
        c = conn(topics.points, 'sensor_msgs/msg/PointCloud2')

        def build_pc(i: int, st=st, c=c) -> tuple[Any, Any, str]:
            pc = st.cloud(i)
            rec = np.zeros(len(pc.xyz), dtype=dt)
            rec['x'], rec['y'], rec['z'] = pc.xyz[:, 0], pc.xyz[:, 1], pc.xyz[:, 2]
            rec['time'], rec['ring'] = pc.time, pc.ring
            return c, PC2(header=hdr(pc.stamp, pc.frame_id), height=pc.height, width=pc.width, fields=fields,
                          is_bigendian=False, point_step=20, row_step=20 * pc.width,
                          data=rec.view(np.uint8).ravel(), is_dense=False), 'sensor_msgs/msg/PointCloud2'
        add_source(st.timing.arrival, build_pc)
    if 'depth' in s:
        st = s['depth']
        Img, CI, ROI = T['sensor_msgs/msg/Image'], T['sensor_msgs/msg/CameraInfo'], T['sensor_msgs/msg/RegionOfInterest']
        K = st.intrinsics.K
        c, ci = conn(topics.depth, 'sensor_msgs/msg/Image'), conn(topics.camera_info, 'sensor_msgs/msg/CameraInfo')
        Hh, Ww = st.depth.shape[1:]
        P = np.zeros(12)
        P[[0, 1, 2, 4, 5, 6, 10]] = [K[0, 0], K[0, 1], K[0, 2], K[1, 0], K[1, 1], K[1, 2], 1.0]
        add_source(st.timing.arrival, lambda i, st=st, c=c: (c, Img(
            header=hdr(st.timing.stamp[i], st.frame_id), height=Hh, width=Ww, encoding='32FC1', is_bigendian=0,
            step=4 * Ww, data=np.ascontiguousarray(st.depth[i], dtype='<f4').view(np.uint8).ravel()),
            'sensor_msgs/msg/Image'))
        add_source(st.timing.arrival, lambda i, st=st: (ci, CI(
            header=hdr(st.timing.stamp[i], st.frame_id), height=Hh, width=Ww, distortion_model='plumb_bob',
            d=np.zeros(5), k=K.ravel().astype(np.float64), r=np.eye(3).ravel(), p=P, binning_x=0, binning_y=0,
            roi=ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)), 'sensor_msgs/msg/CameraInfo'))
    if 'uwb' in s:
        st = s['uwb']
        Range = T['sensor_msgs/msg/Range']
        c = conn(topics.uwb, 'sensor_msgs/msg/Range')
        var = float(st.params['los_sigma']) ** 2
        add_source(st.timing.arrival, lambda i, st=st, c=c: (c, Range(
            header=hdr(st.timing.stamp[i], st.anchor_ids[int(st.anchor[i])]), radiation_type=1,
            field_of_view=float(2 * math.pi), min_range=0.0, max_range=st.max_range, range=float(st.range[i]),
            variance=var), 'sensor_msgs/msg/Range'))
    if 'uwb' in s and tag_moves:  # base_link -> tag at every ranging frame's time
        u, m = s['uwb'], cfg.sensors.uwb.mount
        tz = sc.habits.tag_height.value(u.epoch_t)
        qt = quat(ypr_to_quat(m.yaw, 0.0, 0.0))
        ctf = conn(topics.tf, 'tf2_msgs/msg/TFMessage')
        add_source(u.epoch_t, lambda i, u=u, m=m: (ctf, TFMessage(transforms=[TfS(
            header=hdr(u.epoch_t[i], 'base_link'), child_frame_id=cfg.sensors.uwb.frame_id,
            transform=Transform(translation=Vec3(x=m.x, y=m.y, z=float(tz[i])), rotation=qt))]),
            'tf2_msgs/msg/TFMessage'))
    if 'imu' in s:
        st = s['imu']
        Imu = T['sensor_msgs/msg/Imu']
        c = conn(topics.imu, 'sensor_msgs/msg/Imu')
        oc = np.zeros(9)
        oc[0] = -1.0
        gc, ac = (np.eye(3) * st.gyro_sigma ** 2).ravel(), (np.eye(3) * st.accel_sigma ** 2).ravel()
        add_source(st.timing.arrival, lambda i, st=st, c=c: (c, Imu(
            header=hdr(st.timing.stamp[i], st.frame_id), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0),
            orientation_covariance=oc, angular_velocity=Vec3(x=st.gyro[i, 0], y=st.gyro[i, 1], z=st.gyro[i, 2]),
            angular_velocity_covariance=gc,
            linear_acceleration=Vec3(x=st.accel[i, 0], y=st.accel[i, 1], z=st.accel[i, 2]),
            linear_acceleration_covariance=ac), 'sensor_msgs/msg/Imu'))
    if 'odom' in s:
        st = s['odom']
        Odom, PWC, TWC, Twist = (T['nav_msgs/msg/Odometry'], T['geometry_msgs/msg/PoseWithCovariance'],
                                 T['geometry_msgs/msg/TwistWithCovariance'], T['geometry_msgs/msg/Twist'])
        c, ctf = conn(topics.odom, 'nav_msgs/msg/Odometry'), conn(topics.tf, 'tf2_msgs/msg/TFMessage')
        oq = yaw_to_quat(st.pose[:, 2])
        pc = np.diag([1e-3, 1e-3, 1e6, 1e6, 1e6, 1e-2]).ravel()
        add_source(st.timing.arrival, lambda i, st=st, c=c: (c, Odom(
            header=hdr(st.timing.stamp[i], st.frame_id), child_frame_id=st.child_frame_id,
            pose=PWC(pose=Pose(position=Point(x=st.pose[i, 0], y=st.pose[i, 1], z=0.0), orientation=quat(oq[i])),
                     covariance=pc),
            twist=TWC(twist=Twist(linear=Vec3(x=st.twist[i, 0], y=st.twist[i, 1], z=0.0),
                                  angular=Vec3(x=0.0, y=0.0, z=st.twist[i, 2])), covariance=pc)),
            'nav_msgs/msg/Odometry'))
        add_source(st.timing.arrival, lambda i, st=st: (ctf, TFMessage(transforms=[TfS(
            header=hdr(st.timing.stamp[i], st.frame_id), child_frame_id=st.child_frame_id,
            transform=Transform(translation=Vec3(x=st.pose[i, 0], y=st.pose[i, 1], z=0.0), rotation=quat(oq[i])))]),
            'tf2_msgs/msg/TFMessage'))

    def it(k: int) -> Iterator[tuple[int, int, int]]:
        ns = sources[k][0]
        for j in range(len(ns)):
            yield int(ns[j]), k, j

    try:
        for ns, k, j in heapq.merge(*(it(k) for k in range(len(sources)))):
            c, msg, mt = sources[k][1](j)
            writer.write(c, ns, ts.serialize_cdr(msg, mt))
    finally:
        writer.close()
    return bag
