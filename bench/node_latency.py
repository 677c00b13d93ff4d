"""Sensor-stamp-to-output latency and CPU use of the flm_localizer node, at 10 and 20 Hz updates.

A generated scenario (2D lidar + IMU + UWB + odometry) is published live over DDS with wall-clock stamps to the
node running as its own process. For every pose the node publishes, latency = arrival time at the recorder -
the pose's stamp (the newest sensor stamp the estimate used); map->odom on /tf is sent in the same update. CPU is
the node process's CPU time over the run (100 % = one core).

The node publishes the filter's estimate on each tick and runs the model beside it (flm_ros/localizer_node.py), so
a model pose reaches the output one model run (plus at most one tick) after its window's stamp: the table also
prints the model's own time per update (p50/p99, from the node's /diagnostics) and how many model poses per second
the filter received.

    .venv/bin/python bench/node_latency.py [--rates 10 20] [--duration 20] [--model PATH]

Target (issue 6): p99 <= 20 ms end to end at 20 Hz with 2D lidar + IMU + UWB on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(rate: float, duration: float, model: str, seed: int) -> dict:
    import psutil
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import Odometry
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Imu, LaserScan, Range

    from flm_core.datagen import ScenarioConfig, generate_scenario
    from flm_core.datagen.bagwriter import write_bag
    from flm_ros import conversions as conv
    from flm_ros.bagio import messages, open_bag
    from flm_ros.bringup import NodeSpec
    from flm_ros.runner import command_for, stop_processes
    from flm_ros.tf import StaticTransformBroadcaster

    sc = generate_scenario(ScenarioConfig(duration=duration), seed)
    tmp = Path(tempfile.mkdtemp(prefix='flm-latency-'))
    bag = write_bag(sc, tmp, storage='mcap')  # writes site.yaml (+ map) next to it
    x0, y0, yaw0 = sc.ground_truth.pose[0]
    params = {'site_file': str(tmp / 'site.yaml'), 'update_rate': rate, 'set_initial_pose': True,
              'initial_pose.x': float(x0), 'initial_pose.y': float(y0), 'initial_pose.yaw': float(yaw0),
              'sensors.points.enabled': False, 'sensors.depth.enabled': False}
    if model:
        params['model_path'] = model
    spec = NodeSpec(executable='flm_localizer', name='flm_localizer',
                    parameters=(str(ROOT / 'config' / 'flm.yaml'), params))
    import subprocess
    proc = subprocess.Popen(command_for(spec), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rclpy.init()
    node = rclpy.create_node('flm_latency_bench')
    pubs = {'scan': node.create_publisher(LaserScan, '/scan', qos_profile_sensor_data),
            'imu': node.create_publisher(Imu, '/imu/data', qos_profile_sensor_data),
            'uwb': node.create_publisher(Range, '/uwb/ranges', qos_profile_sensor_data),
            'odom': node.create_publisher(Odometry, '/odom', qos_profile_sensor_data)}
    lat: list[float] = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(PoseWithCovarianceStamped, '/amcl_pose',
                             lambda m: lat.append(time.time() - conv.stamp_to_sec(m.header.stamp)), latched)
    diag: list[tuple[float, dict[str, str]]] = []   # (arrival, the node's localization status values)

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith(': localization'):
                diag.append((time.time(), {kv.key: kv.value for kv in st.values}))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    static = StaticTransformBroadcaster(node)
    reader = open_bag(bag)
    for _, _, msg in messages(reader, ['/tf_static'], [], ros_objects=True):
        static.sendTransform(list(msg.transforms))  # the robot's sensor mounts, as the bag recorded them
    reader.close()
    events = []
    for name, topic in (('lidar2d', 'scan'), ('imu', 'imu'), ('uwb', 'uwb'), ('odom', 'odom')):
        if name in sc.streams:
            # converted up front, as a driver hands over ready messages (the bench measures the node, not Python
            # message building in the publisher)
            events += [(m.stamp, topic, conv.to_msg(m)) for m in sc.streams[name].measurements()]
    events.sort(key=lambda e: e[0])
    t_sim0 = events[0][0]
    deadline = time.monotonic() + 60
    while node.count_publishers('/amcl_pose') == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)
    p, me = psutil.Process(proc.pid), psutil.Process()
    cpu0, me0 = p.cpu_times(), me.cpu_times()
    wall0 = time.time()
    for t_sim, topic, msg in events:
        target = wall0 + (t_sim - t_sim0)
        while True:
            now = time.time()
            if now >= target:
                break
            rclpy.spin_once(node, timeout_sec=min(target - now, 0.005))
        msg.header.stamp = conv.sec_to_stamp(time.time())   # stamped as it leaves, like a driver
        pubs[topic].publish(msg)
    end = time.time() + 1.0
    while time.time() < end:
        rclpy.spin_once(node, timeout_sec=0.02)
    cpu1, me1 = p.cpu_times(), me.cpu_times()
    wall = time.time() - wall0
    stop_processes([proc])   # SIGINT, then SIGTERM, then SIGKILL: never leave a node running beside the next run
    node.destroy_node()
    rclpy.shutdown()
    a = np.array(lat[3:]) * 1e3  # skip start-up
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall * 100
    cpu_pub = (me1.user + me1.system - me0.user - me0.system) / wall * 100
    during = [(t, d) for t, d in diag if t >= wall0]
    model = {'model_p50': float('nan'), 'model_p99': float('nan'), 'model_hz': float('nan')}
    if len(during) >= 2:
        (ta, da), (tb, db) = during[0], during[-1]
        fused = lambda d: int(d.get('model_poses_accepted', 0)) + int(d.get('model_poses_rejected', 0))  # noqa: E731
        model = {'model_p50': float(db['model_latency_p50_ms']), 'model_p99': float(db['model_latency_p99_ms']),
                 'model_hz': (fused(db) - fused(da)) / max(tb - ta, 1e-9)}
    return {'rate': rate, 'poses': len(a), 'p50': float(np.percentile(a, 50)) if len(a) else float('nan'),
            'p99': float(np.percentile(a, 99)) if len(a) else float('nan'),
            'max': float(a.max()) if len(a) else float('nan'), 'cpu': cpu, 'cpu_pub': cpu_pub, **model}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rates', type=float, nargs='+', default=[10.0, 20.0], help='update rates in Hz')
    ap.add_argument('--duration', type=float, default=20.0, help='seconds of live data per rate')
    ap.add_argument('--model', default='', help='TorchScript model (default: the shipped one)')
    ap.add_argument('--seed', type=int, default=None, help='evaluation seed (default: the first)')
    ns = ap.parse_args(argv)
    os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-roslog-'))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
    from flm_core.datagen import evaluation_seeds
    seed = ns.seed if ns.seed is not None else int(evaluation_seeds(1)[0])
    rows = [run(r, ns.duration, ns.model, seed) for r in ns.rates]
    print(f'flm_localizer latency, 2D lidar + IMU + UWB + odometry, live over DDS, {os.cpu_count()} cores')
    print('| update rate | poses | latency p50 [ms] | p99 [ms] | max [ms] | model per update p50 / p99 [ms] '
          '| model poses per s | node CPU [% of one core] | publisher + recorder CPU [%] |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["rate"]:.0f} Hz | {r["poses"]} | {r["p50"]:.1f} | {r["p99"]:.1f} | {r["max"]:.1f} '
              f'| {r["model_p50"]:.1f} / {r["model_p99"]:.1f} | {r["model_hz"]:.1f} | {r["cpu"]:.0f} | {r["cpu_pub"]:.0f} |')
    at20 = [r for r in rows if r['rate'] >= 20]
    verdict = 'not measured' if not at20 else ('met' if all(r['p99'] <= 20.0 for r in at20) else 'NOT met')
    print(f'target p99 <= 20 ms at 20 Hz: {verdict}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
