"""flm-eval: replay a bag through the localizer and measure it against ground truth.

    flm-eval BAG [--out DIR] [--mode offline|live] [--compare icp,uwb-ekf,amcl] [--fail-above 0.5]

offline (default): drives the same pipeline the node runs (flm_core.pipeline via flm_ros.localizer_node.
make_pipeline, same parameter file, same conversions) deterministically and as fast as the machine allows.
live: starts the real graph (flm-run, use_sim_time) and plays the bag to it over DDS with /clock (flm-play), records
what the node publishes, and computes the same metrics: the ROS path itself is evaluated.

Outputs in --out: TUM trajectories (evo-compatible), metrics.json, trajectory.png, errors.png and report.md. Exit
status: 0 ok; 1 the bag, the site or the model could not be used; 2 bad arguments; 3 a --fail-above threshold was crossed;
4 partial results (missing ground truth, truncated bag, ...).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flm_core import tftree
from flm_core.evaluation.report import Evaluation, evaluate, metrics_table, write_report
from flm_core.evaluation.trajectory import Trajectory, read_tum
from flm_core.geometry import quat_to_yaw
from flm_core.rig import RigBuilder, frames_in
from flm_core.site import Site, SiteError, load_site
from flm_core.timebuffer import Verdict
from flm_ros import conversions as conv
from flm_ros import params as P
from flm_ros.bagio import BagError, info, messages, open_bag
from flm_ros.bringup import default_params_file
from flm_ros.localizer_node import load_pose_source, make_pipeline
from flm_ros.runner import stop_processes
from flm_ros.sensor_input import MESSAGES, convert

EXIT_OK, EXIT_INPUT, EXIT_ARGS, EXIT_THRESHOLD, EXIT_PARTIAL = 0, 1, 2, 3, 4
TABLE = P.COMMON + P.LOCALIZER


@dataclass
class Replay:
    """What a replay produced: the estimates and what happened on the way."""

    est: Trajectory
    gt: Trajectory
    events: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duration: float = 0.0
    wall: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)


class _Logger:
    def info(self, msg: str) -> None:
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
    return np.array([p.position.x, p.position.y,
                     float(quat_to_yaw(np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])))])


def _trajectory(rows: list[tuple[float, np.ndarray, np.ndarray | None]]) -> Trajectory:
    rows = sorted({r[0]: r for r in rows}.values(), key=lambda r: r[0])  # one per stamp, in time order
    if not rows:
        return Trajectory(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3, 3)))
    cov = np.stack([r[2] for r in rows]) if rows[0][2] is not None else None
    return Trajectory(np.array([r[0] for r in rows]), np.stack([r[1] for r in rows]), cov)


def replay_offline(bag: Path, site: Site, p: dict[str, Any], gt_spec: str, progress: bool = True,
                   source: Any = None, initial_pose: np.ndarray | None = None, baseline: Any = None) -> Replay:
    """Drive the pipeline through the bag in receive order, stepping at ``update_rate`` of bag time.

    ``source``: the pose source (default: the one the parameters name, i.e. the FLM). ``initial_pose`` (3,): start
    tracking there at the first message instead of localizing globally. ``baseline``: a
    :class:`flm_core.estimation.baselines.Baseline` factory ``f(site, mounts) -> Baseline`` (e.g. AMCL) driven on
    the same measurements instead of the pipeline; it starts from ``initial_pose``."""
    from tqdm import tqdm  # noqa: PLC0415

    reader = open_bag(bag)
    binfo = info(reader, bag)
    problems: list[str] = []
    stream_of = {p[f'sensors.{s}.topic']: s for s in ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')
                 if p[f'sensors.{s}.enabled']}
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
    if source is None and baseline is None:
        source = load_pose_source(p, _Logger())
    pipe = make_pipeline(p, site, source)
    base_impl = None
    rig = RigBuilder(lambda a, b: tree.lookup(a, b, 0.0), p['base_frame'], p['sensors.uwb.tag_frame'])
    period = 1.0 / float(p['update_rate'])
    topics = {t: (_msgtype(stream_of[t]),) for t in present}
    topics.update({'/tf': TF_TYPES, '/tf_static': TF_TYPES})
    if gt_topic in binfo.topics:
        topics[gt_topic] = GT_TYPES
    est_rows: list[tuple[float, np.ndarray, np.ndarray]] = []
    gt_rows: list[tuple[float, np.ndarray, None]] = []
    seen = {t: 0 for t in present}                     # messages per sensor topic
    malformed: dict[str, list] = {}                    # topic -> [count, first error]
    latencies: list[float] = []
    next_step: float | None = None
    camera_info = None
    t0 = time.perf_counter()
    bar = tqdm(total=binfo.count, unit='msg', desc='flm-eval', disable=not progress, mininterval=1.0)
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
                m = convert(stream, msg)
            except (ValueError, TypeError, OverflowError, AttributeError) as e:
                # AttributeError: a bag whose definition of the type lacks fields of the standard one
                pipe.front.reject(stream, 'malformed')
                malformed.setdefault(topic, [0, f'{type(e).__name__}: {e}'])[0] += 1
                continue
            if next_step is None:
                next_step = t_recv + period
                if initial_pose is not None and baseline is None:
                    pipe.set_initial_pose(initial_pose, np.diag([0.1 ** 2, 0.1 ** 2, 0.05 ** 2]), float(m.stamp))
            v = pipe.offer(stream, m, t_recv)
            if baseline is not None and v in (Verdict.ACCEPTED, Verdict.RESET):
                if base_impl is None:
                    mounts = rig.rig(frames_in({stream: [(m.stamp, m)]})).mounts
                    base_impl = baseline(site, mounts)
                    base_impl.reset(float(m.stamp), initial_pose, np.diag([0.1 ** 2, 0.1 ** 2, 0.05 ** 2]))
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
    if gt_topic is not None and gt_topic in binfo.topics:
        _note_empty_gt(gt_topic, gt_rows, problems)
    if gt_tf is not None:
        gt_rows = _gt_from_tree(tree, gt_tf, binfo.start, binfo.end, problems)
    elif gt_spec.startswith('tum:'):
        gt_rows = _gt_from_tum(gt_spec[4:], problems)
    return Replay(est=_trajectory(est_rows), gt=_trajectory(gt_rows), latencies=latencies, problems=problems,
                  events=[f'{t - binfo.start:.2f} s: {w}' for t, w in pipe.events], duration=binfo.end - binfo.start,
                  wall=wall, counts={'rejections': {f'{s}.{r}': c for (s, r), c in pipe.front.rejections.items()},
                                     'filter': pipe.filter.counts})


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
    """Start the real graph and play the bag to it over DDS; record the node's pose output."""
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
        while play.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        stop_processes([graph], grace=20.0)
        node.destroy_node()
        rclpy.try_shutdown()
    wall = time.perf_counter() - t0
    gt = replay_ground_truth(bag, p, gt_spec)
    return Replay(est=_trajectory(rows), gt=gt.gt, problems=gt.problems, duration=gt.duration, wall=wall)


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
    return Replay(est=_trajectory([]), gt=_trajectory(rows), problems=problems, duration=binfo.end - binfo.start)


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
                   help='sensor topic, e.g. scan=/front/scan (streams: scan points depth uwb imu odom)')
    p.add_argument('--disable', default='', help='comma-separated streams to ignore, e.g. scan,points')
    p.add_argument('--compare', default='', help='comma-separated baselines to run on the same bag (offline mode; '
                                                 'they start from the true initial pose): icp, icp2d, icp3d, '
                                                 'uwb-ekf, amcl-lf (Nav2 AMCL, likelihood field), amcl-beam '
                                                 '(Nav2 AMCL beam model: GPL amcl bindings, bench/), amcl (both)')
    p.add_argument('--fail-above', type=float, default=None, metavar='METRES',
                   help='exit with status 3 if the APE RMSE exceeds this')
    p.add_argument('--threshold', type=float, default=1.0, help='failure threshold in metres (default 1.0)')
    p.add_argument('--no-progress', action='store_true')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    out = ns.out or ns.bag.with_name(ns.bag.name + '_eval')
    site_path = ns.site or (ns.bag if ns.bag.is_dir() else ns.bag.parent).parent / 'site.yaml'
    if not site_path.is_file():
        site_path = (ns.bag if ns.bag.is_dir() else ns.bag.parent) / 'site.yaml'
    try:
        site = load_site(site_path)
    except SiteError as e:
        print(f'flm-eval: error: site: {e} (give one with --site)', file=sys.stderr)
        return EXIT_INPUT
    p = P.from_yaml(str(ns.params_file), 'flm_localizer', TABLE)
    if ns.model:
        p['model_path'] = ns.model
    for spec in ns.topic:
        stream, _, topic = spec.partition('=')
        if f'sensors.{stream}.topic' not in p or not topic:
            print(f'flm-eval: error: --topic {spec!r}: expected STREAM=TOPIC with STREAM one of scan points depth '
                  'uwb imu odom', file=sys.stderr)
            return EXIT_ARGS
        p[f'sensors.{stream}.topic'] = topic
    for stream in filter(None, ns.disable.split(',')):
        p[f'sensors.{stream}.enabled'] = False
    source = None
    if ns.mode == 'offline':
        try:
            source = load_pose_source(p, _Logger())
        except (ValueError, OSError, RuntimeError, ImportError) as e:  # ModelFileError is a ValueError
            print(f'flm-eval: error: model: {e} (give one with --model)', file=sys.stderr)
            return EXIT_INPUT
    try:
        if ns.mode == 'offline':
            rep = replay_offline(ns.bag, site, p, ns.gt, progress=not ns.no_progress, source=source)
        else:
            rep = replay_live(ns.bag, site_path, ns.params_file, p, ns.gt, ns.rate)
    except BagError as e:
        print(f'flm-eval: error: {e}', file=sys.stderr)
        return EXIT_INPUT
    compared: list[tuple[str, Replay]] = []
    kinds = [x for k in ns.compare.split(',') if k for x in (('amcl-lf', 'amcl-beam') if k == 'amcl' else (k,))]
    if kinds and ns.mode == 'offline' and len(rep.gt):
        gt0 = rep.gt.poses[0]
        for kind in kinds:
            try:
                compared.append((kind, replay_offline(ns.bag, site, p, ns.gt, progress=not ns.no_progress,
                                                      initial_pose=gt0, **_baseline(kind))))
            except (ValueError, ImportError, BagError) as e:
                rep.problems.append(f'--compare {kind}: {e}')
    elif kinds:
        rep.problems.append('--compare needs the offline mode and ground truth (the baselines start from the true '
                            'initial pose)')
    evals: list[Evaluation] = []
    header = {'bag': str(ns.bag), 'site': str(site_path), 'mode': ns.mode, 'ground_truth': ns.gt,
              'duration_s': rep.duration, 'wall_s': rep.wall,
              'realtime_factor': rep.duration / rep.wall if rep.wall > 0 else float('nan')}
    if len(rep.gt):
        lat = np.array(rep.latencies) * 1e3
        extra = {'events': rep.events, 'counts': rep.counts,
                 'model_latency_ms': {'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99))}
                 if len(lat) else {}}
        evals.append(evaluate('flm', rep.est, rep.gt, threshold=ns.threshold, duration=rep.duration, extra=extra))
        for kind, r in compared:
            lat_k = np.array(r.latencies) * 1e3
            evals.append(evaluate(kind, r.est, rep.gt, threshold=ns.threshold, duration=r.duration, extra={
                'events': r.events, 'update_latency_ms': {'p50': float(np.percentile(lat_k, 50)),
                                                          'p99': float(np.percentile(lat_k, 99))} if len(lat_k) else {},
                'initialised_from_ground_truth': True}))
    report = write_report(out, evals, rep.gt, site, header, rep.problems) if evals else None
    if not evals:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'metrics.json').write_text(json.dumps({**header, 'partial': True, 'problems': rep.problems}, indent=2))
    for prob in rep.problems:
        print(f'flm-eval: warning: {prob}', file=sys.stderr)
    if evals:
        print(metrics_table(evals))
        print(f'\nreport: {report}  (replay {header["realtime_factor"]:.1f}x real time)')
    if not evals or rep.problems:
        return EXIT_PARTIAL
    if ns.fail_above is not None and not evals[0].metrics['ape_m']['rmse'] <= ns.fail_above:  # NaN fails too
        print(f'flm-eval: APE RMSE {evals[0].metrics["ape_m"]["rmse"]:.3f} m exceeds --fail-above {ns.fail_above}',
              file=sys.stderr)
        return EXIT_THRESHOLD
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
