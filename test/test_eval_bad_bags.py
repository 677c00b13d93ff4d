"""flm-eval on bags that are readable but not what it expects: each gives a message naming the problem, a non-zero
exit status and no traceback; missing sensors and foreign topics it does not read are normal input.

Covered (test_faults.py covers unreadable bags, a malformed site file and a bad model file):

- missing topics: none of the sensor topics in the bag (only ground truth, or the sensors under other names) is an
  error (exit 1) that lists what the bag has, and the ``--topic`` it suggests works; some sensors absent, or recorded
  without messages, is fine (exit 0); sensor topics recorded without a single message are not a success;
- no ground truth: ``--gt`` naming a topic, a TF frame or a TUM file that is not there, a bag without its ground-truth
  topic and one whose ground-truth topic has no messages: a 'no ground truth' warning, exit 4 (partial) and a
  metrics.json marked partial; a ground-truth topic of another message type is named and skipped;
- unknown or wrong message types: a sensor topic carrying another standard type, a custom (non-ROS) type or a type
  the bag has no definition of: the topic and the type are named, the topic is skipped, exit 4 and metrics.json lists
  the problem; a standard type name with another definition in the bag: the topic and the type are named, no crash;
  a custom type on a topic flm-eval does not read is ignored;
- ground truth that starts after the sensor data: the baselines (and the FLM with ``--initial-pose gt``) skip the data
  before it with a warning naming the gap and start from the ground truth interpolated at their first accepted
  stamp; ground truth too sparse for ``--gt-max-gap`` or on another clock: a named problem and exit 4;
- what metrics.json records: how each method started, wall time and real-time factor, consistency figures, the
  model's sha256, params.yaml beside it; the progress bar ends at its total on a bag with topics it does not read.

The bags are variants of one generated scenario (as in test_faults.py), made by copying its raw messages with
rosbags' rosbag2 Reader/Writer, each in its own folder with a copy of the site files next to it (so flm-eval finds
site.yaml by default). The model is conftest's ``random_model``: the weights do not matter here.
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flm_ros.evaluate import EXIT_ARGS, EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, main

SENSOR_TOPICS = ('/scan', '/uwb/ranges', '/imu/data', '/odom')        # the ones the generated scenario has
GT_TOPIC = '/ground_truth/pose'
LATE_GT = 1.5                                                         # s, the 'late_gt' bag's ground truth starts
BLOB_MSG = 'uint8[] payload\nstring note\n'                            # my_msgs/msg/Blob: not a ROS type
OTHER_LASERSCAN_MSG = 'float32[] ranges\nstring note\n'                # a LaserScan that is not sensor_msgs' one


def _typestores() -> tuple[Any, Any]:
    """The Jazzy typestore with my_msgs/msg/Blob added, and a store whose sensor_msgs/msg/LaserScan has another
    definition (a forked message package)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    ts.register(get_types_from_msg(BLOB_MSG, 'my_msgs/msg/Blob'))
    other = get_typestore(Stores.EMPTY)
    other.register(get_types_from_msg(OTHER_LASERSCAN_MSG, 'sensor_msgs/msg/LaserScan'))
    return ts, other


