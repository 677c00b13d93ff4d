"""The one list of nodes and parameters that both ``launch/localize.launch.py`` and ``flm-run`` start.

Each :class:`NodeSpec` names the package executable (the ``console_scripts`` entry point), the node name, the
parameter files and the parameter overrides. ``ros2 launch`` turns them into ``launch_ros.actions.Node``;
``flm-run`` turns them into ``--ros-args`` command lines for separate processes. A test checks that both see
the same thing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = 'flm_ros'
#: As in Nav2's localization_launch.py: tf and tf_static resolve in the namespace, so each robot of a fleet has
#: its own transform tree (/robot1/tf); without a namespace they stay /tf and /tf_static.
TF_REMAPPINGS = (('/tf', 'tf'), ('/tf_static', 'tf_static'))


def share_dir() -> Path:
    """The package's share directory (installed: ament index; source/editable checkout: the repo root)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            share = Path(get_package_share_directory(PACKAGE))
            if (share / 'config').is_dir():
                return share
        except (PackageNotFoundError, OSError):  # not installed, or no AMENT_PREFIX_PATH (plain venv)
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[1]


def default_params_file() -> Path:
    return share_dir() / 'config' / 'flm.yaml'


def params_file_with(overrides: dict[str, Any], path: Path) -> Path:
    """Write the default parameter file with ``overrides`` (parameter name -> value, e.g. ``model.refine: false``)
    to ``path`` (its folder is created); returns ``path``."""
    import yaml  # noqa: PLC0415

    doc = yaml.safe_load(default_params_file().read_text())
    doc['/**']['ros__parameters'].update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph. ``parameters``: YAML files first, then overrides (later wins, as in launch_ros)."""

    executable: str
    name: str
    parameters: tuple[str | dict, ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    namespace: str = ''
    package: str = PACKAGE

    def ros_args(self, log_level: str | None = None) -> list[str]:
        """The ``--ros-args`` a process needs to be this node (what launch_ros passes too)."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={_ns(self.namespace)}']
        for p in self.parameters:
            if isinstance(p, dict):
                for k, v in p.items():
                    args += ['-p', f'{k}:={_param_literal(v)}']
            else:
                args += ['--params-file', str(p)]
        for a, b in self.remappings:
            args += ['-r', f'{a}:={b}']
        if log_level:
            args += ['--log-level', log_level]
        return args


def _ns(ns: str) -> str:
    return ns if ns.startswith('/') else '/' + ns


def _param_literal(v: object) -> str:
    if isinstance(v, bool):
        return 'true' if v else 'false'
    return str(v)


@dataclass(frozen=True)
class BringupArgs:
    """The launch arguments (same names in ``ros2 launch`` and ``flm-run``)."""

    params_file: str = ''
    site: str = ''
    model: str = ''
    use_sim_time: bool = False
    namespace: str = ''
    extra: dict = field(default_factory=dict)


def node_specs(args: BringupArgs) -> list[NodeSpec]:
    """The graph for ``localize.launch.py``: every node with its parameter files and overrides."""
    params_file = args.params_file or str(default_params_file())
    overrides: dict[str, object] = {'use_sim_time': bool(args.use_sim_time)}
    if args.site:
        overrides['site_file'] = os.path.abspath(args.site)
    if args.model:
        overrides['model_path'] = os.path.abspath(args.model)
    overrides.update(args.extra)
    return [
        NodeSpec(executable='flm_localizer', name='flm_localizer', parameters=(params_file, overrides),
                 remappings=TF_REMAPPINGS, namespace=args.namespace),
    ]
