"""Safe model files: nothing is unpickled with arbitrary code execution, everything carries a format record.

Two kinds of file, both zip archives written by torch:

- **TorchScript model** (what the runtime loads, written by ``flm-export``): ``torch.jit.save`` with an embedded
  ``flm_meta.json`` record (``_extra_files``) holding ``format = 'flm-torchscript'``, ``version``, the token
  configuration the model was trained with, the model configuration and provenance. Loading checks that the file is
  a zip archive with TorchScript code and the record *before* ``torch.jit.load`` (which only restores TorchScript
  types, never arbitrary Python objects), then checks format and version.
- **Training checkpoint** (weights, optimizer, step, configs): a plain dict of tensors and primitives saved with
  ``torch.save`` and loaded with ``torch.load(weights_only=True)`` (the restricted unpickler), with
  ``format = 'flm-train-checkpoint'``.

Anything else (a pickle, a random file, another model) raises :class:`ModelFileError` saying what was expected.
The ONNX twin of a TorchScript model (``NAME.onnx``, see export.py and backends.py) carries the same record, with
``format = 'flm-onnx'``, checked by :func:`parse_meta`.

torch 2.13 deprecates TorchScript: every ``torch.jit.script/save/load`` warns. The torch back end keeps it (the
files are self-contained, and ``torch.export``'s ``.pt2`` loader may unpickle with ``weights_only=False``, which
this module exists to refuse), and :func:`own_torchscript` silences exactly that warning where the project scripts,
writes, or loads a file whose record it has checked; it is not hidden anywhere else. torch is imported only by the
functions that need it: :func:`read_meta` and :func:`parse_meta` work where torch is not installed.
"""
from __future__ import annotations

import contextlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch

TORCHSCRIPT_FORMAT = 'flm-torchscript'
ONNX_FORMAT = 'flm-onnx'
TRAIN_FORMAT = 'flm-train-checkpoint'
FORMAT_VERSION = 1
META_NAME = 'flm_meta.json'


class ModelFileError(ValueError):
    """A model file is missing, not of the expected format, or of an unsupported version."""


def _zip_names(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise ModelFileError(f'{path}: file not found (expected {what})')
    if not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            head = f.read(2)
        kind = 'a Python pickle' if head[:1] == b'\x80' else 'not a zip archive'
        raise ModelFileError(f'{path}: {kind}; expected {what}. Refusing to load it (pickles can run code).')
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except zipfile.BadZipFile as e:
        raise ModelFileError(f'{path}: corrupt zip archive ({e}); expected {what}') from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``flm_meta.json`` record of a TorchScript model file (checked), without loading the model."""
    path = Path(path)
    what = f'an FLM TorchScript model (torch.jit.save archive with {META_NAME}, written by flm-export)'
    names = _zip_names(path, what)
    if not any(n.endswith('/constants.pkl') or n.endswith('/code/__torch__.py') or '/code/' in n for n in names):
        raise ModelFileError(f'{path}: a zip archive but not a TorchScript archive; expected {what}')
    meta_names = [n for n in names if n.endswith('/extra/' + META_NAME)]
    if not meta_names:
        raise ModelFileError(f'{path}: TorchScript archive without the {META_NAME} record; expected {what}')
    with zipfile.ZipFile(path) as z:
        raw = z.read(meta_names[0])
    return parse_meta(raw, path, TORCHSCRIPT_FORMAT)


def parse_meta(raw: bytes | str, path: str | Path, expected_format: str) -> dict[str, Any]:
    """The checked ``flm_meta.json`` record ``raw`` of the model file ``path`` (for messages): valid JSON, the
    expected format, a supported version, and the token and model records."""
    try:
        meta = json.loads(raw.decode('utf-8') if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f'{path}: {META_NAME} is not valid JSON ({e})') from None
    _check_record(meta, path, expected_format, repr(expected_format), f'{META_NAME} ', 're-export it with flm-export')
    for key in ('tokens', 'model'):
        if not isinstance(meta.get(key), dict):
            raise ModelFileError(f'{path}: {META_NAME} lacks the {key!r} record')
    return meta


def _check_record(record: Any, path: str | Path, expected_format: str, what: str, where: str, remedy: str) -> None:
    """The format and version check of every kind of FLM file (model record, training checkpoint): ``record``
    must be a dict of format ``expected_format`` (``what``: how a message names it) and version
    :data:`FORMAT_VERSION`; ``where``: what holds the record (message prefix), ``remedy``: what to do about another
    version."""
    fmt = record.get('format') if isinstance(record, dict) else type(record).__name__
    if fmt != expected_format:
        raise ModelFileError(f'{path}: {where}format is {fmt!r}, expected {what}')
    if record.get('version') != FORMAT_VERSION:
        raise ModelFileError(f'{path}: {where}version {record.get("version")!r} is not supported by this flm_core '
                             f'(supports version {FORMAT_VERSION}); {remedy}')


@contextlib.contextmanager
def own_torchscript() -> Iterator[None]:
    """Silence torch's "`torch.jit.X` is deprecated" warning (and only it) inside the block: for the project's own
    scripting, saving, and loading of files whose record was checked first (see the module docstring). Other
    warnings, including "not supported in Python 3.14+", still show."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message=r'`torch\.jit\.(script|save|load)` is deprecated',
                                category=DeprecationWarning)
        yield


def load_torchscript(path: str | Path, device: str = 'cpu') -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an FLM TorchScript model after checking its record; returns (module in eval mode, meta)."""
    import torch  # noqa: PLC0415 - the torch back end only

    path = Path(path)
    meta = read_meta(path)
    try:
        with own_torchscript():
            module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as e:
        raise ModelFileError(f'{path}: TorchScript archive could not be loaded: {e}') from None
    module.eval()
    return module, meta


def save_torchscript(module: torch.jit.ScriptModule, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write a TorchScript model with its ``flm_meta.json`` record (format/version filled in)."""
    import torch  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, 'format': TORCHSCRIPT_FORMAT, 'version': FORMAT_VERSION}
    with own_torchscript():
        torch.jit.save(module, str(path), _extra_files={META_NAME: json.dumps(meta, indent=1, sort_keys=True)})
    return path


def save_training_checkpoint(path: str | Path, model: torch.nn.Module, optim: torch.optim.Optimizer | None,
                             step: int, train_cfg: dict[str, Any]) -> Path:
    """Atomically write a training checkpoint (plain dict, loadable with ``weights_only=True``)."""
    import torch  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {'format': TRAIN_FORMAT, 'version': FORMAT_VERSION, 'step': int(step),
             'model': {k: v.detach().cpu() for k, v in model.state_dict().items()},
             'train_cfg': json.loads(json.dumps(train_cfg))}
    if optim is not None:
        state['optim'] = optim.state_dict()
    tmp = path.with_suffix(path.suffix + '.tmp')
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint with the restricted unpickler and check its record."""
    import torch  # noqa: PLC0415

    path = Path(path)
    what = f'an FLM training checkpoint ({TRAIN_FORMAT}, written by flm-train)'
    _zip_names(path, what)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - the restricted unpickler raises several types
        raise ModelFileError(f'{path}: not loadable as plain weights ({type(e).__name__}: {e}); expected {what}') \
            from None
    _check_record(state, path, TRAIN_FORMAT, what, 'checkpoint ', 'train again with this flm_core')
    for key in ('model', 'step', 'train_cfg'):
        if key not in state:
            raise ModelFileError(f'{path}: checkpoint lacks {key!r}')
    return state
