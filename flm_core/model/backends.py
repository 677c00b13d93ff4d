"""Inference back ends: the FLM network from its TorchScript file (torch) or its ONNX twin (ONNX Runtime).

A robot needs one of them: ONNX Runtime (a wheel of some 15 MB, CPU and CUDA execution providers) or torch (GBs).
Both take a token batch as numpy arrays (feats (K, N, 12) float32, dt (K, N) float32 s, types (K, N) int64, mask
(K, N) bool) and return numpy arrays: corr (K, 3) and cov (K, 3, 3) float64 in hypothesis axes, health (K, 6) and
score (K,) float32 in [0, 1].

Which one (``backend``): ``'auto'`` takes ONNX Runtime when the model path names an ``.onnx`` file, else torch where
it is installed, else ONNX Runtime; ``'torch'`` / ``'onnx'`` force one. flm-export writes ``NAME.pt`` and
``NAME.onnx`` side by side, so one model path (the node's ``model_path``, default the shipped ``flm_v1.pt``) names
the model for both: each back end takes the file with its own suffix (:func:`model_file`).

fp16 runs on the torch back end only (the ONNX file is float32). ``threads``: intra-op threads of the back end
(torch's is process-wide, ONNX Runtime's per session); None leaves the library's default (all cores).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from scipy.special import expit

from .checkpoint import META_NAME, ONNX_FORMAT, ModelFileError, load_torchscript, parse_meta

if TYPE_CHECKING:
    import torch

BACKENDS = ('auto', 'torch', 'onnx')
INPUT_NAMES = ['feats', 'dt', 'types', 'mask']
OUTPUT_NAMES = ['corr', 'cov', 'health', 'score']
Outputs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

_NO_TORCH = ("the torch back end needs torch, which is not installed: install it (pip install 'flm_ros[train]', "
             "the CPU wheel from the PyTorch CPU index) or use backend 'onnx'")
_NO_ORT = ("the ONNX back end needs ONNX Runtime, which is not installed: pip install 'flm_ros[onnx]' (or "
           "requirements/runtime.txt); where torch is installed, backend 'torch' works without it")


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def choose_backend(path: str | Path, backend: str = 'auto') -> str:
    """'torch' or 'onnx' for model ``path`` and the requested ``backend`` (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
    if backend != 'auto':
        return backend
    if Path(path).suffix == '.onnx':
        return 'onnx'
    return 'torch' if _importable('torch') else 'onnx'


def model_file(path: str | Path, backend: str) -> Path:
    """The file back end ``backend`` ('torch' or 'onnx') loads for model ``path``: NAME.onnx beside NAME.pt for
    ONNX, NAME.pt beside NAME.onnx for torch, ``path`` itself when its suffix already fits."""
    p = Path(path)
    if backend == 'onnx':
        return p if p.suffix == '.onnx' else p.with_suffix('.onnx')
    return p.with_suffix('.pt') if p.suffix == '.onnx' else p


def check_device(device: str) -> None:
    """Raises ValueError unless ``device`` is one a back end can take: 'cpu', 'cuda', 'cuda:N' or 'auto'."""
    if device not in ('cpu', 'cuda', 'auto') and not device.startswith('cuda:'):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")


class TorchBackend:
    """A TorchScript (or eager) FLM module on ``device`` ('cpu', 'cuda', 'cuda:N'), optionally in half precision."""

    name = 'torch'

    def __init__(self, module: torch.nn.Module, device: str = 'cpu', fp16: bool = False,
                 path: Path | None = None) -> None:
        self.module = module
        self.device = device
        self.fp16 = fp16
        self.path = path

    @classmethod
    def load(cls, path: str | Path, device: str = 'cpu', fp16: bool = False, threads: int | None = None
             ) -> tuple[TorchBackend, dict[str, Any]]:
        """Load a TorchScript model written by flm-export -> (back end, checked record)."""
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            raise ImportError(_NO_TORCH) from None
        check_device(device)
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available')
        if fp16 and device == 'cpu':
            raise ValueError('fp16 is only supported on CUDA; use fp16=False on CPU')
        if threads:
            torch.set_num_threads(int(threads))
        module, meta = load_torchscript(path, device)
        if fp16:
            module = module.half()
        elif meta.get('fp16'):
            module = module.float()
        return cls(module, device, fp16, Path(path)), meta

    def run(self, feats: np.ndarray, dt: np.ndarray, types: np.ndarray, mask: np.ndarray) -> Outputs:
        import torch  # noqa: PLC0415

        dev = self.device
        f = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)).to(dev)
        d = torch.from_numpy(np.ascontiguousarray(dt, dtype=np.float32)).to(dev)
        if self.fp16:
            f, d = f.half(), d.half()
        with torch.inference_mode():
            corr, cov, health, score = self.module(f, d, torch.from_numpy(np.ascontiguousarray(types)).to(dev),
                                                   torch.from_numpy(np.ascontiguousarray(mask)).to(dev))
        return (corr.float().cpu().numpy().astype(np.float64), cov.float().cpu().numpy().astype(np.float64),
                torch.sigmoid(health.float()).cpu().numpy(), torch.sigmoid(score.float()).cpu().numpy())


