"""flm-gen command line: outputs, manifest, errors naming the parameter, interruption, determinism across workers."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from flm_core.datagen.cli import main

SMALL = ['--duration', '2', '--size', '12:14x10:12', '--no-progress']


def test_cli_shards_bag_preview(tmp_path):
    out = tmp_path / 'o'
    assert main(['--out', str(out), '--count', '2', '--format', 'shards,mcap', '--preview', *SMALL]) == 0
    man = json.loads((out / 'manifest.json').read_text())
    assert man['complete'] is True and man['status'] == 'complete' and man['seeds'] == [0, 1]
    assert man['config']['duration'] == 2.0 and man['config']['sensors']['imu']['rate'] == 200.0
    assert [s['file'] for s in man['shards']] == ['shard-000000.npz', 'shard-000001.npz']
    for s in man['shards']:
        assert (out / s['file']).is_file() and (out / s['site']).is_file() and (out / s['preview']).is_file()
        assert (out / s['bags'][0] / 'metadata.yaml').is_file()
    assert (out / man['shards'][0]['preview']).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_cli_same_seed_same_bytes_any_workers(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    assert main(['--out', str(a), '--count', '2', '--seed', '40', '--workers', '1', *SMALL]) == 0
    assert main(['--out', str(b), '--count', '2', '--seed', '40', '--workers', '2', *SMALL]) == 0
    for f in ('shard-000000.npz', 'shard-000001.npz'):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    ma, mb = json.loads((a / 'manifest.json').read_text()), json.loads((b / 'manifest.json').read_text())
    assert ma == mb


@pytest.mark.parametrize('args,name', [
    (['--rate', 'imu=-5'], 'sensors.imu.rate'),
    (['--anchors', '0'], 'anchors.count'),
    (['--size', '1x1'], 'building.size_x'),
    (['--seed', '999999', '--count', '3'], '--seed'),
    (['--format', 'zip'], '--format'),
    (['--sensors', 'lidar2d,sonar'], '--sensors'),
])
def test_cli_bad_input_names_parameter(tmp_path, capsys, args, name):
    with pytest.raises(SystemExit) as e:
        main(['--out', str(tmp_path / 'x'), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f'error: {name}' in err, err


def test_cli_evaluation_seeds(tmp_path):
    out = tmp_path / 'ev'
    assert main(['--out', str(out), '--evaluation', '--count', '1', *SMALL]) == 0
    man = json.loads((out / 'manifest.json').read_text())
    assert man['evaluation'] is True and man['seeds'] == [1_000_000]


def test_cli_interrupt_leaves_complete_shards_and_manifest(tmp_path):
    out = tmp_path / 'int'
    p = subprocess.Popen([sys.executable, '-m', 'flm_core.datagen.cli', '--out', str(out), '--count', '50',
                          '--duration', '3', '--size', '12:14x10:12', '--no-progress'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         # Ctrl-C as a terminal delivers it: a runner that started this suite in the background
                         # (SIGINT ignored, inherited) would leave Python without its KeyboardInterrupt handler
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob('shard-*.npz'))) < 2:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out_txt = p.communicate(timeout=60)[0]
    assert p.returncode == 130, out_txt
    man = json.loads((out / 'manifest.json').read_text())
    assert man['complete'] is False and man['status'] == 'interrupted'
    files = sorted(f.name for f in out.glob('shard-*.npz'))
    assert files == sorted(s['file'] for s in man['shards']) and len(files) >= 2
    assert not list(out.glob('.*.tmp'))
    import numpy as np

    for f in files:
        with np.load(out / f) as z:
            assert 'gt/pose' in z.files