def _variant(good: Path, root: Path, name: str, *, drop: tuple[str, ...] = (), silent: tuple[str, ...] = (),
             rename: dict[str, str] | None = None, retype: dict[str, tuple[str, Any, Any]] | None = None,
             extra: dict[str, tuple[str, Any, Any]] | None = None, storage: str = 'mcap',
             undefined: tuple[str, ...] = (), cut: dict[str, float] | None = None,
             every: dict[str, int] | None = None) -> Path:
    """A copy of bag ``good`` as ``root/name/bag_<storage>`` with the site files of ``good.parent`` next to it.

    ``drop``: topics left out; ``silent``: topics kept as connections without messages; ``rename``: old -> new topic
    name; ``retype``: topic -> (message type, typestore, message): the topic carries that message instead, at the
    original receive times; ``extra``: topic -> (message type, typestore, message): a new topic, 10 messages spread
    over the bag; ``undefined``: message types whose definition is deleted from the (sqlite3) bag afterwards;
    ``cut``: topic -> s after the bag's start before which its messages are left out; ``every``: topic -> n: only
    every n-th message of it is kept."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    rename = rename or {}
    retype = retype or {}
    folder = root / name
    folder.mkdir(parents=True)
    for f in good.parent.iterdir():                   # site.yaml, site_map.yaml, site_map.pgm
        if f.is_file():
            shutil.copy(f, folder / f.name)
    bag = folder / f'bag_{storage}'
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Reader(good) as reader, Writer(bag, version=9, storage_plugin=plugin) as writer:
        conns: dict[int, tuple[Any, bytes | None]] = {}
        for c in reader.connections:
            if c.topic in drop:
                continue
            topic = rename.get(c.topic, c.topic)
            if c.topic in retype:
                msgtype, ts, msg = retype[c.topic]
                data = bytes(ts.serialize_cdr(msg, msgtype))
                conns[c.id] = (writer.add_connection(topic, msgtype, typestore=ts), data)
            else:
                conns[c.id] = (writer.add_connection(topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest,
                                                     offered_qos_profiles=c.ext.offered_qos_profiles), None)
        cut, every = cut or {}, every or {}
        seen: dict[str, int] = {}
        rows = []
        for c, t, raw in reader.messages():
            if c.id not in conns or c.topic in silent or t < reader.start_time + cut.get(c.topic, 0.0) * 1e9:
                continue
            seen[c.topic] = seen.get(c.topic, -1) + 1
            if seen[c.topic] % every.get(c.topic, 1) == 0:
                rows.append((t, conns[c.id], raw))
        for topic, (msgtype, ts, msg) in (extra or {}).items():
            conn, data = writer.add_connection(topic, msgtype, typestore=ts), bytes(ts.serialize_cdr(msg, msgtype))
            rows += [(int(t), (conn, data), b'') for t in np.linspace(reader.start_time, reader.end_time, 10)]
        rows.sort(key=lambda r: r[0])
        for t, (conn, data), raw in rows:
            writer.write(conn, t, raw if data is None else data)
    if undefined:
        db = sqlite3.connect(bag / f'{bag.name}.db3')
        db.executemany('DELETE FROM message_definitions WHERE topic_type = ?', [(u,) for u in undefined])
        db.commit()
        db.close()
    return bag


@pytest.fixture(scope='module')
def bags(tmp_path_factory) -> dict[str, Path]:
    """A good generated bag and its variants, by name."""
    from rosbags.rosbag2 import Reader

    from flm_core.datagen.bagwriter import write_bag
    from flm_core.datagen.config import ScenarioConfig
    from flm_core.datagen.scenario import generate_scenario
    root = tmp_path_factory.mktemp('badbags')
    good = write_bag(generate_scenario(ScenarioConfig(duration=4.0), 5), root / 'good', 'mcap')
    ts, other = _typestores()
    string = ('std_msgs/msg/String', ts, ts.types['std_msgs/msg/String'](data='not a scan'))
    blob = ('my_msgs/msg/Blob', ts, ts.types['my_msgs/msg/Blob'](payload=np.arange(16, dtype=np.uint8), note='x'))
    other_scan = ('sensor_msgs/msg/LaserScan', other, other.types['sensor_msgs/msg/LaserScan'](
        ranges=np.full(360, 2.0, dtype=np.float32), note='forked definition'))
    with Reader(good) as r:
        topics = {c.topic for c in r.connections}
    assert set(SENSOR_TOPICS) | {GT_TOPIC} <= topics, f'the generated bag changed: {sorted(topics)}'
    v = {
        'only_gt': dict(drop=tuple(topics - {GT_TOPIC})),
        'renamed': dict(rename={t: '/robot1' + t for t in SENSOR_TOPICS}),
        'no_uwb': dict(drop=('/uwb/ranges',)),
        'silent_uwb': dict(silent=('/uwb/ranges',)),
        'silent_sensors': dict(silent=SENSOR_TOPICS),
        'no_gt': dict(drop=(GT_TOPIC,)),
        'silent_gt': dict(silent=(GT_TOPIC,)),
        'scan_string': dict(retype={'/scan': string}),
        'scan_blob': dict(retype={'/scan': blob}),
        'uwb_blob': dict(retype={'/uwb/ranges': blob}),
        'scan_undefined': dict(storage='sqlite3', undefined=('sensor_msgs/msg/LaserScan',)),
        'scan_other_definition': dict(retype={'/scan': other_scan}),
        'foreign_topics': dict(extra={'/my/blob': blob, '/chatter': string}),
        'late_gt': dict(cut={GT_TOPIC: LATE_GT}),                # the ground truth starts 1.5 s after the sensors
        'sparse_gt': dict(every={GT_TOPIC: 50}),                 # 50 Hz -> 1 Hz
    }
    return {'good': good, **{name: _variant(good, root, name, **kw) for name, kw in v.items()}}


def _eval(capsys, bag: Path, model: Path, out: Path, *args) -> tuple[int, str, str]:
    """Run flm-eval in this process: (exit status, stdout, stderr). An exception escaping ``main`` is reported as
    the command line would show it: a traceback on stderr and exit status 1."""
    try:
        rc = main([str(bag), '--model', str(model), '--out', str(out), '--no-progress', *map(str, args)])
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        rc = 1
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _said(err: str, *words: str, kind: str = 'warning') -> bool:
    """Whether one ``flm-eval: <kind>:`` line on stderr contains all ``words``."""
    return any(line.startswith(f'flm-eval: {kind}:') and all(w in line for w in words) for line in err.splitlines())


def _metrics(out: Path) -> dict[str, Any]:
    path = out / 'metrics.json'
    assert path.is_file(), f'no metrics.json in {out}'
    return json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ missing topics
def test_eval_refuses_a_bag_with_ground_truth_only(bags, random_model, tmp_path, capsys):
    code, _, err = _eval(capsys, bags['only_gt'], random_model, tmp_path / 'out')
    assert code == EXIT_INPUT, err
    assert _said(err, 'none of the sensor topics', '/scan', '/uwb/ranges', 'it has', GT_TOPIC, '--topic',
                 kind='error'), err
    assert 'Traceback' not in err, err
    assert not (tmp_path / 'out' / 'metrics.json').exists()


def test_eval_refuses_sensors_under_other_names_and_the_suggested_topic_option_works(bags, random_model, tmp_path,
                                                                                      capsys, network_params):
    code, _, err = _eval(capsys, bags['renamed'], random_model, tmp_path / 'o1')
    assert code == EXIT_INPUT, err
    assert _said(err, 'none of the sensor topics', "'/scan'", '/robot1/scan', '/robot1/uwb/ranges', '--topic',
                 kind='error'), err
    assert 'Traceback' not in err, err
    assert not (tmp_path / 'o1' / 'metrics.json').exists()
    topics = [f'--topic={s}=/robot1{t}' for s, t in zip(('scan', 'uwb', 'imu', 'odom'), SENSOR_TOPICS)]
    code, _, err = _eval(capsys, bags['renamed'], random_model, tmp_path / 'o2', '--params-file', network_params,
                         *topics)
    assert code == EXIT_OK, err
    assert 'flm-eval: warning' not in err and 'Traceback' not in err, err
    assert _metrics(tmp_path / 'o2')['methods']['flm']['estimates'] > 0


@pytest.mark.parametrize('name', ['no_uwb', 'silent_uwb'])
def test_eval_some_sensors_missing_is_normal_input(bags, random_model, tmp_path, capsys, name):
    """/uwb/ranges not recorded, or recorded without messages: the other sensors are evaluated as usual."""
    code, out, err = _eval(capsys, bags[name], random_model, tmp_path / 'out')
    assert code == EXIT_OK, err
    assert 'flm-eval: warning' not in err and 'flm-eval: error' not in err and 'Traceback' not in err, err
    assert '| flm |' in out, out
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is False and m['problems'] == [], m
    assert m['methods']['flm']['estimates'] > 0 and np.isfinite(m['methods']['flm']['ape_m']['rmse'])


def test_eval_sensor_topics_without_messages_are_not_a_success(bags, random_model, tmp_path, capsys):
    """Every sensor topic is in the bag's topic list but none has a message (drivers not running while recording):
    there is nothing to localize with, so flm-eval must say so and must not exit 0 with NaN metrics, which would
    also pass a --fail-above gate."""
    code, _, err = _eval(capsys, bags['silent_sensors'], random_model, tmp_path / 'out', '--fail-above', '0.5')
    assert code in (EXIT_INPUT, EXIT_PARTIAL), (code, err)
    lines = [ln for ln in err.splitlines() if ln.startswith(('flm-eval: error:', 'flm-eval: warning:'))]
    assert any('/scan' in ln and ('message' in ln or 'empty' in ln or 'no data' in ln) for ln in lines), err
    assert 'Traceback' not in err, err
    if (tmp_path / 'out' / 'metrics.json').exists():
        assert _metrics(tmp_path / 'out')['partial'] is True


# ------------------------------------------------------------------------------------------------ no ground truth
@pytest.mark.parametrize('gt', ['/no_such_topic', 'tf:map:no_such_frame', 'tum:{tmp}/no_such_file.tum'])
def test_eval_ground_truth_not_there_gives_partial_results(bags, random_model, tmp_path, capsys, gt):
    gt = gt.format(tmp=tmp_path)
    code, _, err = _eval(capsys, bags['good'], random_model, tmp_path / 'out', '--gt', gt)
    assert code == EXIT_PARTIAL, err
    named = gt.split(':')[-1]                         # the topic, the frame or the file
    assert _said(err, 'no ground truth', named), err
    assert 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is True and m['ground_truth'] == gt, m
    assert any('no ground truth' in p and named in p for p in m['problems']), m['problems']


@pytest.mark.parametrize('name', ['no_gt', 'silent_gt'])
def test_eval_bag_without_ground_truth_gives_partial_results(bags, random_model, tmp_path, capsys, name):
    """The ground-truth topic not recorded, or recorded without a single message (the motion capture was not
    running): a warning naming the topic, exit 4, metrics.json marked partial with the problem in it."""
    code, _, err = _eval(capsys, bags[name], random_model, tmp_path / 'out')
    assert code == EXIT_PARTIAL, err
    assert _said(err, 'no ground truth', GT_TOPIC), err
    assert 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is True, m
    assert any('no ground truth' in p and GT_TOPIC in p for p in m['problems']), m['problems']


def test_eval_ground_truth_topic_of_another_type_is_named(bags, random_model, tmp_path, capsys):
    code, _, err = _eval(capsys, bags['good'], random_model, tmp_path / 'out', '--gt', '/map')
    assert code == EXIT_PARTIAL, err
    assert _said(err, '/map', 'nav_msgs/msg/OccupancyGrid', 'geometry_msgs/msg/PoseStamped', 'topic skipped'), err
    assert 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is True and any('/map' in p and 'OccupancyGrid' in p for p in m['problems']), m


# ------------------------------------------------------------------------------------------------ message types
@pytest.mark.parametrize('name,topic,msgtype,words', [
    ('scan_string', '/scan', 'std_msgs/msg/String', ('is not one flm-eval reads there', 'sensor_msgs/msg/LaserScan')),
    ('scan_blob', '/scan', 'my_msgs/msg/Blob', ('is not one flm-eval reads there', 'sensor_msgs/msg/LaserScan')),
    ('uwb_blob', '/uwb/ranges', 'my_msgs/msg/Blob', ('is not one flm-eval reads there', 'sensor_msgs/msg/Range')),
    ('scan_undefined', '/scan', 'sensor_msgs/msg/LaserScan', ('is unknown', 'no definition')),
])
def test_eval_names_a_sensor_topic_of_the_wrong_or_an_unknown_type(bags, random_model, tmp_path, capsys, name, topic,
                                                                   msgtype, words):
    """The topic is skipped with a warning naming it, its type and what was expected; the other sensors still run,
    so metrics are computed but marked partial."""
    code, out, err = _eval(capsys, bags[name], random_model, tmp_path / 'out')
    assert code == EXIT_PARTIAL, err
    assert _said(err, f'{topic}: message type {msgtype} ', 'topic skipped', *words), err
    assert 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is True and any(topic in p and msgtype in p for p in m['problems']), m
    assert 'flm' in m['methods'] and '| flm |' in out, out


def test_eval_standard_type_name_with_another_definition(bags, random_model, tmp_path, capsys):
    """/scan is declared as sensor_msgs/msg/LaserScan but the bag defines that type differently (a forked message
    package): the messages decode into something that is not a LaserScan. flm-eval must name the topic and the type
    and not crash."""
    code, _, err = _eval(capsys, bags['scan_other_definition'], random_model, tmp_path / 'out')
    assert 'Traceback' not in err, err
    assert code in (EXIT_INPUT, EXIT_PARTIAL), (code, err)
    assert _said(err, '/scan', 'sensor_msgs/msg/LaserScan') or _said(err, '/scan', 'sensor_msgs/msg/LaserScan',
                                                                     kind='error'), err
    if code == EXIT_PARTIAL:
        assert _metrics(tmp_path / 'out')['partial'] is True


def test_eval_ignores_custom_types_on_topics_it_does_not_read(bags, random_model, tmp_path, capsys, network_params):
    code, out, err = _eval(capsys, bags['foreign_topics'], random_model, tmp_path / 'out', '--params-file',
                           network_params)
    assert code == EXIT_OK, err
    assert 'flm-eval: warning' not in err and 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is False and m['methods']['flm']['estimates'] > 0, m


# ------------------------------------------------------------------------------------------------ how methods start
def _bag_ground_truth(bag: Path) -> tuple[np.ndarray, np.ndarray]:
    """(t (N,), poses (N, 3)) of the bag's ground-truth topic, read with rosbags (not with flm-eval's reader)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from flm_core.geometry import quat_to_yaw
    rows = []
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as r:
        for c, _, raw in r.messages([c for c in r.connections if c.topic == GT_TOPIC]):
            m = r.deserialize(raw, c.msgtype)
            q = m.pose.orientation
            rows.append((m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec, m.pose.position.x, m.pose.position.y,
                         float(quat_to_yaw(np.array([q.x, q.y, q.z, q.w])))))
    a = np.array(sorted(rows))
    return a[:, 0], a[:, 1:]


