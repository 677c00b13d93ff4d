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
  a custom type on a topic flm-eval does not read is ignored.

The bags are variants of one generated scenario (as in test_faults.py), made by copying its raw messages with
rosbags' rosbag2 Reader/Writer, each in its own folder with a copy of the site files next to it (so flm-eval finds
site.yaml by default). The model is conftest's ``random_model``: the weights do not matter here.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flm_ros.evaluate import EXIT_INPUT, EXIT_OK, EXIT_PARTIAL, main

SENSOR_TOPICS = ('/scan', '/uwb/ranges', '/imu/data', '/odom')        # the ones the generated scenario has
GT_TOPIC = '/ground_truth/pose'
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
             undefined: tuple[str, ...] = ()) -> Path:
    """A copy of bag ``good`` as ``root/name/bag_<storage>`` with the site files of ``good.parent`` next to it.

    ``drop``: topics left out; ``silent``: topics kept as connections without messages; ``rename``: old -> new topic
    name; ``retype``: topic -> (message type, typestore, message): the topic carries that message instead, at the
    original receive times; ``extra``: topic -> (message type, typestore, message): a new topic, 10 messages spread
    over the bag; ``undefined``: message types whose definition is deleted from the (sqlite3) bag afterwards."""
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
        rows = [(t, conns[c.id], raw) for c, t, raw in reader.messages() if c.id in conns and c.topic not in silent]
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
                                                                                      capsys):
    code, _, err = _eval(capsys, bags['renamed'], random_model, tmp_path / 'o1')
    assert code == EXIT_INPUT, err
    assert _said(err, 'none of the sensor topics', "'/scan'", '/robot1/scan', '/robot1/uwb/ranges', '--topic',
                 kind='error'), err
    assert 'Traceback' not in err, err
    assert not (tmp_path / 'o1' / 'metrics.json').exists()
    topics = [f'--topic={s}=/robot1{t}' for s, t in zip(('scan', 'uwb', 'imu', 'odom'), SENSOR_TOPICS)]
    code, _, err = _eval(capsys, bags['renamed'], random_model, tmp_path / 'o2', *topics)
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


def test_eval_ignores_custom_types_on_topics_it_does_not_read(bags, random_model, tmp_path, capsys):
    code, out, err = _eval(capsys, bags['foreign_topics'], random_model, tmp_path / 'out')
    assert code == EXIT_OK, err
    assert 'flm-eval: warning' not in err and 'Traceback' not in err, err
    m = _metrics(tmp_path / 'out')
    assert m['partial'] is False and m['methods']['flm']['estimates'] > 0, m
