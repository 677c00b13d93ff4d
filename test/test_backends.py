"""Inference back ends (flm_core/model/backends.py) with the shipped model: torch (flm_v1.pt, TorchScript) and ONNX
Runtime (flm_v1.onnx) give the same raw network outputs and the same localizer poses and covariances (1e-4); ONNX
Runtime localizes in a process where torch cannot be imported; how the back end and its file are chosen; ONNX files
that are not FLM models are refused; TorchScript's deprecation warning is silenced only around the project's own
files; CUDA and fp16 where a GPU is present (skipped otherwise)."""
from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from flm_core.model.backends import choose_backend, model_file
from flm_core.model.checkpoint import ModelFileError
from flm_core.model.inference import DEFAULT_MODEL, Localizer
from flm_core.model.tokens import prepare, tokenize

TOL = 1e-4   # the brief's bar for "the same result" across back ends (float32 network)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # the torch-free child processes below refuse to find torch
        return False


HAS_TORCH = _installed('torch')
HAS_ORT = _installed('onnxruntime')
#: First lines of a child process in which torch cannot be imported, as where it is not installed.
NO_TORCH = ('import importlib.abc, sys\n'
            'class NoTorch(importlib.abc.MetaPathFinder):\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            '        if name.split(".")[0] == "torch":\n'
            '            raise ModuleNotFoundError(f"No module named {name!r}", name=name)\n'
            'sys.meta_path.insert(0, NoTorch())\n')
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason='torch is not installed (the torch back end)')
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install 'flm_ros[onnx]')")
SHIPPED_ONNX = DEFAULT_MODEL.with_suffix('.onnx')
PRIOR_OFFSET = np.array([0.15, -0.1, 0.03])
PRIOR_COV = np.diag([0.04, 0.04, 0.01])

STAMPS = (2.5, 3.5, 4.5)


def scenario_replay():
    """An office with every sensor (the torch-free child process below imports this module to build the same)."""
    from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario
    from flm_core.model.replay import ScenarioReplay

    cfg = ScenarioConfig(duration=5.0)
    cfg.building.families = ('office',)
    cfg.building.size_x, cfg.building.size_y = (14.0, 16.0), (10.0, 12.0)
    cfg.motion.kidnap_prob = 0.0
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.lidar3d.rings, cfg.sensors.lidar3d.beams = 8, 90
    cfg.sensors.depth.enabled = True
    cfg.sensors.depth.width, cfg.sensors.depth.height = 32, 24
    return ScenarioReplay(generate_scenario(cfg, evaluation_seeds(1, offset=7)[0]))


def track(loc: Localizer, replay, t: float):
    """A tracking update at ``t`` from a prior offset from the truth."""
    return loc.localize(replay.window(t, 1.2), replay.site, t, replay.truth(t) + PRIOR_OFFSET, PRIOR_COV,
                        rig=replay.rig)


@pytest.fixture(scope='module')
def replay():
    return scenario_replay()


@pytest.fixture(scope='module')
def onnx_loc() -> Localizer:
    if not HAS_ORT:
        pytest.skip("onnxruntime is not installed (pip install 'flm_ros[onnx]')")
    return Localizer.load(backend='onnx', threads=1)


@pytest.fixture(scope='module')
def torch_loc() -> Localizer:
    if not HAS_TORCH:
        pytest.skip('torch is not installed (the torch back end)')
    return Localizer.load(backend='torch', threads=1)