def _gt_at(bag: Path, stamp: float) -> np.ndarray:
    t, p = _bag_ground_truth(bag)
    yaw = np.unwrap(p[:, 2])
    return np.array([np.interp(stamp, t, p[:, 0]), np.interp(stamp, t, p[:, 1]), np.interp(stamp, t, yaw)])


def test_eval_methods_start_from_ground_truth_at_their_own_first_stamp(bags, random_model, tmp_path, capsys):
    """The ground truth starts 1.5 s after the sensor data: the baselines (and the FLM with --initial-pose gt) skip
    the sensor data before it, say so, and start from the ground truth interpolated at their first accepted stamp,
    not from the first ground-truth pose applied 1.5 s too early."""
    bag = bags['late_gt']
    code, out, err = _eval(capsys, bag, random_model, tmp_path / 'out', '--compare', 'icp,uwb-ekf',
                           '--initial-pose', 'gt')
    assert code == EXIT_OK, err
    m = _metrics(tmp_path / 'out')
    gt_t, _ = _bag_ground_truth(bag)
    for name in ('flm', 'icp', 'uwb-ekf'):
        init = m['methods'][name]['initialisation']
        assert init['kind'] == 'ground_truth', init
        assert init['stamp'] >= gt_t[0] and init['skipped_messages'] > 0, init
        assert init['skipped_s'] == pytest.approx(LATE_GT, abs=0.1), init
        assert _said(err, f'{name}: the ground truth does not cover the first {init["skipped_s"]:.3f} s'), err
        want = _gt_at(bag, init['stamp'])
        np.testing.assert_allclose(init['pose'][:2], want[:2], atol=1e-6)
        assert abs(np.angle(np.exp(1j * (init['pose'][2] - want[2])))) < 1e-6
    assert m['methods']['icp']['initialised_from_ground_truth'] is True
    # ICP started where the robot is: its first estimate is right to a few cm (ICP on generated data reaches mm;
    # from the first ground-truth pose at the first sensor stamp it would start off by what the robot moved in 1.5 s)
    icp, ref = np.loadtxt(tmp_path / 'out' / 'icp.tum', ndmin=2), np.loadtxt(tmp_path / 'out' / 'groundtruth_icp.tum',
                                                                            ndmin=2)
    assert icp[0, 0] == ref[0, 0] and np.hypot(*(icp[0, 1:3] - ref[0, 1:3])) < 0.05, (icp[0], ref[0])
    # the FLM tracked from there: an initial pose and no global localization before it
    events = m['methods']['flm']['events']
    assert events and events[0].endswith('initial pose') and not any('global localization' in e for e in events)
    # the flag is uwb-ekf, and so is every name in the output
    assert '| uwb-ekf |' in out and 'uwb-eskf' not in out + err + (tmp_path / 'out' / 'report.md').read_text()