class OnnxBackend:
    """An ONNX Runtime session of an FLM ONNX model (written by flm-export, with the ``flm_meta.json`` record in its
    metadata) on the CPU or CUDA execution provider."""

    name = 'onnx'
    fp16 = False

    def __init__(self, session: Any, device: str, path: Path) -> None:
        self.session = session
        self.device = device
        self.path = path

    @classmethod
    def load(cls, path: str | Path, device: str = 'cpu', fp16: bool = False, threads: int | None = None
             ) -> tuple[OnnxBackend, dict[str, Any]]:
        """Open an FLM ONNX model -> (back end, checked record). device 'cuda' / 'cuda:N' needs the CUDA execution
        provider (the onnxruntime-gpu wheel) and a working GPU; 'auto' uses it when it works, else the CPU."""
        check_device(device)
        if fp16:
            raise ValueError('fp16 runs on the torch back end only (the ONNX model is float32): use fp16=False or '
                             "backend 'torch'")
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError:
            raise ImportError(_NO_ORT) from None
        path = Path(path)
        what = f'an FLM ONNX model (with the {META_NAME} record, written by flm-export)'
        if not path.is_file():
            raise ModelFileError(f'{path}: file not found (expected {what})')
        has_cuda = 'CUDAExecutionProvider' in ort.get_available_providers()
        want_cuda = device.startswith('cuda') or (device == 'auto' and has_cuda)
        if want_cuda and not has_cuda:
            raise ValueError(f'device {device!r} requested but this onnxruntime has no CUDA execution provider '
                             f'(providers: {", ".join(ort.get_available_providers())}): install onnxruntime-gpu')
        providers: list[Any] = ['CPUExecutionProvider']
        if want_cuda:
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': int(device.partition(':')[2] or 0)}))
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types (InvalidProtobuf, Fail)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFileError(f'{path}: not loadable as an ONNX model ({msg}); expected {what}') from None
        raw = sess.get_modelmeta().custom_metadata_map.get(META_NAME)
        if raw is None:
            raise ModelFileError(f'{path}: ONNX model without the {META_NAME} record; expected {what}')
        meta = parse_meta(raw, path, ONNX_FORMAT)
        names = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
        if names != (INPUT_NAMES, OUTPUT_NAMES):
            raise ModelFileError(f'{path}: inputs/outputs {names}, expected {INPUT_NAMES} -> {OUTPUT_NAMES}')
        on_cuda = 'CUDAExecutionProvider' in sess.get_providers()
        if want_cuda and not on_cuda and device != 'auto':
            raise ValueError(f'device {device!r} requested but ONNX Runtime could not start its CUDA execution '
                             'provider (no GPU, driver or CUDA/cuDNN libraries?); see its log above')
        return cls(sess, (device if device != 'auto' else 'cuda') if on_cuda else 'cpu', path), meta

    def run(self, feats: np.ndarray, dt: np.ndarray, types: np.ndarray, mask: np.ndarray) -> Outputs:
        corr, cov, health, score = self.session.run(OUTPUT_NAMES, {
            'feats': np.ascontiguousarray(feats, dtype=np.float32), 'dt': np.ascontiguousarray(dt, dtype=np.float32),
            'types': np.ascontiguousarray(types, dtype=np.int64), 'mask': np.ascontiguousarray(mask, dtype=bool)})
        return corr.astype(np.float64), cov.astype(np.float64), expit(health), expit(score)


Backend = Union[TorchBackend, OnnxBackend]


def open_backend(path: str | Path, backend: str = 'auto', device: str = 'cpu', fp16: bool = False,
                 threads: int | None = None) -> tuple[Backend, dict[str, Any]]:
    """Load model ``path`` on the chosen back end (see the module docstring) -> (back end, checked record)."""
    kind = choose_backend(path, backend)
    loader = TorchBackend.load if kind == 'torch' else OnnxBackend.load
    return loader(model_file(path, kind), device, fp16, threads)