def _max_diff(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    return max(float(np.abs(np.asarray(x, float) - np.asarray(y, float)).max()) for x, y in zip(a, b))


def test_shipped_onnx_twin_exists_and_is_small() -> None:
    assert SHIPPED_ONNX.is_file(), 'flm_v1.onnx must ship beside flm_v1.pt (flm-export --onnx-only)'
    assert SHIPPED_ONNX.stat().st_size < 4e6


def test_raw_outputs_agree(torch_loc: Localizer, onnx_loc: Localizer, replay) -> None:
    """corr, cov, health, score of both back ends on real token batches: tracking (1 hypothesis, every modality)
    and global (40 hypotheses, so the 32-hypothesis chunks of Localizer.forward are crossed)."""
    index = onnx_loc.map_index(replay.site)
    g = np.random.default_rng(0)
    for t in STAMPS:
        frame = prepare(replay.window(t, 1.2), replay.site, t, replay.rig, onnx_loc.tokens_cfg, index)
        assert all(frame.present.values()), frame.present  # every modality reaches the network
        truth = replay.truth(t)
        hyps = truth + g.normal(0.0, [1.0, 1.0, 0.5], (40, 3))
        for tok in (tokenize(frame, index, truth + PRIOR_OFFSET, PRIOR_COV, onnx_loc.tokens_cfg),
                    tokenize(frame, index, hyps, None, onnx_loc.tokens_cfg)):
            a, b = torch_loc.forward(tok), onnx_loc.forward(tok)
            assert [x.shape for x in a] == [y.shape for y in b]
            assert _max_diff(a, b) <= TOL, (t, len(tok.feats), _max_diff(a, b))


def test_localizer_results_agree(torch_loc: Localizer, onnx_loc: Localizer, replay) -> None:
    """Pose and covariance (and score, health) of tracking and global localizations agree within 1e-4."""
    for t in STAMPS:
        a, b = track(torch_loc, replay, t), track(onnx_loc, replay, t)
        assert np.abs(a.pose - b.pose).max() <= TOL and np.abs(a.cov - b.cov).max() <= TOL, (t, a.pose, b.pose)
        assert abs(a.score - b.score) <= TOL and all(abs(a.health[m] - b.health[m]) <= TOL for m in a.health)
        assert np.hypot(*(b.pose[:2] - replay.truth(t)[:2])) < 0.3
    t = STAMPS[-1]
    w = replay.window(t, 2.0, ['scan', 'uwb', 'odom'])
    a, b = (loc.localize(w, replay.site, t, rig=replay.rig, global_candidates=64) for loc in (torch_loc, onnx_loc))
    assert a.mode == b.mode == 'global' and a.hypotheses == b.hypotheses
    assert np.abs(a.pose - b.pose).max() <= TOL and np.abs(a.cov - b.cov).max() <= TOL, (a.pose, b.pose)


@needs_ort
def test_onnx_localizes_without_torch(replay) -> None:
    """A child process in which ``import torch`` fails (as on a robot without it) loads the shipped model with the
    default back end choice and localizes; torch is never imported. Same result as the torch back end here."""
    t = STAMPS[1]
    code = (NO_TORCH + 'import json\n'
            f'sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n'
            'from test_backends import Localizer, scenario_replay, track\n'
            'loc = Localizer.load(threads=1)\n'
            f'est = track(loc, scenario_replay(), {t})\n'
            'assert not [m for m in sys.modules if m.split(".")[0] == "torch"]\n'
            'print(json.dumps({"backend": loc.backend.name, "pose": est.pose.tolist(), "cov": est.cov.tolist()}))\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out['backend'] == 'onnx'
    pose, cov = np.array(out['pose']), np.array(out['cov'])
    assert np.hypot(*(pose[:2] - replay.truth(t)[:2])) < 0.3
    if HAS_TORCH:
        ref = track(Localizer.load(backend='torch', threads=1), replay, t)
        assert np.abs(ref.pose - pose).max() <= TOL and np.abs(ref.cov - cov).max() <= TOL


@needs_ort
@pytest.mark.skipif(not _installed('rclpy'), reason='rclpy is not installed (the ROS node)')
def test_node_loads_the_model_without_torch() -> None:
    """The localizer node's model loading with its default parameters, in a process where torch cannot be imported
    (what ``ros2 run flm_ros flm_localizer`` does at configure on a robot without torch)."""
    code = (NO_TORCH + 'from flm_core import config as C\nfrom flm_ros import params as P\n'
            'p = {q.name: q.default for q in P.COMMON + P.LOCALIZER}\n'
            'loc = C.load_pose_source(C.load_config(p))\n'
            'print(loc.backend.name, loc.device, loc.backend.path.name, p["inference_backend"])\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ['onnx', 'cpu', 'flm_v1.onnx', 'auto']


def test_backend_choice_and_model_files(tmp_path: Path) -> None:
    assert choose_backend('m/flm.onnx') == 'onnx' and choose_backend('m/flm.onnx', 'torch') == 'torch'
    assert choose_backend('m/flm.pt') == ('torch' if HAS_TORCH else 'onnx')
    assert choose_backend('m/flm.pt', 'onnx') == 'onnx'
    with pytest.raises(ValueError, match='backend must be one of auto, torch, onnx'):
        choose_backend('m/flm.pt', 'tensorrt')
    for path, backend, want in (('m/flm.pt', 'onnx', 'm/flm.onnx'), ('m/flm.onnx', 'torch', 'm/flm.pt'),
                                ('m/flm.pt', 'torch', 'm/flm.pt'), ('m/flm.onnx', 'onnx', 'm/flm.onnx')):
        assert model_file(path, backend) == Path(want)
    if HAS_ORT:
        loc = Localizer.load(SHIPPED_ONNX)  # an .onnx path picks ONNX Runtime by itself
        assert loc.backend.name == 'onnx' and loc.meta['format'] == 'flm-onnx'
        assert loc.tokens_cfg == Localizer.load(backend='onnx').tokens_cfg
        alone = tmp_path / 'flm_v1.pt'
        shutil.copy(DEFAULT_MODEL, alone)  # a TorchScript file without its ONNX twin
        with pytest.raises(ModelFileError, match='flm_v1.onnx: file not found'):
            Localizer.load(alone, backend='onnx')
    if HAS_TORCH:
        loc = Localizer.load(SHIPPED_ONNX, backend='torch')  # the .pt twin
        assert loc.backend.name == 'torch' and loc.backend.path == DEFAULT_MODEL


@needs_ort
def test_onnx_refuses_what_it_cannot_run(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    rnd = tmp_path / 'random.onnx'
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelFileError, match='not loadable as an ONNX model'):
        Localizer.load(rnd)

    class Evil:
        def __reduce__(self):  # would run code if unpickled
            return (print, ('pwned',))

    pkl = tmp_path / 'evil.onnx'
    pkl.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match='not loadable as an ONNX model'):
        Localizer.load(pkl)
    assert 'pwned' not in capfd.readouterr().out
    with pytest.raises(ValueError, match='fp16 runs on the torch back end only'):
        Localizer.load(backend='onnx', fp16=True)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto'"):
        Localizer.load(backend='onnx', device='tpu')
    import onnxruntime as ort

    if 'CUDAExecutionProvider' not in ort.get_available_providers():
        with pytest.raises(ValueError, match='install onnxruntime-gpu'):
            Localizer.load(backend='onnx', device='cuda')
        assert Localizer.load(backend='onnx', device='auto').device == 'cpu'


def test_onnx_record_is_checked(tmp_path: Path) -> None:
    """ONNX files without the flm_meta.json record, or with one of another format or version, are refused."""
    if not HAS_ORT:
        pytest.skip("onnxruntime is not installed (pip install 'flm_ros[onnx]')")
    onnx = pytest.importorskip('onnx', reason='the onnx package (export tooling) writes the altered test files')
    model = onnx.load(str(SHIPPED_ONNX))
    record = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(record['flm_meta.json'])
    assert meta['format'] == 'flm-onnx' and meta['tokens'] and meta['model']

    def variant(name: str, value: str | None) -> Path:
        del model.metadata_props[:]
        if value is not None:
            model.metadata_props.add(key='flm_meta.json', value=value)
        onnx.save(model, str(tmp_path / name))
        return tmp_path / name

    with pytest.raises(ModelFileError, match='without the flm_meta.json record'):
        Localizer.load(variant('bare.onnx', None))
    with pytest.raises(ModelFileError, match='version 99'):
        Localizer.load(variant('old.onnx', json.dumps({**meta, 'version': 99})))
    with pytest.raises(ModelFileError, match="expected 'flm-onnx'"):
        Localizer.load(variant('ts.onnx', json.dumps({**meta, 'format': 'flm-torchscript'})))
    with pytest.raises(ModelFileError, match='not valid JSON'):
        Localizer.load(variant('junk.onnx', '{'))


@needs_torch
def test_torchscript_deprecation_silenced_only_for_own_files() -> None:
    """Loading the project's checked model file shows no "torch.jit.load is deprecated" warning, and the process's
    warning filters are the same afterwards (nothing is hidden elsewhere)."""
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        Localizer.load(backend='torch')
    assert not [w for w in caught if 'torch.jit' in str(w.message)], [str(w.message) for w in caught]
    assert list(warnings.filters) == before


def _cuda_reason() -> str | None:
    if not HAS_TORCH:
        return 'torch is not installed'
    import torch

    return None if torch.cuda.is_available() else 'no CUDA device on this machine (runs where one is)'


@pytest.mark.skipif(_cuda_reason() is not None, reason=str(_cuda_reason()))
def test_cuda_and_fp16(torch_loc: Localizer, replay) -> None:
    """--device cuda gives the CPU result (1e-4); fp16 on CUDA stays within half precision of it; 'auto' picks the
    GPU; ONNX Runtime's CUDA execution provider too where onnxruntime-gpu is installed."""
    t = STAMPS[1]
    ref = track(torch_loc, replay, t)
    gpu = Localizer.load(device='cuda', backend='torch')
    assert gpu.device == 'cuda' and Localizer.load(device='auto', backend='torch').device == 'cuda'
    est = track(gpu, replay, t)
    assert np.abs(est.pose - ref.pose).max() <= TOL and np.abs(est.cov - ref.cov).max() <= TOL
    half = Localizer.load(device='cuda', fp16=True, backend='torch')
    est = track(half, replay, t)
    assert half.fp16 and np.abs(est.pose[:2] - ref.pose[:2]).max() < 0.02 and abs(est.pose[2] - ref.pose[2]) < 0.01
    assert np.allclose(np.diag(est.cov), np.diag(ref.cov), rtol=0.1)
    if HAS_ORT:
        import onnxruntime as ort

        if 'CUDAExecutionProvider' in ort.get_available_providers():
            est = track(Localizer.load(device='cuda', backend='onnx'), replay, t)
            assert np.abs(est.pose - ref.pose).max() <= TOL and np.abs(est.cov - ref.cov).max() <= TOL