def test_eval_initial_pose_given(bags, random_model, tmp_path, capsys):
    bag = bags['good']
    gt_t, gt_p = _bag_ground_truth(bag)
    x, y, yaw = gt_p[0]
    code, _, err = _eval(capsys, bag, random_model, tmp_path / 'out', f'--initial-pose={x},{y},{yaw}')
    assert code == EXIT_OK, err
    m = _metrics(tmp_path / 'out')
    init = m['methods']['flm']['initialisation']
    assert init['kind'] == 'given' and init['pose'] == pytest.approx([x, y, yaw]) and init['skipped_messages'] == 0
    assert init['std'] == pytest.approx([0.5, 0.5, 0.3])           # the parameters' initial_pose.std_xy/std_yaw
    assert m['methods']['flm']['events'][0].endswith('initial pose')
    import yaml
    params = yaml.safe_load((tmp_path / 'out' / 'params.yaml').read_text())['flm_localizer']['ros__parameters']
    assert params['set_initial_pose'] is True and params['initial_pose.x'] == pytest.approx(x)


@pytest.mark.parametrize('args,words', [
    (('--initial-pose', '1,2'), ('--initial-pose', 'X,Y,YAW')),
    (('--initial-pose', 'a,b,c'), ('--initial-pose', 'X,Y,YAW')),
    (('--initial-pose', 'gt', '--mode', 'live'), ('--initial-pose gt', 'offline')),
    (('--gt-max-gap', '0'), ('--gt-max-gap', 'positive')),
])
def test_eval_bad_start_options(bags, random_model, tmp_path, capsys, args, words):
    code, _, err = _eval(capsys, bags['good'], random_model, tmp_path / 'out', *args)
    assert code == EXIT_ARGS, err
    assert _said(err, *words, kind='error') and 'Traceback' not in err, err


