"""The fault matrix (issue 8) on the real node process over DDS, and hostile input for flm-eval.

One node process serves the whole timeline (the cases are independent and each leaves the node tracking):
``bench/faults.py --no-soak`` (bench/faultlab) generates a scenario, starts ``flm_localizer`` (use_sim_time),
deletes its model file after configure, plays the scenario with every case's faults with its own /clock (3x real
time, storms at real time; on a machine where other processes keep the cores busy, the whole clock slows in
proportion: ``bench.faultlab.matrix.clock_scale``), records /amcl_pose, map->odom, /diagnostics and the node's
RSS, then drives the lifecycle and judges each case (bench/faultlab/judge.py, ``analyze``). The matrix runs once per module (it takes
minutes); each case is its own test, which asserts that case's checks and names each failed check with what was
measured, so that one fault is one failing case. If the run produced no report, test_matrix_ran fails and the cases
are skipped; if the node process died, test_fault_case[run] fails and the cases it did not live to see are skipped.

The model: the shipped checkpoint (flm_core/checkpoints/flm_v1.pt) when it exists, else a freshly initialised
network (conftest ``random_model``). Checks marked ``needs_trained`` (pose error against ground truth, the node
noticing a kidnap and relocalizing by itself, relocalizing after a bag loop, no pose jump after an odometry or
all-sensor gap) only run with the shipped model; without it, recovery after a kidnap and a bag loop is checked
through the operator's /initialpose.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ros_support import ROOT, python_proc, stop_proc

if str(ROOT) not in sys.path:   # bench/faultlab is test and benchmark tooling, imported from the repository root
    sys.path.insert(0, str(ROOT))

from bench.faultlab.cases import default_cases  # noqa: E402
from bench.faultlab.inject import large_data_profile, node_env  # noqa: E402
from flm_core.model.inference import DEFAULT_MODEL  # noqa: E402

TRAINED = DEFAULT_MODEL.is_file()
FAULTS = ROOT / 'bench' / 'faults.py'

#: what each case must at least have checked (substrings of the check descriptions), so that a judging bug cannot
#: silently pass a case
REQUIRED = {
    'hostile': ['scan_nan', 'scan_empty', 'cloud_nan', 'cloud_empty', 'uwb_nan', 'uwb_negative', 'uwb_unknown_anchor',
                'imu_zero_quaternion', 'imu_nan:', 'imu_nan_covariance', 'odom_nan_covariance', 'odom_wrong_frame',
                'odom_zero_quaternion', 'scan_duplicate', 'odom_duplicate', 'scan_too_late', 'imu_far_future',
                'odom_backwards', 'no pose jump'],
    'drop': ['stale', 'good estimate within 1 s'],
    'storm': ['reached the node', 'keeps up', 'no pose jump'],
    'big_cloud': ['decimated', 'bounded'],
    'big_image': ['too_large', 'bounded'],
    'initialpose_bad': ['refused and counted', 'does not move'],
    'kidnap': ['within 1 s'] if not TRAINED else ['relocalizes on its own', 'not confidently wrong'],
    'loop': ['time jumped back', 'TF does not go back', 'good estimate'],
    'lifecycle': ['configure is refused', 'stays up', 'configure and activate succeed', 'logged with the reason'],
    'run': ['stayed up', 'TF map->odom stamps strictly increase', 'strictly increase (within a timeline)', 'finite',
            'clean shutdown', 'no Python traceback', 'unbounded memory'],
}
REQUIRED_BY_NAME = {
    'drop_exteroceptive': ['covariance grows while blind', 'poses keep coming'],
    'drop_all': ['no pose is published without data', 'std grows while blind', 'getting old', 're-sent'],
}
CASES = ['run'] + [c.name for c in default_cases()] + ['model_unavailable']
JUDGED_UNTIL = 2.0   # s of play after a case's end up to which its effects are judged (diagnostics, pose jumps)
LOOKBACK = 30.0      # s before a case's start from which a failure message lists the node's localization events
MATRIX_TIMEOUT_S = 540.0


@pytest.fixture(scope='module')
def matrix(tmp_path_factory, random_model) -> dict[str, Any]:
    """Runs the whole matrix once: {'report': the faults.json report (None when there is none), 'problem': why
    not}. It does not fail by itself: test_matrix_ran does, once, and the cases are skipped."""
    out = tmp_path_factory.mktemp('faults')
    model = DEFAULT_MODEL if TRAINED else random_model
    # in a process group of its own (python_proc) with the node it starts: stopped as a whole, also on a timeout
    p = python_proc([str(FAULTS), '--no-soak', '--out', str(out), '--model', str(model),
                     '--trained', 'yes' if TRAINED else 'no'])
    try:
        p.wait(timeout=MATRIX_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {'report': None, 'problem': f'the fault run took more than {MATRIX_TIMEOUT_S:.0f} s:\n'
                                           f'{stop_proc(p)[-3000:]}'}
    output = stop_proc(p)   # (it has ended: what it left running in its group is stopped)
    path = out / 'faults.json'
    if not path.is_file():
        return {'report': None, 'problem': f'the fault run produced no report (exit {p.returncode}):\n'
                                           f'{output[-6000:]}'}
    report = json.loads(path.read_text())
    report['_stdout'] = output
    return {'report': report, 'problem': None}


def _report(matrix: dict[str, Any]) -> dict[str, Any]:
    if matrix['report'] is None:
        pytest.skip('the fault matrix did not run (test_matrix_ran says why)')
    return matrix['report']


def test_matrix_ran(matrix):
    assert matrix['problem'] is None, matrix['problem']


@pytest.mark.parametrize('name', CASES)
def test_fault_case(matrix, name):
    report = _report(matrix)
    assert name in report['cases'], f'{name} was not judged (cases: {sorted(report["cases"])})'
    c = report['cases'][name]
    gone = report['meta']['node_gone_at_play']
    if name != 'run' and gone is not None and gone <= c['t1'] + JUDGED_UNTIL:
        pytest.skip(f'the node process was gone at play {gone:.1f} s, before {name} ended '
                    f'({c["t1"]:.1f} s): test_fault_case[run] reports it')
    whats = ' | '.join(k['what'] for k in c['checks'])
    for needed in REQUIRED['run' if name == 'run' else c['kind']] + REQUIRED_BY_NAME.get(name, []):
        assert needed in whats, f'{name}: no check about {needed!r} (checks: {whats})'
    failed = [f"{k['what']}: {k['detail'] or '(no figure)'}" for k in c['checks'] if not k['ok']]
    assert not failed, f'{name} ({c["what"]}), {len(failed)} of {len(c["checks"])} checks failed:\n  ' + \
        '\n  '.join(failed) + f'\n\n{_events_around(report, c)}\n\n{report["table"]}'


def _events_around(report: dict[str, Any], c: dict[str, Any]) -> str:
    """The node's localization events from LOOKBACK s before the case to the end of its window: whether it was
    still tracking when the case began (a loss after an earlier case shows here)."""
    lo, hi = c['t0'] - LOOKBACK, c['t1'] + JUDGED_UNTIL
    near = [f'{t:.2f} {what}' for t, what in report['events'] if lo <= t <= hi]
    return (f'localization events stamped {lo:.0f}-{hi:.0f} s (the case: {c["t0"]:.0f}-{c["t1"]:.0f} s of play): '
            + ('; '.join(near[-12:]) or 'none'))


def test_report_figures(matrix):
    """The headline figures and the printed report (each case's checks, rejections and recovery included, are
    asserted by test_fault_case alone): every case judged once, a plausible peak RSS."""
    report = _report(matrix)
    f = report['figures']
    assert sorted(report['cases']) == sorted(CASES) and f['cases'] == len(CASES) - 1, sorted(report['cases'])
    assert 200 < f['peak_rss_mb'] < 3000, f'peak RSS {f["peak_rss_mb"]:.0f} MB'
    assert 'cases run' in report['_stdout'] and 'messages rejected by reason' in report['_stdout'], report['_stdout']


def test_short_soak_stays_bounded(random_model):
    """Four simulated minutes of the soak (bench/faults.py runs an hour): laps with dropouts through the pipeline;
    buffers, the filter's event log and the event list stay bounded, the pipeline ends tracking."""
    code = ('import json, sys; from bench.faultlab.soak import soak; '
            f'r = soak(hours=4 / 60, model={str(random_model)!r}, lap=60.0, sample_every=20.0, dropout_prob=1.0); '
            'r.pop("samples"); print(json.dumps(r))')
    p = subprocess.run([sys.executable, '-c', code], cwd=str(ROOT), capture_output=True, text=True, timeout=300,
                       env=node_env())
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r['laps'] == 4 and r['messages_dropped'] > 0
    assert abs(r['steps'] - 10 * 240) <= 20                       # 10 Hz of sim time
    # besides the filter's process switches (to odometry during an IMU dropout and back: at most 2 per lap)
    switches = sum('-driven from now on' in e for e in r['events'])
    assert switches <= 2 * r['laps'], r['events']
    assert r['max_buffered'] <= 2000 and r['filter_events'] <= 1000 and r['pipeline_events'] - switches <= 8, \
        r['events']
    assert r['state'] == 'tracking'
    assert r['rss_last_mb'] - r['rss_first_mb'] <= 150, r


