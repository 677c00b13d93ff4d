"""flm-eval: replay a bag through the localizer and measure it against ground truth.

    flm-eval BAG [--out DIR] [--mode offline|live] [--compare icp,uwb-ekf,amcl] [--fail-above 0.5]
             [--initial-pose X,Y,YAW|gt] [--gt-max-gap 0.5]

offline (default): drives the same pipeline the node runs (flm_core.pipeline via flm_core.config.make_pipeline,
same parameter file, same conversions) deterministically and as fast as the machine allows.
live: starts the real graph (flm-run, use_sim_time) and plays the bag to it over DDS with /clock (flm-play), records
what the node publishes, and computes the same metrics: the ROS path itself is evaluated.

How each method starts (recorded per method in metrics.json as 'initialisation'):
  the FLM localizes globally from nothing, unless --initial-pose X,Y,YAW (m, m, rad in the map frame; the
  parameters' initial_pose.std_xy/std_yaw, as the node's set_initial_pose) or, offline only, --initial-pose gt: the
  ground truth interpolated at the first sensor stamp the pipeline accepts (std 0.1 m, 0.05 rad). The --compare
  baselines always start from the ground truth interpolated at their own first accepted stamp (same std). Sensor
  data the ground truth does not cover yet (a bag that starts before its ground truth) is skipped for them, with a
  warning that names the gap when it is one update period (1 / update_rate) or longer.

Ground truth: each estimate is compared with the ground truth interpolated at its stamp, across gaps of the
ground truth of at most --gt-max-gap s (default 0.5); estimates outside its time range or in a longer gap are not
scored. When no estimate of a method can be scored, flm-eval says why (the ground truth's time range and largest
gap) and exits with status 4.

Outputs in --out: TUM trajectories (evo-compatible), metrics.json (per method: APE/RPE, yaw error, failures, NEES
of the pose (3 dof) and of the position (2 dof), the fraction of position errors inside the 1- and 2-sigma
ellipses, the time it was confidently wrong (error > 0.5 m and > 3 of its own sigmas), wall time and real-time
factor (live: the playback rate), initialisation; the model file's path and sha256), params.yaml (every parameter
the localizer ran with, a ROS parameter file: --params-file takes it back), trajectory.png, errors.png and
report.md. Exit status: 0 ok; 1 the bag, the site or the model could not be used; 2 bad arguments; 3 a --fail-above
threshold was crossed; 4 partial results (missing ground truth, truncated bag, no estimate matched to ground
truth, ...).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flm_core import config as C
from flm_core import tftree
from flm_core.evaluation.report import Evaluation, evaluate, metrics_table, run_summary, unmatched_problem, write_report
from flm_core.evaluation.trajectory import Trajectory, interpolate, read_tum
from flm_core.geometry import quat_to_yaw
from flm_core.rig import frames_in
from flm_core.site import Site, SiteError, load_site
from flm_core.timebuffer import Verdict
from flm_ros import conversions as conv
from flm_ros import params as P
from flm_ros.bagio import BagError, info, messages, open_bag
from flm_ros.bringup import default_params_file
from flm_ros.runner import stop_processes
from flm_ros.sensor_input import MESSAGES, convert, sensor_topics

EXIT_OK, EXIT_INPUT, EXIT_ARGS, EXIT_THRESHOLD, EXIT_PARTIAL = 0, 1, 2, 3, 4
TABLE = P.COMMON + P.LOCALIZER
#: Standard deviations (m, m, rad) of a start from the ground truth (baselines, --initial-pose gt).
GT_START_STD = (0.1, 0.1, 0.05)


@dataclass
class Replay:
    """What a replay produced: the estimates and what happened on the way."""

    est: Trajectory
    gt: Trajectory
    events: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duration: float = 0.0
    wall: float = 0.0                 # s the replay (live: the playback) took
    counts: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0                # s, the bag's first receive time
    init: dict[str, Any] = field(default_factory=dict)   # how the method started (metrics.json 'initialisation')
    notes: list[str] = field(default_factory=list)       # warnings that do not make the results partial


def _log(msg: str) -> None:
    print(f'[flm-eval] {msg}', file=sys.stderr)


#: Message types read as ground truth, and as transforms.
GT_TYPES = ('geometry_msgs/msg/PoseStamped', 'geometry_msgs/msg/PoseWithCovarianceStamped',
            'nav_msgs/msg/Odometry')
TF_TYPES = ('tf2_msgs/msg/TFMessage',)


def _msgtype(stream: str) -> str:
    """'sensor_msgs/msg/LaserScan' for 'scan': the message type the node subscribes to for a stream."""
    cls = MESSAGES[stream][0]
    return f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}'


def _gt_pose(msg: Any) -> np.ndarray:
    p = msg.pose.pose if hasattr(msg.pose, 'pose') else msg.pose
    q = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])
    return np.array([p.position.x, p.position.y, float(quat_to_yaw(q))])


def _trajectory(rows: list[tuple[float, np.ndarray, np.ndarray | None]]) -> Trajectory:
    rows = sorted({r[0]: r for r in rows}.values(), key=lambda r: r[0])  # one per stamp, in time order
    if not rows:
        return Trajectory(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3, 3)))
    cov = np.stack([r[2] for r in rows]) if rows[0][2] is not None else None
    return Trajectory(np.array([r[0] for r in rows]), np.stack([r[1] for r in rows]), cov)


def _start(kind: str, pose: np.ndarray | None = None, std: tuple[float, ...] | None = None) -> dict[str, Any]:
    """metrics.json's 'initialisation' of a method: kind 'global' (localized from nothing), 'given' (an initial pose
    from the user) or 'ground_truth'; the pose (x, y, yaw) and its std, the stamp it was applied at, and how many
    sensor messages (and s of data) were skipped before it."""
    return {'kind': kind, 'pose': None if pose is None else [float(v) for v in pose],
            'std': None if std is None else [float(v) for v in std], 'stamp': None, 'skipped_messages': 0,
            'skipped_s': 0.0}


def replay_offline(bag: Path, site: Site, p: dict[str, Any], gt_spec: str, progress: bool = True,
                   source: Any = None, initial_pose: np.ndarray | Trajectory | None = None, baseline: Any = None,
                   gt_max_gap: float = 0.5) -> Replay:
    """Drive the pipeline through the bag in receive order, stepping at ``update_rate`` of bag time.

    ``source``: the pose source (default: the one the parameters name, i.e. the FLM). ``initial_pose``: None to
    localize globally (or start where the parameters' ``set_initial_pose`` / ``initial_pose.*`` say, as the node
    does); (3,) x, y, yaw: start tracking there (std :data:`GT_START_STD`); a :class:`Trajectory` (the ground truth):
    start from it interpolated (across gaps of at most ``gt_max_gap`` s) at the first sensor stamp the pipeline
    accepts. Sensor messages it does not cover yet are skipped (``Replay.notes`` names the gap). Either way the pose
    is applied at the stamp of the first accepted sensor message. ``baseline``: a
    :class:`flm_core.estimation.baselines.Baseline` factory ``f(site, mounts) -> Baseline`` (e.g. AMCL) driven on
    the same measurements instead of the pipeline; it starts from ``initial_pose``."""
    from tqdm import tqdm  # noqa: PLC0415

    reader = open_bag(bag)
    binfo = info(reader, bag)
    problems: list[str] = []
    notes: list[str] = []
    # every topic of every enabled stream (several lidars, one UWB topic per tag): topic -> (stream, tag frame)
    tag_of = {t: tag for _, t, tag in sensor_topics(p)}
    stream_of = {t: s for s, t, _ in sensor_topics(p)}
    present = [t for t in stream_of if t in binfo.topics]
    if not present:
        reader.close()
        raise BagError(f'{bag}: none of the sensor topics {sorted(stream_of)} is in the bag '
                       f'(it has {sorted(binfo.topics)}); set them with --topic STREAM=TOPIC')
    gt_topic, gt_tf = None, None
    if gt_spec.startswith('tf:'):
        gt_tf = tuple(gt_spec[3:].split(':'))
    elif not gt_spec.startswith('tum:'):
        gt_topic = gt_spec
        if gt_topic not in binfo.topics:
            problems.append(f'no ground truth: topic {gt_topic} is not in the bag (use --gt TOPIC, --gt tf:MAP:BASE '
                            'or --gt tum:FILE); metrics need ground truth')
    tree = tftree.TransformTree(cache_time=max(binfo.end - binfo.start, 1.0) + 10.0)
    cfg = C.load_config(p)
    if source is None and baseline is None:
        source = C.load_pose_source(cfg, _log)
    rig = C.make_rig(cfg, lambda a, b: tree.lookup(a, b, 0.0))
    pipe = C.make_pipeline(cfg, site, source, rig=rig)
    base_impl = None
    period = 1.0 / float(p['update_rate'])
    topics = {t: (_msgtype(stream_of[t]),) for t in present}
    topics.update({'/tf': TF_TYPES, '/tf_static': TF_TYPES})
    if gt_topic in binfo.topics:
        topics[gt_topic] = GT_TYPES
    # the messages read (of the accepted types): what the progress bar counts
    total = sum(c.msgcount for c in reader.connections if c.topic in topics and c.msgtype in topics[c.topic])
    gt_start = initial_pose if isinstance(initial_pose, Trajectory) else None
    start_cov = np.diag(np.square(GT_START_STD))
    if gt_start is not None:
        init = _start('ground_truth', std=GT_START_STD)
    elif initial_pose is not None:
        init = _start('given', np.asarray(initial_pose, float), GT_START_STD)
    elif baseline is None and p['set_initial_pose']:
        std = (p['initial_pose.std_xy'], p['initial_pose.std_xy'], p['initial_pose.std_yaw'])
        init = _start('given', np.array([p['initial_pose.x'], p['initial_pose.y'], p['initial_pose.yaw']], float),
                      std)
        start_cov = np.diag(np.square(std))
    else:
        init = _start('global')
    started = init['kind'] == 'global'              # no initial pose to apply
    first_sensor: float | None = None
    est_rows: list[tuple[float, np.ndarray, np.ndarray]] = []
    gt_rows: list[tuple[float, np.ndarray, None]] = []
    seen = {t: 0 for t in present}                     # messages per sensor topic
    malformed: dict[str, list] = {}                    # topic -> [count, first error]
    latencies: list[float] = []
    next_step: float | None = None
    camera_info = None
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit='msg', desc='flm-eval', disable=not progress, mininterval=1.0)
    try:
        for topic, t_recv, msg in messages(reader, topics, problems):
            bar.update()
            if topic in ('/tf', '/tf_static'):
                _add_transforms(tree, msg, topic == '/tf_static')
                continue
            if topic == gt_topic:
                gt_rows.append((conv.stamp_to_sec(msg.header.stamp), _gt_pose(msg), None))
                continue
            stream = stream_of[topic]
            seen[topic] += 1
            try:
                m = convert(stream, msg, tag_of[topic])
            except (ValueError, TypeError, OverflowError, AttributeError) as e:
                # AttributeError: a bag whose definition of the type lacks fields of the standard one
                pipe.front.reject(stream, 'malformed')
                malformed.setdefault(topic, [0, f'{type(e).__name__}: {e}'])[0] += 1
                continue
            stamp = float(m.stamp)
            first_sensor = stamp if first_sensor is None else first_sensor
            if not started and gt_start is not None:
                at, ok = interpolate(gt_start, np.array([stamp]), max_gap=gt_max_gap)
                if not ok[0]:                          # no ground truth here yet: nothing to start from
                    init['skipped_messages'] += 1
                    continue
                init['pose'] = [float(v) for v in at[0]]
            if next_step is None:
                next_step = t_recv + period
            v, m = pipe.admit(stream, m, t_recv)
            accepted = v in (Verdict.ACCEPTED, Verdict.RESET)
            if accepted and not started:
                started = True
                init['stamp'], init['skipped_s'] = stamp, stamp - first_sensor
                if baseline is None:
                    pipe.set_initial_pose(np.array(init['pose']), start_cov, stamp)
            if baseline is not None and accepted and started:
                if base_impl is None:
                    mounts = rig.rig(frames_in({stream: [(m.stamp, m)]})).mounts
                    base_impl = baseline(site, mounts)
                    base_impl.reset(stamp, None if init['pose'] is None else np.array(init['pose']), start_cov)
                ext, frame = getattr(base_impl, 'extrinsics', None), getattr(m, 'frame_id', '')
                if ext is not None and stream not in ('odom', 'uwb') and frame and frame not in ext:
                    ext.update(rig.rig({frame}).mounts)   # mounts of sensor frames first seen after the first message
                t0b = time.perf_counter()
                base_impl.step(m)
                latencies.append(time.perf_counter() - t0b)
            if baseline is not None:
                while t_recv >= next_step:
                    next_step += period
                    e = base_impl.estimate(pipe.front.buffer.latest) if base_impl is not None else None
                    if e is not None:
                        est_rows.append((e.stamp, e.pose, e.cov))
                continue
            while t_recv >= next_step:
                next_step += period
                pipe.rig = rig.rig(frames_in(pipe.front.buffer.newest()), camera_info)
                res = pipe.step()
                if res is not None:
                    if res.model_latency is not None:
                        latencies.append(res.model_latency)
                    est_rows.append((res.stamp, res.pose, res.cov))
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    reader.close()
    for topic, (n, first) in malformed.items():
        problems.append(f'{topic}: {n} of {seen[topic]} {binfo.topics[topic]} messages could not be converted '
                        f'(first: {first}); the bag\'s definition of the type may differ from the standard one')
    if not any(seen.values()) and not any('bag read error' in x for x in problems):
        why = '; '.join(problems) if problems else 'was anything recording?'
        raise BagError(f'{bag}: no messages on the sensor topics {sorted(seen)} could be read ({why})')
    if gt_start is not None:
        notes += _start_notes(init, gt_start, first_sensor, period)   # less than one update: no warning
    if gt_topic is not None and gt_topic in binfo.topics:
        _note_empty_gt(gt_topic, gt_rows, problems)
    if gt_tf is not None:
        gt_rows = _gt_from_tree(tree, gt_tf, binfo.start, binfo.end, problems)
    elif gt_spec.startswith('tum:'):
        gt_rows = _gt_from_tum(gt_spec[4:], problems)
    return Replay(est=_trajectory(est_rows), gt=_trajectory(gt_rows), latencies=latencies, problems=problems,
                  events=[f'{t - binfo.start:.2f} s: {w}' for t, w in pipe.events], duration=binfo.end - binfo.start,
                  wall=wall, counts={'read': {s: sum(n for t, n in seen.items() if stream_of[t] == s)
                                              for s in dict.fromkeys(stream_of[t] for t in seen)},
                                     'read_by_topic': dict(seen),
                                     'rejections': {f'{s}.{r}': c for (s, r), c in pipe.front.rejections.items()},
                                     'buffer': pipe.front.buffer.counts(),
                                     'filter': pipe.filter_counts(),
                                     'events': dict(pipe.event_counts)},
                  start=binfo.start, init=init, notes=notes)


def _start_notes(init: dict[str, Any], gt: Trajectory, first_sensor: float | None, min_gap: float) -> list[str]:
    """Warnings about a start from the ground truth: sensor data skipped until it began (when that is at least
    ``min_gap`` s: less is recorded in ``init`` only), or no start at all."""
    if init['stamp'] is None:
        span = f'{gt.t[0]:.3f} to {gt.t[-1]:.3f} s' if len(gt) else 'empty'
        return [f'never started: no accepted sensor message lies where the ground truth ({span}) can be interpolated '
                f'(--gt-max-gap); {init["skipped_messages"]} sensor messages skipped']
    if init['skipped_s'] < min_gap:
        return []
    return [f'the ground truth does not cover the first {init["skipped_s"]:.3f} s of sensor data (sensor data from '
            f'{first_sensor:.3f} s, ground truth from {gt.t[0]:.3f} s): {init["skipped_messages"]} sensor '
            f'message(s) skipped; started from the ground truth at {init["stamp"]:.3f} s']


def _add_transforms(tree: tftree.TransformTree, msg: Any, static: bool) -> None:
    """Add a TFMessage to ``tree`` (invalid transforms are skipped, as tf2 does)."""
    for tr in msg.transforms:
        trans, q = tr.transform.translation, tr.transform.rotation
        try:
            tree.set_transform(tr.header.frame_id, tr.child_frame_id, conv.stamp_to_sec(tr.header.stamp),
                               [trans.x, trans.y, trans.z], [q.x, q.y, q.z, q.w], static=static)
        except ValueError:
            pass


def _note_empty_gt(topic: str, rows: list, problems: list[str]) -> None:
    """Say so when a ground-truth topic that is in the bag gave no pose (unless its topic was already named)."""
    if not rows and not any(x.startswith(f'{topic}:') for x in problems):
        problems.append(f'no ground truth: topic {topic} holds no messages; metrics need ground truth')


def _gt_from_tum(path: str, problems: list[str]) -> list:
    try:
        g = read_tum(path)
    except ValueError as e:
        problems.append(f'no ground truth: {e}')
        return []
    return [(float(t), pose, None) for t, pose in zip(g.t, g.poses)]


def _gt_from_tree(tree: tftree.TransformTree, frames: tuple, start: float, end: float, problems: list[str]):
    rows = []
    if len(frames) != 2:
        problems.append('--gt tf:MAP:BASE needs two frame names')
        return rows
    for t in np.arange(start, end, 0.02):
        try:
            tr, q = tree.lookup(frames[0], frames[1], float(t))
        except tftree.TransformError:
            continue
        rows.append((float(t), np.array([tr[0], tr[1], float(quat_to_yaw(q))]), None))
    if not rows:
        problems.append(f'no ground truth: no transform {frames[0]} -> {frames[1]} in /tf')
    return rows


def replay_live(bag: Path, site_path: Path, params_file: Path, p: dict[str, Any], gt_spec: str, rate: float
                ) -> Replay:
    """Start the real graph and play the bag to it over DDS; record the node's pose output. ``params_file``: the
    parameters the node gets (flm-eval writes ``p`` there); ``Replay.wall``: s from the start of the playback to its
    end (``counts['total_wall_s']``: with starting and stopping the graph)."""
    import rclpy  # noqa: PLC0415
    from geometry_msgs.msg import PoseWithCovarianceStamped  # noqa: PLC0415
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415

    rows: list[tuple[float, np.ndarray, np.ndarray]] = []
    rclpy.init()
    node = rclpy.create_node('flm_eval_recorder')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def on_pose(msg: PoseWithCovarianceStamped) -> None:
        c = np.asarray(msg.pose.covariance).reshape(6, 6)[np.ix_([0, 1, 5], [0, 1, 5])]
        rows.append((conv.stamp_to_sec(msg.header.stamp), _gt_pose(msg), c))

    node.create_subscription(PoseWithCovarianceStamped, p['pose_topic'], on_pose, qos)
    graph = subprocess.Popen([sys.executable, '-m', 'flm_ros.runner', f'params_file:={params_file}',
                              f'site:={site_path}', 'use_sim_time:=true'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    try:
        deadline = time.monotonic() + 60
        while node.count_publishers(p['pose_topic']) == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        play = subprocess.Popen([sys.executable, '-m', 'flm_ros.player', str(bag), '--clock', '100', '--rate',
                                 str(rate), '--delay', '1.0'])
        t_play = time.perf_counter()
        while play.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        play_wall = time.perf_counter() - t_play
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        stop_processes([graph], grace=20.0)
        node.destroy_node()
        rclpy.try_shutdown()
    wall = time.perf_counter() - t0
    gt = replay_ground_truth(bag, p, gt_spec)
    init = _start('given', np.array([p['initial_pose.x'], p['initial_pose.y'], p['initial_pose.yaw']], float),
                  (p['initial_pose.std_xy'], p['initial_pose.std_xy'], p['initial_pose.std_yaw'])) \
        if p['set_initial_pose'] else _start('global')
    return Replay(est=_trajectory(rows), gt=gt.gt, problems=gt.problems, duration=gt.duration, wall=play_wall,
                  counts={'total_wall_s': wall}, start=gt.start, init=init)


def replay_ground_truth(bag: Path, p: dict[str, Any], gt_spec: str) -> Replay:
    """Ground truth alone from a bag (for live mode)."""
    reader = open_bag(bag)
    binfo = info(reader, bag)
    problems: list[str] = []
    rows: list = []
    if gt_spec.startswith('tum:'):
        rows = _gt_from_tum(gt_spec[4:], problems)
    elif gt_spec.startswith('tf:'):
        tree = tftree.TransformTree(cache_time=max(binfo.end - binfo.start, 1.0) + 10.0)
        for topic, _, msg in messages(reader, {'/tf': TF_TYPES, '/tf_static': TF_TYPES}, problems):
            _add_transforms(tree, msg, topic == '/tf_static')
        rows = _gt_from_tree(tree, tuple(gt_spec[3:].split(':')), binfo.start, binfo.end, problems)
    elif gt_spec in binfo.topics:
        rows = [(conv.stamp_to_sec(m.header.stamp), _gt_pose(m), None) for _, _, m in
                messages(reader, {gt_spec: GT_TYPES}, problems)]
        _note_empty_gt(gt_spec, rows, problems)
    else:
        problems.append(f'no ground truth: topic {gt_spec} is not in the bag (use --gt TOPIC, --gt tf:MAP:BASE or '
                        '--gt tum:FILE)')
    reader.close()
    return Replay(est=_trajectory([]), gt=_trajectory(rows), problems=problems, duration=binfo.end - binfo.start,
                  start=binfo.start)


BASELINES = ('icp', 'icp2d', 'icp3d', 'uwb', 'uwb-ekf', 'amcl', 'amcl-lf', 'amcl-beam')


def _baseline(kind: str) -> dict[str, Any]:
    """replay_offline arguments that run baseline ``kind`` (see --compare); 'amcl' is expanded to 'amcl-lf' and
    'amcl-beam' by the caller. Both AMCL variants choose their motion model from the odometry (robot 'auto': the
    omni model once it shows sideways motion, Nav2's differential one until then). 'amcl-beam' runs the GPL-3.0
    ``amcl`` bindings through bench/amcl_beam.py, loaded from the repository (never part of the installed package)."""
    if kind == 'amcl-lf':
        from flm_core.estimation.mcl import LikelihoodFieldMcl  # noqa: PLC0415

        return {'baseline': lambda site, mounts: LikelihoodFieldMcl(site.map, extrinsics=mounts, robot='auto')}
    if kind == 'amcl-beam':
        import importlib.util  # noqa: PLC0415

        where = [Path(__file__).resolve().parents[1] / 'bench' / 'amcl_beam.py', Path.cwd() / 'bench' / 'amcl_beam.py']
        path = next((f for f in where if f.is_file()), None)
        if path is None:
            raise ImportError('amcl-beam needs bench/amcl_beam.py of a source checkout of this repository (it is '
                              f'not installed with the package; looked in {", ".join(str(f.parent) for f in where)}) '
                              'and the GPL-3.0 PyPI package "amcl" (pip install -r requirements/bench.txt); '
                              'amcl-lf needs neither')
        spec = importlib.util.spec_from_file_location('flm_bench_amcl_beam', path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod._import_amcl()   # a clear ImportError (what to install) now rather than at the first message
        return {'baseline': lambda site, mounts: mod.AmclBeamBaseline(site.map, extrinsics=mounts, robot='auto')}
    if kind == 'amcl':
        raise ValueError("'amcl' names two runs: ask for 'amcl-lf' and 'amcl-beam' one by one")
    if kind not in BASELINES:
        raise ValueError(f'unknown baseline {kind!r}; expected some of {", ".join(BASELINES)}')
    from flm_core.estimation.baselines import make_pose_source  # noqa: PLC0415

    return {'source': make_pose_source('uwb' if kind == 'uwb-ekf' else kind)}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='flm-eval', formatter_class=argparse.RawDescriptionHelpFormatter, description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('bag', type=Path, help='rosbag2 directory (sqlite3 or mcap) or ROS 1 .bag file')
    p.add_argument('--out', type=Path, default=None, help='output folder (default: <bag>_eval)')
    p.add_argument('--site', type=Path, default=None, help='site file (default: site.yaml next to the bag)')
    p.add_argument('--params-file', type=Path, default=default_params_file(), help='ROS parameter file')
    p.add_argument('--model', default='', help='TorchScript model (default: the shipped one)')
    p.add_argument('--mode', choices=('offline', 'live'), default='offline')
    p.add_argument('--rate', type=float, default=1.0, help='live mode playback rate')
    p.add_argument('--gt', default='/ground_truth/pose',
                   help='ground truth: a PoseStamped/Odometry topic, tf:MAP_FRAME:BASE_FRAME, or tum:FILE '
                        '(default: %(default)s)')
    p.add_argument('--topic', action='append', default=[], metavar='STREAM=TOPIC',
                   help='sensor topic, e.g. scan=/front/scan (streams: scan points depth uwb imu odom); repeat it '
                   'for more lidars or tags (scan, points, uwb: --topic scan=/front/scan --topic scan=/rear/scan; '
                   'uwb=TOPIC:TAG_FRAME names the tag of a UWB topic); the first replaces the parameter file\'s '
                   'topics of the stream, as sensors.STREAM.topic and extra_topics')
    p.add_argument('--disable', default='', help='comma-separated streams to ignore, e.g. scan,points')
    p.add_argument('--compare', default='', help='comma-separated baselines to run on the same bag (offline mode; '
                                                 'each starts from the ground truth interpolated at its first '
                                                 'accepted sensor stamp): icp, icp2d, icp3d, uwb-ekf, amcl-lf (Nav2 '
                                                 'AMCL, likelihood field), amcl-beam (Nav2 AMCL beam model: GPL amcl '
                                                 'bindings, bench/), amcl (both)')
    p.add_argument('--initial-pose', default=None, metavar='X,Y,YAW|gt',
                   help='start the FLM there (m, m, rad in the map frame; std from the parameters '
                        'initial_pose.std_xy/std_yaw) instead of localizing globally; gt (offline mode): from the '
                        'ground truth interpolated at the first sensor stamp the pipeline accepts')
    p.add_argument('--gt-max-gap', type=float, default=0.5, metavar='SECONDS',
                   help='the longest gap in the ground truth across which it is interpolated to an estimate\'s stamp '
                        '(estimates in longer gaps are not scored; default %(default)s)')
    p.add_argument('--fail-above', type=float, default=None, metavar='METRES',
                   help='exit with status 3 if the APE RMSE exceeds this')
    p.add_argument('--threshold', type=float, default=1.0, help='failure threshold in metres (default 1.0)')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def _initial_pose(spec: str | None) -> np.ndarray | str | None:
    """--initial-pose: None, 'gt' or (3,) x, y, yaw; raises ValueError."""
    if spec is None or spec == 'gt':
        return spec
    try:
        v = np.array([float(x) for x in spec.split(',')])
    except ValueError:
        v = np.zeros(0)
    if v.shape != (3,) or not np.isfinite(v).all():
        raise ValueError(f'--initial-pose {spec!r}: expected X,Y,YAW (m, m, rad, e.g. 1.5,-2,0.3) or gt')
    return v


def _model_info(p: dict[str, Any]) -> dict[str, str] | None:
    """The model file the parameters name (path, sha256), None when the pose source is not the FLM."""
    if p['pose_source'] != 'flm':
        return None
    path = p['model_path']
    if not path:
        from flm_core.model.inference import DEFAULT_MODEL  # noqa: PLC0415 (imports torch)

        path = str(DEFAULT_MODEL)
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                h.update(block)
    except OSError as e:
        return {'path': str(Path(path).resolve()), 'sha256': f'unreadable: {e}'}
    return {'path': str(Path(path).resolve()), 'sha256': h.hexdigest()}


def write_params(path: Path, p: dict[str, Any]) -> Path:
    """Write the parameters ``p`` as a ROS parameter file for the flm_localizer node (what --params-file and
    flm-run read)."""
    import yaml  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('# The parameters flm-eval ran the localizer with (every one, defaults included).\n'
                    + yaml.safe_dump({'flm_localizer': {'ros__parameters': dict(p)}}, sort_keys=True))
    return path


def _timing(r: Replay, live: bool, rate: float) -> dict[str, Any]:
    """A method's wall time (s) and real-time factor (s of data per s of wall; live: the playback rate instead)."""
    if live:
        return {'wall_s': r.wall, 'realtime_factor': None, 'playback_rate': rate}
    return {'wall_s': r.wall, 'realtime_factor': r.duration / r.wall if r.wall > 0 else float('nan')}


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    out = ns.out or ns.bag.with_name(ns.bag.name + '_eval')
    try:
        init = _initial_pose(ns.initial_pose)
    except ValueError as e:
        print(f'flm-eval: error: {e}', file=sys.stderr)
        return EXIT_ARGS
    if isinstance(init, str) and ns.mode == 'live':
        print('flm-eval: error: --initial-pose gt needs the offline mode (the live node gets X,Y,YAW)',
              file=sys.stderr)
        return EXIT_ARGS
    if not ns.gt_max_gap > 0:
        print(f'flm-eval: error: --gt-max-gap {ns.gt_max_gap}: expected a positive number of seconds',
              file=sys.stderr)
        return EXIT_ARGS
    site_path = ns.site or (ns.bag if ns.bag.is_dir() else ns.bag.parent).parent / 'site.yaml'
    if not site_path.is_file():
        site_path = (ns.bag if ns.bag.is_dir() else ns.bag.parent) / 'site.yaml'
    try:
        site = load_site(site_path)
    except SiteError as e:
        print(f'flm-eval: error: site: {e} (give one with --site)', file=sys.stderr)
        return EXIT_INPUT
    try:
        p = P.from_yaml(str(ns.params_file), 'flm_localizer', TABLE)
    except C.ConfigError as e:
        print(f'flm-eval: error: {e}', file=sys.stderr)
        return EXIT_ARGS
    p['site_file'] = str(site_path.resolve())
    if ns.model:
        p['model_path'] = ns.model
    given: dict[str, list[str]] = {}
    for spec in ns.topic:
        stream, _, topic = spec.partition('=')
        topic, _, tag = topic.partition(':')
        if f'sensors.{stream}.topic' not in p or not topic or (tag and stream != 'uwb'):
            print(f'flm-eval: error: --topic {spec!r}: expected STREAM=TOPIC with STREAM one of scan points depth '
                  'uwb imu odom (uwb=TOPIC:TAG_FRAME names the tag\'s frame)', file=sys.stderr)
            return EXIT_ARGS
        if stream in given and stream not in P.MULTI_TOPIC:
            print(f'flm-eval: error: --topic {spec!r}: one {stream} topic only (several for '
                  f'{", ".join(P.MULTI_TOPIC)})', file=sys.stderr)
            return EXIT_ARGS
        if stream == 'uwb' and len(given.get('uwb', [])) and not tag:
            print(f'flm-eval: error: --topic {spec!r}: a further UWB topic is a tag of its own: name its frame, '
                  'uwb=TOPIC:TAG_FRAME', file=sys.stderr)
            return EXIT_ARGS
        given.setdefault(stream, []).append(topic)
        if len(given[stream]) == 1:                    # the first replaces the stream's topics, the others add
            p[f'sensors.{stream}.topic'] = topic
            if stream in P.MULTI_TOPIC:
                p[f'sensors.{stream}.extra_topics'] = []
            if stream == 'uwb':
                p['sensors.uwb.extra_tag_frames'] = []
                if tag:
                    p['sensors.uwb.tag_frame'] = tag
        else:
            p[f'sensors.{stream}.extra_topics'].append(topic)
            if stream == 'uwb':
                p['sensors.uwb.extra_tag_frames'].append(tag)
    reason = P.check(p, TABLE)
    if reason is not None:
        print(f'flm-eval: error: parameters: {reason}', file=sys.stderr)
        return EXIT_ARGS
    for stream in filter(None, ns.disable.split(',')):
        p[f'sensors.{stream}.enabled'] = False
    if isinstance(init, np.ndarray):                   # as the node takes it: its set_initial_pose parameters
        p['set_initial_pose'] = True
        p['initial_pose.x'], p['initial_pose.y'], p['initial_pose.yaw'] = (float(v) for v in init)
    try:
        cfg = C.load_config(p)
    except C.ConfigError as e:
        print(f'flm-eval: error: parameters ({ns.params_file} and the options): {e}', file=sys.stderr)
        return EXIT_ARGS
    source = None
    if ns.mode == 'offline':
        try:
            source = C.load_pose_source(cfg, _log)
        except (ValueError, OSError, RuntimeError, ImportError) as e:  # ModelFileError is a ValueError
            print(f'flm-eval: error: model: {e} (give one with --model)', file=sys.stderr)
            return EXIT_INPUT
    gt_first = None
    if isinstance(init, str):                          # 'gt': the ground truth first, the FLM starts from it
        try:
            gt_first = replay_ground_truth(ns.bag, p, ns.gt)
        except BagError as e:
            print(f'flm-eval: error: {e}', file=sys.stderr)
            return EXIT_INPUT
        if len(gt_first.gt) < 2:
            print(f'flm-eval: error: --initial-pose gt: no ground truth to start from ('
                  f'{"; ".join(gt_first.problems) or "fewer than two poses"})', file=sys.stderr)
            return EXIT_INPUT
    live = ns.mode == 'live'
    try:
        if live:
            rep = replay_live(ns.bag, site_path, write_params(out / 'params.yaml', p), p, ns.gt, ns.rate)
        else:
            rep = replay_offline(ns.bag, site, p, ns.gt, progress=not ns.no_progress, source=source,
                                 initial_pose=None if gt_first is None else gt_first.gt, gt_max_gap=ns.gt_max_gap)
            write_params(out / 'params.yaml', p)
    except BagError as e:
        print(f'flm-eval: error: {e}', file=sys.stderr)
        return EXIT_INPUT
    notes = [f'flm: {n}' for n in rep.notes]
    compared: list[tuple[str, Replay]] = []
    kinds = [x for k in ns.compare.split(',') if k for x in (('amcl-lf', 'amcl-beam') if k == 'amcl' else (k,))]
    if kinds and ns.mode == 'offline' and len(rep.gt):
        for kind in kinds:
            try:
                r = replay_offline(ns.bag, site, p, ns.gt, progress=not ns.no_progress, initial_pose=rep.gt,
                                   gt_max_gap=ns.gt_max_gap, **_baseline(kind))
            except (ValueError, ImportError, BagError) as e:
                rep.problems.append(f'--compare {kind}: {e}')
                continue
            compared.append((kind, r))
            notes += [f'{kind}: {n}' for n in r.notes]
    elif kinds:
        rep.problems.append('--compare needs the offline mode and ground truth (the baselines start from the ground '
                            'truth)')
    evals: list[Evaluation] = []
    header = {'bag': str(ns.bag), 'site': str(site_path), 'mode': ns.mode, 'ground_truth': ns.gt,
              'gt_max_gap_s': ns.gt_max_gap, 'bag_start_s': rep.start, 'duration_s': rep.duration, 'wall_s': rep.wall,
              'model': _model_info(p), 'params_file': 'params.yaml', 'notes': notes}
    if live:
        header.update(playback_rate=ns.rate, playback_wall_s=rep.wall, wall_s=rep.counts.get('total_wall_s'))
    else:
        header['realtime_factor'] = rep.duration / rep.wall if rep.wall > 0 else float('nan')
    if len(rep.gt):
        lat = np.array(rep.latencies) * 1e3
        extra = {'events': rep.events, 'counts': rep.counts, 'initialisation': rep.init,
                 **_timing(rep, live, ns.rate),
                 'model_latency_ms': {'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99))}
                 if len(lat) else {}}
        evals.append(evaluate('flm', rep.est, rep.gt, threshold=ns.threshold, gt_max_gap=ns.gt_max_gap,
                              duration=rep.duration, extra=extra))
        for kind, r in compared:
            lat_k = np.array(r.latencies) * 1e3
            evals.append(evaluate(kind, r.est, rep.gt, threshold=ns.threshold, gt_max_gap=ns.gt_max_gap,
                                  duration=r.duration, extra={
                'events': r.events, 'counts': r.counts, 'update_latency_ms': {'p50': float(np.percentile(lat_k, 50)),
                                                          'p99': float(np.percentile(lat_k, 99))} if len(lat_k) else {},
                'initialisation': r.init, 'initialised_from_ground_truth': r.init['kind'] == 'ground_truth',
                **_timing(r, False, ns.rate)}))
        rep.problems += [x for x in (unmatched_problem(ev, rep.gt) for ev in evals) if x]
    report = write_report(out, evals, rep.gt, site, header, rep.problems) if evals else None
    if not evals:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'metrics.json').write_text(json.dumps({**header, 'partial': True, 'problems': rep.problems}, indent=2))
    for prob in notes + rep.problems:
        print(f'flm-eval: warning: {prob}', file=sys.stderr)
    if evals:
        if any(ev.metrics['matched'] for ev in evals):   # else a table of NaN: the warnings say why
            print(metrics_table(evals) + '\n')
        print(f'report: {report}  ({run_summary(header)})')
    if not evals or rep.problems:
        return EXIT_PARTIAL
    if ns.fail_above is not None and not evals[0].metrics['ape_m']['rmse'] <= ns.fail_above:  # NaN fails too
        print(f'flm-eval: APE RMSE {evals[0].metrics["ape_m"]["rmse"]:.3f} m exceeds --fail-above {ns.fail_above}',
              file=sys.stderr)
        return EXIT_THRESHOLD
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
