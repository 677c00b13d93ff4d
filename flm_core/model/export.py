"""Export: training checkpoint -> TorchScript (CPU/CUDA, fp32 or fp16) + ONNX, each checked against the eager model.

``flm-export CKPT --out DIR`` writes ``DIR/<name>.pt`` (TorchScript with the ``flm_meta.json`` record, loadable with
``torch.jit.load`` and no project code; what the torch back end loads), ``DIR/<name>.onnx`` (the same network for
ONNX Runtime, the back end a robot without torch uses, with the same record in its metadata, ``format =
'flm-onnx'``) and ``DIR/<name>.json`` (the record, readable without torch). The numerical check runs the exported
model and the eager model on the same token batch (random tokens with realistic masks, several sizes) and fails
when they differ by more than the stated tolerance (fp32: 1e-4 absolute on every output; fp16: 5e-2 relative).
``--onnx-only`` writes the ONNX twin of an existing ``DIR/<name>.pt`` (its record reused, checked against it too):
how ``flm_core/checkpoints/flm_v1.onnx`` was made from ``flm_v1_train.pt``.

The ONNX file comes from the ``torch.export``-based exporter (the TorchScript-based one is deprecated) with the
batch and token axes dynamic; it needs the ``onnx`` and ``onnxscript`` packages at export time only.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .backends import INPUT_NAMES, OUTPUT_NAMES
from .checkpoint import (FORMAT_VERSION, META_NAME, ONNX_FORMAT, load_torchscript, load_training_checkpoint,
                         own_torchscript, save_torchscript)
from .net import FLM, FLMConfig, count_parameters
from .tokens import FEATURE_SCALE, MODALITIES, N_FEAT, N_TYPES, TOKEN_TYPES, TokenConfig

FP32_ATOL = 1e-4
FP16_RTOL = 5e-2
__all__ = ['FP16_RTOL', 'FP32_ATOL', 'INPUT_NAMES', 'OUTPUT_NAMES', 'build_meta', 'example_tokens', 'export_all',
           'export_onnx', 'export_torchscript', 'model_from_checkpoint']


def example_tokens(batch: int = 3, n: int = 97, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A random token batch (feats (B, N, 12) scaled like real data, dt, types, mask with padding)."""
    g = np.random.default_rng(seed)
    types = g.integers(0, N_TYPES, (batch, n))
    types[:, 0] = TOKEN_TYPES.index('prior')
    feats = (g.normal(0.0, 1.0, (batch, n, N_FEAT)) * FEATURE_SCALE[types]).astype(np.float32)
    dt = -g.uniform(0.0, 1.0, (batch, n)).astype(np.float32)
    mask = np.ones((batch, n), dtype=bool)
    for b in range(1, batch):
        mask[b, n - 7 * b:] = False
    return (torch.from_numpy(feats), torch.from_numpy(dt), torch.from_numpy(types), torch.from_numpy(mask))


def model_from_checkpoint(path: str | Path) -> tuple[FLM, dict[str, Any]]:
    state = load_training_checkpoint(path)
    cfg = state['train_cfg']
    model = FLM(FLMConfig(**cfg['model']))
    model.load_state_dict(state['model'])
    model.eval()
    return model, state


def build_meta(model: FLM, token_cfg: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {'name': 'flm', 'flm_core': __version__, 'created_utc': _dt.datetime.now(_dt.timezone.utc).isoformat(),
            'model': model.cfg.to_dict(), 'tokens': token_cfg, 'params': count_parameters(model),
            'modalities': list(MODALITIES), 'token_types': list(TOKEN_TYPES), 'inputs': INPUT_NAMES,
            'outputs': OUTPUT_NAMES, **(extra or {})}


def _max_diff(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b))


def export_torchscript(model: FLM, path: str | Path, meta: dict[str, Any], device: str = 'cpu',
                       fp16: bool = False) -> dict[str, Any]:
    """Script, save with meta, reload and compare with eager (raises AssertionError beyond tolerance)."""
    return _export_torchscript(model, path, meta, device, fp16)[0]