# ------------------------------------------------------------------------------------------------ flm-eval
@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """A good generated bag (mcap and sqlite3) and damaged copies."""
    import shutil

    from flm_core.datagen.bagwriter import write_bag
    from flm_core.datagen.config import ScenarioConfig
    from flm_core.datagen.scenario import generate_scenario
    root = tmp_path_factory.mktemp('evalbags')
    sc = generate_scenario(ScenarioConfig(duration=4.0), 5)
    good = write_bag(sc, root / 'good', 'mcap')
    sq = write_bag(sc, root / 'good', 'sqlite3')
    out = {'good': good}
    for name in ('truncated', 'corrupt', 'empty'):
        shutil.copytree(root / 'good', root / name)
        f = root / name / 'bag_mcap' / 'bag_mcap.mcap'
        data = bytearray(f.read_bytes())
        if name == 'truncated':
            data = data[:len(data) // 2]
        elif name == 'corrupt':   # garbage over the middle third: the start reads, then a read error
            arr = np.frombuffer(bytes(data), np.uint8).copy()
            idx = np.arange(len(arr) // 3, 2 * len(arr) // 3, 97)
            arr[idx] = np.random.default_rng(1).integers(0, 256, len(idx), dtype=np.uint8)
            data = arr.tobytes()
        else:
            data = bytearray()
        f.write_bytes(bytes(data))
        out[name] = root / name / 'bag_mcap'
    db = root / 'truncated' / 'bag_sqlite3' / 'bag_sqlite3.db3'
    db.write_bytes(db.read_bytes()[:len(db.read_bytes()) // 2])
    out['sqlite_truncated'] = root / 'truncated' / 'bag_sqlite3'
    assert sq.is_dir()
    return out


def _eval(capsys, *args) -> tuple[int, str, str]:
    from flm_ros.evaluate import main
    rc = main([*map(str, args), '--no-progress'])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize('name,rc,message', [
    ('truncated', 1, 'truncated'),
    ('sqlite_truncated', 1, 'truncated or corrupt'),
    ('empty', 1, 'empty'),
])
def test_eval_refuses_unreadable_bags(bags, random_model, tmp_path, capsys, name, rc, message):
    code, out, err = _eval(capsys, bags[name], '--model', random_model, '--out', tmp_path / 'out')
    assert code == rc, err
    assert 'flm-eval: error:' in err and message in err and 'Traceback' not in err, err


def test_eval_corrupt_bag_gives_partial_results_marked_partial(bags, random_model, tmp_path, capsys):
    code, out, err = _eval(capsys, bags['corrupt'], '--model', random_model, '--out', tmp_path / 'out')
    assert code == 4, err                                     # partial results
    assert 'bag read error' in err and 'partial' in err, err
    metrics = json.loads((tmp_path / 'out' / 'metrics.json').read_text())
    assert metrics.get('partial') is True or any('bag read error' in p for p in metrics.get('problems', [])), metrics


def test_eval_malformed_site(bags, random_model, tmp_path, capsys):
    site = tmp_path / 'site.yaml'
    site.write_text('name: x\nanchors: [{id: 1, position: [1, 2]}\nmap: [unclosed\n')
    code, _, err = _eval(capsys, bags['good'], '--model', random_model, '--site', site, '--out', tmp_path / 'o1')
    assert code == 1 and 'flm-eval: error: site:' in err, err
    site.write_text('name: x\nanchors:\n  - {id: "00", position: [1.0, 2.0]}\n')   # a 2D anchor position
    code, _, err = _eval(capsys, bags['good'], '--model', random_model, '--site', site, '--out', tmp_path / 'o2')
    assert code == 1 and 'flm-eval: error: site:' in err and 'position' in err, err


@pytest.mark.parametrize('content,message', [
    (b'\x80\x04K\x01.', 'pickle'),
    (bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)), 'not a zip archive'),
])
def test_eval_refuses_a_model_that_is_not_a_model(bags, tmp_path, capsys, content, message):
    model = tmp_path / 'model.pt'
    model.write_bytes(content)
    code, _, err = _eval(capsys, bags['good'], '--model', model, '--out', tmp_path / 'out')
    assert code == 1, err
    assert 'flm-eval: error: model:' in err and message in err and 'Traceback' not in err, err


def test_eval_good_bag_still_works(bags, random_model, tmp_path, capsys, network_params):
    code, out, err = _eval(capsys, bags['good'], '--model', random_model, '--out', tmp_path / 'out', '--params-file',
                           network_params)
    assert code == 0, err
    assert (tmp_path / 'out' / 'metrics.json').is_file()


def test_cli_help():
    p = subprocess.run([sys.executable, str(FAULTS), '--help'], cwd=str(ROOT), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and '--rate' in p.stdout and '--cases' in p.stdout and '--no-soak' in p.stdout, p.stderr
    assert Path(large_data_profile()).is_file()
