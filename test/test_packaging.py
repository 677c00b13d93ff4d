"""Installable on a real ROS 2 system and with pip: every package.xml key resolves on Humble, Jazzy and Kilted
(checked against rosdistro's rosdep keys and release lists in ../shared/ref/rosdistro), every third-party module the
installed code imports is declared (package.xml and/or setup.py), the locks agree, and the wheel pip builds holds
the shipped model files and the dependency metadata."""
from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

ROSDISTRO = ROOT.parent / 'shared' / 'ref' / 'rosdistro'
UBUNTU = {'humble': 'jammy', 'jazzy': 'noble', 'kilted': 'noble'}   # REP 2000 tier-1 Ubuntu of each distribution
INSTALLERS = ('apt', 'pip', 'source')

#: Third-party modules the installed code (flm_core, flm_ros, launch) imports -> (package.xml key, pip name).
#: A key of None: no rosdep key installs it (a pip extra does); a pip name of None: it comes from ROS only.
DECLARED: dict[str, tuple[str | None, str | None]] = {
    'rclpy': ('rclpy', None), 'rcl_interfaces': ('rcl_interfaces', None),
    'builtin_interfaces': ('builtin_interfaces', None), 'std_msgs': ('std_msgs', None),
    'std_srvs': ('std_srvs', None), 'geometry_msgs': ('geometry_msgs', None), 'sensor_msgs': ('sensor_msgs', None),
    'nav_msgs': ('nav_msgs', None), 'tf2_msgs': ('tf2_msgs', None), 'tf2_ros': ('tf2_ros_py', None),
    'nav2_msgs': ('nav2_msgs', None), 'diagnostic_msgs': ('diagnostic_msgs', None),
    'visualization_msgs': ('visualization_msgs', None), 'rosgraph_msgs': ('rosgraph_msgs', None),
    'bond': ('bond', None), 'bondpy': ('bondpy', None), 'launch': ('launch', None), 'launch_ros': ('launch_ros', None),
    'ament_index_python': ('ament_index_python', None),
    'numpy': ('python3-numpy', 'numpy'), 'scipy': ('python3-scipy', 'scipy'), 'yaml': ('python3-yaml', 'PyYAML'),
    'PIL': ('python3-pil', 'pillow'),
    'onnxruntime': ('python3-onnxruntime-pip', 'onnxruntime'), 'tqdm': ('python3-tqdm', 'tqdm'),
    'matplotlib': ('python3-matplotlib', 'matplotlib'), 'rosbags': ('python3-rosbags-pip', 'rosbags'),
    'torch': (None, 'torch'), 'open3d': (None, 'open3d'),
}
TEST_KEYS = {'python3-pytest'}
#: Benchmark-only modules, installed from a lock of their own and never imported by the installed code.
BENCH_ONLY = {'amcl': 'bench.txt'}   # the GPLv3 AMCL bindings (flm-eval --compare amcl-beam loads bench/amcl_beam.py)


def _package_deps() -> list:
    catkin_pkg = pytest.importorskip('catkin_pkg.package', reason='catkin_pkg (the parser rosdep uses) is needed')
    pkg = catkin_pkg.parse_package(str(ROOT / 'package.xml'))  # validates against REP 149 as rosdep does
    return [*pkg.buildtool_depends, *pkg.build_depends, *pkg.build_export_depends, *pkg.exec_depends,
            *pkg.test_depends, *pkg.doc_depends]


def _deps_for(distro: str) -> set[str]:
    keys = set()
    for dep in _package_deps():
        dep.evaluate_condition({'ROS_DISTRO': distro, 'ROS_VERSION': '2', 'ROS_PYTHON_VERSION': '3'})
        if dep.evaluated_condition:
            keys.add(dep.name)
    return keys


def _resolves_on(rule: object, codename: str) -> bool:
    """Whether a rosdep rule installs something on Ubuntu ``codename`` (a package list, an installer entry, or a
    per-release entry that is neither missing nor null)."""
    if not isinstance(rule, dict):
        return False
    entry = rule.get('ubuntu')
    if isinstance(entry, dict) and not any(k in entry for k in INSTALLERS):
        entry = entry[codename] if codename in entry else entry.get('*')
    if isinstance(entry, list):
        return bool(entry)
    if isinstance(entry, dict):
        return any(isinstance(entry.get(k), dict) and entry[k].get('packages') for k in INSTALLERS) \
            or any(isinstance(entry.get(k), list) and entry[k] for k in INSTALLERS)
    return False


def test_package_xml_keys_resolve_on_every_distribution() -> None:
    if not ROSDISTRO.is_dir():
        pytest.skip(f'no rosdistro reference at {ROSDISTRO} (rosdep/*.yaml and <distro>/distribution.yaml)')
    rules: dict = {}
    for f in sorted((ROSDISTRO / 'rosdep').glob('*.yaml')):
        rules.update(yaml.safe_load(f.read_text()))
    released: dict[str, set[str]] = {}
    for f in sorted(ROSDISTRO.glob('*/distribution.yaml')):
        doc = yaml.safe_load(f.read_text())
        released[f.parent.name] = {p for name, repo in doc['repositories'].items() if repo.get('release')
                                   for p in repo['release'].get('packages', [name])}
    assert rules and released, f'{ROSDISTRO} holds no rosdep rules or release lists'
    any_release = set().union(*released.values())
    problems = []
    for distro, codename in UBUNTU.items():
        for key in sorted(_deps_for(distro)):
            if key in rules:
                if not _resolves_on(rules[key], codename):
                    problems.append(f'{distro}: rosdep key {key!r} has no rule for Ubuntu {codename}')
            elif key not in released.get(distro, any_release):
                problems.append(f'{distro}: {key!r} is neither a rosdep key nor a released ROS package')
    assert not problems, '\n'.join(problems)