def _export_torchscript(model: FLM, path: str | Path, meta: dict[str, Any], device: str, fp16: bool
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`export_torchscript` -> (check results, the written file's record as its reload checked it)."""
    model = model.to(device).eval()
    with own_torchscript():
        scripted = torch.jit.script(model.half() if fp16 else model)
    meta = {**meta, 'device': device, 'fp16': fp16}
    save_torchscript(scripted, path, meta)
    loaded, record = load_torchscript(path, device)   # the one check of the written file's record
    worst = 0.0
    model_ref = FLM(model.cfg)
    model_ref.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    model_ref = model_ref.to(device).eval()
    for b, n in ((1, 40), (3, 97), (8, 300)):
        x = [t.to(device) for t in example_tokens(b, n, seed=b)]
        with torch.no_grad():
            ref = model_ref(*x)
            xin = [x[0].half() if fp16 else x[0], x[1].half() if fp16 else x[1], x[2], x[3]]
            got = loaded(*xin)
        if fp16:
            for r, g_ in zip(ref, got):
                rel = float(((r - g_.float()).abs() / (r.abs() + 1e-2)).max())
                worst = max(worst, rel)
            assert worst <= FP16_RTOL, f'fp16 TorchScript differs from eager by {worst:.3g} relative (> {FP16_RTOL})'
        else:
            worst = max(worst, _max_diff(ref, got))
            assert worst <= FP32_ATOL, f'TorchScript differs from eager by {worst:.3g} (> {FP32_ATOL})'
    if fp16:
        model.float()
    return {'path': str(path), 'max_abs_diff' if not fp16 else 'max_rel_diff': worst}, record


def export_onnx(model: FLM, path: str | Path, meta: dict[str, Any] | None = None, opset: int = 18,
                twin: torch.jit.ScriptModule | None = None) -> dict[str, Any]:
    """ONNX export (dynamic batch and token count) with ``meta`` as its ``flm_meta.json`` record (format
    'flm-onnx'), checked with onnxruntime when installed against the eager model and, with ``twin`` (the loaded
    TorchScript file it is the twin of), against that too (raises AssertionError beyond FP32_ATOL)."""
    model = model.float().cpu().eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = example_tokens(2, 64)
    batch, tokens = torch.export.Dim('batch'), torch.export.Dim('tokens')
    program = torch.onnx.export(model, x, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, opset_version=opset,
                                dynamic_shapes={k: {0: batch, 1: tokens} for k in INPUT_NAMES}, dynamo=True,
                                verbose=False)
    record = {**(meta or {}), 'format': ONNX_FORMAT, 'version': FORMAT_VERSION, 'fp16': False}
    record.pop('device', None)  # the file runs on any execution provider
    program.model.metadata_props[META_NAME] = json.dumps(record, indent=1, sort_keys=True)
    program.save(str(path))
    info: dict[str, Any] = {'path': str(path)}
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
        info['checked'] = False
        return info
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    refs = [model] + ([twin] if twin is not None else [])
    worst = 0.0
    for b, n in ((1, 1), (1, 40), (3, 97), (8, 300)):
        x = example_tokens(b, n, seed=10 + b)
        got = sess.run(OUTPUT_NAMES, {k: v.numpy() for k, v in zip(INPUT_NAMES, x)})
        for ref_model in refs:
            with torch.no_grad():
                ref = ref_model(*x)
            worst = max(worst, max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got)))
    assert worst <= FP32_ATOL, f'ONNX differs from eager by {worst:.3g} (> {FP32_ATOL})'
    info.update(checked=True, max_abs_diff=worst)
    return info


def export_all(ckpt: str | Path, out_dir: str | Path, name: str = 'flm', device: str = 'cpu', fp16: bool = False,
               onnx: bool = True, extra_meta: dict[str, Any] | None = None, torchscript: bool = True
               ) -> dict[str, Any]:
    """Write DIR/NAME.pt (unless not ``torchscript``: then DIR/NAME.pt must exist, from the same checkpoint, and
    its record is reused), DIR/NAME.onnx (with ``onnx``) and DIR/NAME.json; returns the check results. NAME.pt's
    record is checked once, where it is loaded (after writing it, or the existing file), and that record is used
    for the ONNX twin and NAME.json."""
    model, state = model_from_checkpoint(ckpt)
    out_dir = Path(out_dir)
    pt = out_dir / f'{name}.pt'
    res: dict[str, Any] = {}
    twin = None
    if torchscript:
        token_cfg = TokenConfig(**state['train_cfg']['tokens']).to_dict()
        meta = build_meta(model, token_cfg, {'train_step': int(state['step']),
                                             'holdout_family': state['train_cfg'].get('holdout_family'),
                                             'train_seed': state['train_cfg'].get('seed'), **(extra_meta or {})})
        res['torchscript'], pt_meta = _export_torchscript(model, pt, meta, device, fp16)
    else:
        twin, pt_meta = load_torchscript(pt)
    if onnx:
        res['onnx'] = export_onnx(model, out_dir / f'{name}.onnx', pt_meta, twin=twin)
    record = out_dir / f'{name}.json'
    old = json.loads(record.read_text()).get('export', {}) if record.is_file() and not torchscript else {}
    files = {k: {**v, 'path': Path(v['path']).name} for k, v in res.items()}  # the record travels with the files
    record.write_text(json.dumps({**pt_meta, 'export': {**old, **files}}, indent=1, sort_keys=True) + '\n')
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog='flm-export', description='Export an FLM training checkpoint to TorchScript (+ ONNX), checked '
        'numerically against the eager model. Localizer.load / the ROS node load the TorchScript file with torch, '
        'or its ONNX twin (same name, .onnx) with ONNX Runtime where torch is not installed.')
    ap.add_argument('checkpoint', help='training checkpoint (flm-train writes OUT/last.pt)')
    ap.add_argument('--out', default='export', help='output directory (default: %(default)s)')
    ap.add_argument('--name', default='flm', help='file stem: NAME.pt, NAME.onnx, NAME.json (default: %(default)s)')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help='device the TorchScript file targets')
    ap.add_argument('--fp16', action='store_true', help='half-precision weights (CUDA only in practice)')
    only = ap.add_mutually_exclusive_group()
    only.add_argument('--no-onnx', action='store_true', help='skip the ONNX export')
    only.add_argument('--onnx-only', action='store_true',
                      help='write only NAME.onnx beside an existing NAME.pt in --out made from the same checkpoint '
                      '(its record is reused and the ONNX file is checked against it)')
    a = ap.parse_args(argv)
    if a.device == 'cuda' and not torch.cuda.is_available():
        ap.error('--device cuda: CUDA is not available on this machine')
    try:
        res = export_all(a.checkpoint, a.out, a.name, a.device, a.fp16, not a.no_onnx, torchscript=not a.onnx_only)
    except (ValueError, AssertionError, ImportError) as e:  # ModelFileError is a ValueError
        print(f'flm-export: {e}', file=sys.stderr)
        return 1
    print(json.dumps(res, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
