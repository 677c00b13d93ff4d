"""The Foundation Localization Model (no ROS imports).

- ``tokens``: window + Site + reference pose -> token arrays (numpy; what the runtime needs besides the model file)
- ``net``: the network (torch nn.Module), ``loss``: training loss
- ``inference``: :class:`Localizer` / :class:`Estimate`, the runtime API; ``backends``: the network run by
  TorchScript or ONNX Runtime (no torch needed on the robot)
- ``export``: ``flm-export`` (TorchScript + ONNX, numerically checked), ``checkpoint``: safe loading
- ``replay``: a generated scenario seen as the runtime sees it

Submodules are imported lazily so that the runtime never imports the network code.
"""
from __future__ import annotations

from typing import Any

__all__ = ['Estimate', 'Localizer', 'Rig', 'TokenConfig', 'ModelFileError']


def __getattr__(name: str) -> Any:
    if name in ('Estimate', 'Localizer'):
        from . import inference  # noqa: PLC0415

        return getattr(inference, name)
    if name in ('Rig', 'TokenConfig'):
        from . import tokens  # noqa: PLC0415

        return getattr(tokens, name)
    if name == 'ModelFileError':
        from .checkpoint import ModelFileError  # noqa: PLC0415

        return ModelFileError
    raise AttributeError(name)