def test_rosdep_rule_reader() -> None:
    """The rule reader the first test relies on accepts and refuses what rosdep would (rules as in python.yaml)."""
    assert _resolves_on({'ubuntu': ['python3-numpy']}, 'jammy')
    assert _resolves_on({'ubuntu': {'pip': {'packages': ['onnxruntime']}}}, 'noble')
    assert _resolves_on({'ubuntu': {'*': ['python3-torch'], 'focal': None}}, 'noble')
    assert not _resolves_on({'ubuntu': {'*': ['python3-open3d'], 'noble': None}}, 'noble')
    assert not _resolves_on({'debian': ['x']}, 'jammy')
    assert not _resolves_on({'ubuntu': {'focal': ['x']}}, 'jammy')


def _imports(paths: list[Path]) -> dict[str, str]:
    """Top-level names of absolute imports in ``paths`` -> the first file importing each."""
    found: dict[str, str] = {}
    for f in paths:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for n in names:
                found.setdefault(n.split('.')[0], str(f.relative_to(ROOT)))
    return found


def _setup_metadata() -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """install_requires, extras_require and package_data of setup.py, as setuptools reads them."""
    code = ('import json, setuptools\nfrom distutils.core import run_setup\n'
            'd = run_setup("setup.py", stop_after="init")\n'
            'print(json.dumps([d.install_requires, d.extras_require, d.package_data]))\n')
    r = subprocess.run([sys.executable, '-c', code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    req, extras, data = json.loads(r.stdout.strip().splitlines()[-1])
    return req, extras, data


def _name(requirement: str) -> str:
    return re.split(r'[<>=!~;\[ ]', requirement, maxsplit=1)[0].lower().replace('_', '-')


def test_every_import_is_declared() -> None:
    code = sorted([*(ROOT / 'flm_core').rglob('*.py'), *(ROOT / 'flm_ros').rglob('*.py'),
                   *(ROOT / 'launch').glob('*.py')])
    imported = {n: f for n, f in _imports(code).items()
                if n not in sys.stdlib_module_names and n not in ('flm_core', 'flm_ros')}
    for module, lock in BENCH_ONLY.items():
        assert module not in imported and _name(module) in _pins(lock), (module, lock)
    undeclared = {n: f for n, f in imported.items() if n not in DECLARED}
    assert not undeclared, f'imported but not declared (add to package.xml / setup.py and DECLARED): {undeclared}'
    assert set(DECLARED) == set(imported), f'declared but no longer imported: {set(DECLARED) - set(imported)}'
    xml_keys = {d.name for d in _package_deps()}
    assert xml_keys == {k for k, _ in DECLARED.values() if k} | TEST_KEYS, xml_keys ^ \
        ({k for k, _ in DECLARED.values() if k} | TEST_KEYS)
    req, extras, _ = _setup_metadata()
    pip_names = {_name(r) for r in req} | {_name(r) for rs in extras.values() for r in rs}
    missing = {p for _, p in DECLARED.values() if p and _name(p) not in pip_names}
    assert not missing, f'imported but neither in install_requires nor an extra of setup.py: {missing}'


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / 'requirements' / name).read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            m = re.fullmatch(r'([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)', line)
            assert m, f'requirements/{name}: {line!r} is not an exact pin'
            pins[_name(m.group(1))] = m.group(2)
    return pins


def test_locks_and_setup_agree() -> None:
    """runtime.txt is the runtime part of the development lock (same versions); both runtime locks hold what
    install_requires and the [onnx] extra name; Humble's keeps numpy 1.x (its message packages need it)."""
    dev, runtime, humble, bench = (_pins(n) for n in ('lock.txt', 'runtime.txt', 'runtime-humble.txt', 'bench.txt'))
    assert {k: dev.get(k) for k in runtime} == runtime, 'runtime.txt and lock.txt pin different versions'
    req, extras, data = _setup_metadata()
    assert set(extras) == {'onnx', 'eval', 'train', 'pcd'}
    needed = {_name(r) for r in req + extras['onnx']} - {'setuptools'}
    assert needed <= set(runtime) and needed <= set(humble), (needed - set(runtime), needed - set(humble))
    assert not set(bench) & set(runtime), 'benchmark-only packages belong in bench.txt alone'
    assert humble['numpy'].startswith('1.'), 'ROS 2 Humble message packages do not load under numpy 2'
    assert 'checkpoints/*.onnx' in data['flm_core']


def test_wheel_holds_the_models_and_the_dependencies(tmp_path: Path) -> None:
    """pip builds a wheel from a copy of the source tree: it carries flm_v1.pt and flm_v1.onnx, the launch and
    config files, and the runtime requirements and extras in its metadata."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('setup.py', 'setup.cfg', 'package.xml', 'resource', 'launch', 'config', 'flm_core', 'flm_ros'):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, src / name, **({'ignore': shutil.ignore_patterns('__pycache__')}
                                          if (ROOT / name).is_dir() else {}))
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
                        '-q', '-w', str(tmp_path / 'dist'), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = (tmp_path / 'dist').glob('flm_ros-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
    for f in ('flm_core/checkpoints/flm_v1.pt', 'flm_core/checkpoints/flm_v1.onnx', 'flm_core/model/backends.py'):
        assert f in names, f
    assert any(n.endswith('share/flm_ros/package.xml') for n in names)
    requires = re.findall(r'^Requires-Dist: (.+)$', meta, flags=re.M)
    assert any(r.startswith('numpy') for r in requires) and any(r.startswith('scipy') for r in requires)
    assert any(r.startswith('onnxruntime') and 'extra == "onnx"' in r for r in requires), requires
    assert any(r.startswith('torch') and 'extra == "train"' in r for r in requires), requires
