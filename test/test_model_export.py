"""FLM export and safe loading: TorchScript == eager (1e-4 abs), loadable in a fresh process without the model code,
ONNX (with its record) checked with onnxruntime and loadable by the ONNX back end, and loaders refusing pickles,
random files and records of the wrong format/version. (test_backends.py compares the back ends.)"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from flm_core.model.backends import OnnxBackend
from flm_core.model.checkpoint import (ModelFileError, load_torchscript, load_training_checkpoint, own_torchscript,
                                       read_meta, save_training_checkpoint)
from flm_core.model.export import FP32_ATOL, build_meta, example_tokens, export_onnx, export_torchscript
from flm_core.model.inference import Localizer
from flm_core.model.net import FLM, FLMConfig
from flm_core.model.tokens import TokenConfig


def small_model(seed: int = 0) -> FLM:
    torch.manual_seed(seed)
    m = FLM(FLMConfig(d_model=32, n_layers=2, n_heads=4))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


@pytest.fixture(scope='module')
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[FLM, Path]:
    m = small_model()
    path = tmp_path_factory.mktemp('export') / 'flm.pt'
    res = export_torchscript(m, path, build_meta(m, TokenConfig().to_dict()))
    assert res['max_abs_diff'] <= FP32_ATOL
    return m, path


def test_torchscript_matches_eager(exported: tuple[FLM, Path]) -> None:
    m, path = exported
    module, meta = load_torchscript(path)
    assert meta['format'] == 'flm-torchscript' and meta['version'] == 1 and meta['tokens']['max_beams'] > 0
    for b, n in ((1, 5), (4, 130)):
        x = example_tokens(b, n, seed=b + 100)
        with torch.no_grad():
            for r, g in zip(m(*x), module(*x)):
                assert torch.allclose(r, g, atol=FP32_ATOL, rtol=0), float((r - g).abs().max())


def test_torchscript_loads_in_fresh_process_without_model_code(exported: tuple[FLM, Path], tmp_path: Path) -> None:
    m, path = exported
    x = example_tokens(2, 50, seed=7)
    with torch.no_grad():
        ref = m(*x)
    torch.save({'x': list(x), 'ref': list(ref)}, tmp_path / 'io.pt')
    code = (
        'import sys, torch\n'
        f'm = torch.jit.load({str(path)!r})\n'
        f'io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)\n'
        'out = m(*io["x"])\n'
        'assert not any(k.startswith("flm_core") for k in sys.modules), sorted(k for k in sys.modules if "flm" in k)\n'
        'print(max(float((a - b).abs().max()) for a, b in zip(out, io["ref"])))\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip().splitlines()[-1]) <= FP32_ATOL


def test_onnx_matches_eager(tmp_path: Path) -> None:
    pytest.importorskip('onnxruntime')
    m = small_model(1)
    meta = build_meta(m, TokenConfig().to_dict())
    info = export_onnx(m, tmp_path / 'flm.onnx', meta)
    assert info['checked'] and info['max_abs_diff'] <= FP32_ATOL
    backend, record = OnnxBackend.load(tmp_path / 'flm.onnx')  # the record travels inside the ONNX file
    assert record['format'] == 'flm-onnx' and record['tokens'] == meta['tokens'] and record['model'] == meta['model']
    for b, n in ((1, 1), (5, 77)):
        x = example_tokens(b, n, seed=20 + b)
        with torch.no_grad():
            ref = m(*x)
        got = backend.run(*(t.numpy() for t in x))
        expected = (ref[0], ref[1], torch.sigmoid(ref[2]), torch.sigmoid(ref[3]))
        assert max(float(np.abs(r.double().numpy() - g).max()) for r, g in zip(expected, got)) <= FP32_ATOL


def test_localizer_load_refuses_bad_files(exported: tuple[FLM, Path], tmp_path: Path) -> None:
    _, good = exported
    loc = Localizer.load(good)
    assert loc.tokens_cfg == TokenConfig()

    class Evil:
        def __reduce__(self):  # would run code if unpickled
            return (print, ('pwned',))

    pkl = tmp_path / 'evil.pt'
    pkl.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match='pickle'):
        Localizer.load(pkl)
    rnd = tmp_path / 'random.pt'
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match='not a zip'):
        Localizer.load(rnd)
    with pytest.raises(ModelFileError, match='not found'):
        Localizer.load(tmp_path / 'missing.pt')
    # a TorchScript archive without the record
    bare = tmp_path / 'bare.pt'
    with own_torchscript():  # deliberately foreign files: the deprecation notice is no news here
        torch.jit.save(torch.jit.script(small_model()), str(bare))
    with pytest.raises(ModelFileError, match='flm_meta.json'):
        Localizer.load(bare)
    # a record of another version
    old = tmp_path / 'old.pt'
    meta = read_meta(good)
    with own_torchscript():
        torch.jit.save(torch.jit.load(str(good)), str(old),
                       _extra_files={'flm_meta.json': json.dumps({**meta, 'version': 99})})
    with pytest.raises(ModelFileError, match='version 99'):
        Localizer.load(old)
    # a plain zip that is not TorchScript
    z = tmp_path / 'zip.pt'
    with zipfile.ZipFile(z, 'w') as f:
        f.writestr('hello.txt', 'hi')
    with pytest.raises(ModelFileError, match='not a TorchScript'):
        Localizer.load(z)


def test_training_checkpoint_is_weights_only(tmp_path: Path) -> None:
    m = small_model()
    p = save_training_checkpoint(tmp_path / 'c.pt', m, None, 5, {'model': m.cfg.to_dict()})
    st = load_training_checkpoint(p)
    assert st['step'] == 5 and set(st['model']) == set(m.state_dict())
    evil = tmp_path / 'evil.pt'
    torch.save({'format': 'flm-train-checkpoint', 'version': 1, 'x': np.random.default_rng(0)}, evil)
    with pytest.raises(ModelFileError, match='plain weights'):
        load_training_checkpoint(evil)
    other = tmp_path / 'other.pt'
    torch.save({'weights': torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match='expected an FLM training checkpoint'):
        load_training_checkpoint(other)
    with pytest.raises(ModelFileError):
        load_torchscript(p)  # a training checkpoint is not a deployable model


def test_shipped_model(tmp_path: Path) -> None:
    """The checkpoint shipped in flm_core/checkpoints loads through the safe path, is small, and localizes."""
    from flm_core.model.inference import DEFAULT_MODEL

    if not DEFAULT_MODEL.exists():
        pytest.skip('no shipped model yet (flm_core/checkpoints/flm_v1.pt)')
    assert DEFAULT_MODEL.stat().st_size < 8e6
    loc = Localizer.load()
    assert loc.meta['format'] == 'flm-torchscript' and loc.meta['holdout_family']
    from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario
    from flm_core.model.replay import ScenarioReplay

    cfg = ScenarioConfig(duration=4.0)
    cfg.building.families = ('office',)
    cfg.building.size_x, cfg.building.size_y = (14.0, 16.0), (10.0, 12.0)
    rp = ScenarioReplay(generate_scenario(cfg, evaluation_seeds(1, offset=5)[0]))
    t = 3.0
    truth = rp.truth(t)
    est = loc.localize(rp.window(t, 1.2, ['scan', 'odom']), rp.site, t, truth + np.array([0.15, -0.1, 0.03]),
                       np.diag([0.04, 0.04, 0.01]), rig=rp.rig)
    assert est.mode == 'tracking' and np.hypot(*(est.pose[:2] - truth[:2])) < 0.3
    assert set(est.health) == {'scan', 'points', 'depth', 'uwb', 'imu', 'odom'} and est.health['scan'] > 0


def test_flm_export_writes_loadable_twins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """flm-export CKPT writes NAME.pt, NAME.onnx and NAME.json; both back ends load them by the same model path
    and agree; --onnx-only rewrites the ONNX twin of an existing NAME.pt with that file's record."""
    pytest.importorskip('onnxruntime')
    from flm_core.model.export import main

    m = small_model(2)
    ckpt = save_training_checkpoint(tmp_path / 'last.pt', m, None, 7,
                                    {'model': m.cfg.to_dict(), 'tokens': TokenConfig().to_dict()})
    out = tmp_path / 'out'
    assert main([str(ckpt), '--out', str(out), '--name', 'm']) == 0
    res = json.loads(capsys.readouterr().out)
    assert res['onnx']['checked'] and res['onnx']['max_abs_diff'] <= FP32_ATOL
    record = json.loads((out / 'm.json').read_text())
    assert record['export']['onnx']['path'] == 'm.onnx' and record['train_step'] == 7
    x = [t.numpy() for t in example_tokens(3, 50, seed=4)]
    ts, onnx = (Localizer.load(out / 'm.pt', backend=b) for b in ('torch', 'onnx'))
    assert onnx.backend.path == out / 'm.onnx' and onnx.meta['train_step'] == 7
    assert max(float(np.abs(a - b).max()) for a, b in zip(ts.backend.run(*x), onnx.backend.run(*x))) <= FP32_ATOL
    (out / 'm.onnx').unlink()
    assert main([str(ckpt), '--out', str(out), '--name', 'm', '--onnx-only']) == 0
    again = Localizer.load(out / 'm.onnx')
    assert {k: v for k, v in again.meta.items() if k not in ('format', 'fp16')} == \
        {k: v for k, v in read_meta(out / 'm.pt').items() if k not in ('format', 'fp16', 'device')}
    assert main([str(ckpt), '--out', str(tmp_path / 'empty'), '--onnx-only']) == 1
    assert 'file not found' in capsys.readouterr().err