def test_eval_initial_pose_gt_without_ground_truth_is_an_error(bags, random_model, tmp_path, capsys):
    code, _, err = _eval(capsys, bags['no_gt'], random_model, tmp_path / 'out', '--initial-pose', 'gt')
    assert code == EXIT_INPUT, err
    assert _said(err, '--initial-pose gt', 'no ground truth', GT_TOPIC, kind='error'), err


# ------------------------------------------------------------------------------------------------ matching
def test_eval_sparse_ground_truth_is_named_and_gt_max_gap_scores_it(bags, random_model, tmp_path, capsys,
                                                                    network_params):
    """Ground truth at 1 Hz: with the default --gt-max-gap 0.5 no estimate can be matched. That is a named problem
    (how many estimates, the ground truth's range and largest gap, the option to use) and exit 4, not a table of
    NaN and exit 0; --gt-max-gap 1.5 scores them."""
    code, out, err = _eval(capsys, bags['sparse_gt'], random_model, tmp_path / 'o1', '--fail-above', '100',
                           '--params-file', network_params)
    assert code == EXIT_PARTIAL, err
    assert _said(err, 'flm: none of the', 'estimates', 'largest gap 1.0', '--gt-max-gap 0.5'), err
    assert '| flm |' not in out and 'nan' not in out, out
    m = _metrics(tmp_path / 'o1')
    assert m['partial'] is True and m['methods']['flm']['matched'] == 0 < m['methods']['flm']['estimates'], m
    assert any('none of the' in p for p in m['problems']), m['problems']
    code, out, err = _eval(capsys, bags['sparse_gt'], random_model, tmp_path / 'o2', '--gt-max-gap', '1.5',
                           '--params-file', network_params)
    assert code == EXIT_OK, err
    m = _metrics(tmp_path / 'o2')
    assert m['gt_max_gap_s'] == 1.5 and m['methods']['flm']['gt_max_gap_s'] == 1.5
    gt_t, _ = _bag_ground_truth(bags['sparse_gt'])
    est_t = np.loadtxt(tmp_path / 'o2' / 'flm.tum', ndmin=2)[:, 0]
    inside = int(np.sum((est_t >= gt_t[0]) & (est_t <= gt_t[-1])))   # every gap is 1.0 s <= 1.5 s
    assert m['methods']['flm']['matched'] == inside > 0, (m['methods']['flm'], gt_t)


