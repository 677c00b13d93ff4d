"""flm-train: streamed data never uses evaluation seeds or the held-out family, resume continues the step count,
and torchrun runs DistributedDataParallel with 2 gloo processes on CPU (tiny configs)."""
from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flm_core.datagen import EVAL_SEED_MIN
from flm_core.model.checkpoint import load_training_checkpoint
from flm_core.train import Curriculum, ScenarioStream, TrainConfig, train, training_families

ROOT = Path(__file__).resolve().parents[1]
TINY = ['--batch', '4', '--samples-per-scenario', '8', '--shuffle-buffer', '4', '--scenario-duration', '4',
        '--workers', '0', '--threads', '1', '--d-model', '16', '--layers', '1', '--heads', '2', '--log-every', '1',
        '--no-progress']


def tiny_cfg(out: Path, steps: int) -> TrainConfig:
    cfg = TrainConfig(out=str(out), steps=steps, batch=4, samples_per_scenario=8, shuffle_buffer=4,
                      scenario_duration=4.0, workers=0, threads=1, log_every=1, ckpt_every=100, warmup=2)
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads = 16, 1, 2
    return cfg


def test_stream_uses_training_seeds_and_families(monkeypatch: pytest.MonkeyPatch) -> None:
    import flm_core.train as tr

    seen: list[tuple[int, tuple[str, ...]]] = []
    real = tr.generate_scenario

    def spy(cfg, seed):  # noqa: ANN001
        seen.append((seed, cfg.building.families))
        return real(cfg, seed)

    monkeypatch.setattr(tr, 'generate_scenario', spy)
    cfg = TrainConfig(samples_per_scenario=2, shuffle_buffer=1, scenario_duration=3.0, holdout_family='warehouse')
    it = iter(ScenarioStream(cfg))
    for _ in range(6):
        s = next(it)
        assert s['tokens'].feats.shape[0] == 1 and np.isfinite(s['tokens'].feats).all()
    assert seen and all(0 <= sd < EVAL_SEED_MIN and 'warehouse' not in fams for sd, fams in seen)
    assert 'warehouse' not in training_families('warehouse')
    c = Curriculum().at(0.0), Curriculum().at(1.0)
    assert c[0]['prior_sigma_xy'] < c[1]['prior_sigma_xy'] and c[0]['global_frac'] < c[1]['global_frac']


@pytest.mark.parametrize('share', [0.0, 1.0])
def test_realism_share_generates_realistic_training_scenarios(monkeypatch: pytest.MonkeyPatch, share: float) -> None:
    """--realism-share 1: every training scenario has the realism dimensions (drawn habits, a site map from a
    simulated mapping run); 0: none (the v1 data), still from training seeds only; outside [0, 1]: refused."""
    import flm_core.train as tr

    made: list = []
    real = tr.generate_scenario
    monkeypatch.setattr(tr, 'generate_scenario', lambda cfg, seed: made.append(real(cfg, seed)) or made[-1])
    cfg = TrainConfig(samples_per_scenario=2, shuffle_buffer=1, scenario_duration=3.0, realism_share=share)
    it = iter(ScenarioStream(cfg))
    for _ in range(4):
        next(it)
    assert made and all(sc.seed < EVAL_SEED_MIN for sc in made)
    assert all((sc.habits is not None) == (share == 1.0) and sc.realism == (share == 1.0) for sc in made)
    with pytest.raises(ValueError, match='realism_share'):
        train(TrainConfig(realism_share=1.5))


def test_resume_continues_step_count(tmp_path: Path) -> None:
    out = tmp_path / 'run'
    r = train(tiny_cfg(out, 3), progress=False)
    assert r['step'] == 3 and load_training_checkpoint(out / 'last.pt')['step'] == 3
    r = train(tiny_cfg(out, 5), resume=str(out / 'last.pt'), progress=False)
    assert r['step'] == 5
    st = load_training_checkpoint(out / 'last.pt')
    assert st['step'] == 5 and 'optim' in st
    steps = [int(row['step']) for row in csv.DictReader(open(out / 'log.csv'))]
    assert steps == [1, 2, 3, 4, 5]


@pytest.mark.skipif(shutil.which('torchrun', path=str(Path(sys.executable).parent)) is None and
                    shutil.which('torchrun') is None, reason='torchrun not installed')
def test_torchrun_ddp_two_gloo_processes(tmp_path: Path) -> None:
    torchrun = shutil.which('torchrun', path=str(Path(sys.executable).parent)) or shutil.which('torchrun')
    out = tmp_path / 'ddp'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    with socket.socket() as sock:          # a port free now (a fixed one can be taken by another test's process)
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    cmd = [torchrun, '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', str(port),
           '-m', 'flm_core.train_cli', '--out', str(out), '--steps', '2', *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(ROOT), env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert '"world": 2' in r.stdout
    assert load_training_checkpoint(out / 'last.pt')['step'] == 2