def test_eval_ground_truth_on_another_clock_is_named(bags, random_model, tmp_path, capsys, network_params):
    """A TUM ground truth 1000 s off the bag's clock: disjoint time ranges, nothing to match; exit 4 naming both."""
    t, p = _bag_ground_truth(bags['good'])
    from flm_core.evaluation.trajectory import Trajectory, write_tum
    tum = write_tum(tmp_path / 'shifted.tum', Trajectory(t + 1000.0, p))
    code, _, err = _eval(capsys, bags['good'], random_model, tmp_path / 'out', '--gt', f'tum:{tum}', '--params-file',
                         network_params)
    assert code == EXIT_PARTIAL, err
    assert _said(err, 'flm: none of the', f'from {t[0] + 1000:.3f}', 'same clock'), err


# ------------------------------------------------------------------------------------------------ what is recorded
def test_eval_records_timing_consistency_params_model_and_counts_its_progress(bags, random_model, tmp_path, capsys,
                                                                              network_params):
    """Per method: wall time and real-time factor (metrics.json and the table), position NEES, sigma coverage and
    confidently-wrong time; params.yaml that reads back to the parameters used; the model's path and sha256; and
    the progress bar ends at its total although the bag has topics flm-eval does not read."""
    import hashlib

    from flm_ros import params as P
    from flm_ros.evaluate import TABLE
    out = tmp_path / 'out'
    rc = main([str(bags['foreign_topics']), '--model', str(random_model), '--out', str(out),   # with the bar
               '--params-file', str(network_params)])
    cap = capsys.readouterr()
    assert rc == EXIT_OK, cap.err
    done = re.findall(r'flm-eval: +(\d+)%\|[^|]*\| *(\d+)/(\d+) ', cap.err)
    assert done and done[-1][0] == '100' and done[-1][1] == done[-1][2], cap.err[-500:]
    m = _metrics(out)
    f = m['methods']['flm']
    assert f['wall_s'] > 0 and f['realtime_factor'] == pytest.approx(m['duration_s'] / f['wall_s'])
    assert m['realtime_factor'] == pytest.approx(f['realtime_factor']) and 'playback_rate' not in m
    assert '| wall [s] | speed |' in cap.out and f'| {f["wall_s"]:.1f} | {f["realtime_factor"]:.1f}x |' in cap.out
    assert 'offline replay' in cap.out
    assert f['nees_position_dof'] == 2 and f['nees_position_mean'] >= 0
    assert 0 <= f['position_within_1sigma'] <= f['position_within_2sigma'] <= 1
    assert 0 <= f['confidently_wrong_longest_s'] <= f['confidently_wrong_s'] <= m['duration_s'] + 1
    assert f['confidently_wrong_rule'] == {'min_error_m': 0.5, 'n_sigma': 3.0,
                                           'sigma': 'largest position std of the estimate'}
    assert f['initialisation']['kind'] == 'global'
    assert m['model'] == {'path': str(random_model.resolve()),
                          'sha256': hashlib.sha256(random_model.read_bytes()).hexdigest()}
    want = P.from_yaml(str(network_params), 'flm_localizer', TABLE)
    want.update(model_path=str(random_model), site_file=str((bags['foreign_topics'].parent / 'site.yaml').resolve()))
    assert P.from_yaml(str(out / 'params.yaml'), 'flm_localizer', TABLE) == want
