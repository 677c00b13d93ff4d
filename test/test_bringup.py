"""Bring-up: `ros2 launch flm_ros localize.launch.py` and `flm-run` start the same nodes with the same
parameters, and flm-run starts and stops the real graph cleanly."""
import importlib.util
import os
import signal
import subprocess
import sys
import types

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from ros_support import ROOT, alive, python_proc, stop_proc, wait_until
from flm_ros.bringup import BringupArgs, node_specs

LAUNCH_FILE = ROOT / 'launch' / 'localize.launch.py'
ARGS = {'site': 'some/site.yaml', 'model': 'm.pt', 'use_sim_time': 'true', 'namespace': 'robot1',
        'params_file': str(ROOT / 'config' / 'flm.yaml'), 'log_level': 'debug'}


def _launch_nodes_with_real_launch(args: dict) -> list[dict]:
    import launch
    from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: F401

    spec = importlib.util.spec_from_file_location('localize_launch', LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    ctx = launch.LaunchContext()
    ctx.launch_configurations.update(args)
    nodes = []
    for entity in ld.entities:
        if isinstance(entity, launch.actions.OpaqueFunction):
            for n in entity.execute(ctx) or []:
                nodes.append({'executable': n.node_executable, 'package': n.node_package})
    return nodes


def _launch_nodes_with_recorder(args: dict) -> list[dict]:
    """Without the `launch` package: evaluate the launch file against recording stand-ins of the four launch
    APIs it uses, and capture the Node(...) calls it would make."""
    made: list[dict] = []

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class DeclareLaunchArgument:
        def __init__(self, name, default_value='', description=''):
            self.name, self.default_value = name, default_value

    class LaunchDescription:
        def __init__(self, entities):
            self.entities = entities

    def Node(**kw):  # noqa: N802
        made.append(kw)
        return kw

    fakes = {
        'launch': types.SimpleNamespace(LaunchDescription=LaunchDescription),
        'launch.actions': types.SimpleNamespace(DeclareLaunchArgument=DeclareLaunchArgument,
                                                OpaqueFunction=OpaqueFunction),
        'launch.substitutions': types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        'launch_ros.actions': types.SimpleNamespace(Node=Node),
    }
    saved = {k: sys.modules.get(k) for k in fakes}
    sys.modules.update(fakes)  # type: ignore[arg-type]
    try:
        spec = importlib.util.spec_from_file_location('localize_launch', LAUNCH_FILE)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ld = mod.generate_launch_description()
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    context = {e.name: e.default_value for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    assert set(ARGS) <= set(context), 'every runner argument is a launch argument'
    context.update(args)
    for e in ld.entities:
        if isinstance(e, OpaqueFunction):
            e.function(context)
    return made


def test_launch_file_and_runner_start_the_same_graph():
    specs = node_specs(BringupArgs(params_file=ARGS['params_file'], site=ARGS['site'], model=ARGS['model'],
                                   use_sim_time=True, namespace=ARGS['namespace']))
    assert specs, 'the graph has nodes'
    if importlib.util.find_spec('launch_ros') is not None:
        launched = _launch_nodes_with_real_launch(ARGS)
        assert [(n['package'], n['executable']) for n in launched] == [(s.package, s.executable) for s in specs]
        return
    launched = _launch_nodes_with_recorder(ARGS)
    assert [(n['package'], n['executable'], n['name'], n['namespace']) for n in launched] == \
        [(s.package, s.executable, s.name, s.namespace) for s in specs]
    for n, s in zip(launched, specs):
        assert n['parameters'] == list(s.parameters)
        assert n['remappings'] == list(s.remappings)
        assert n['parameters'][1]['use_sim_time'] is True
        assert n['parameters'][1]['site_file'] == os.path.abspath('some/site.yaml')
    # what the runner executes carries exactly these parameters
    out = subprocess.run([sys.executable, '-m', 'flm_ros.runner', '--print',
                          *(f'{k}:={v}' for k, v in ARGS.items())],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split(' ', 1)[0] for line in out] == [s.name for s in specs]
    for line, s in zip(out, specs):
        assert line.split(' ', 1)[1] == ' '.join(s.ros_args('debug'))
        assert f'-p site_file:={os.path.abspath("some/site.yaml")}' in line
        assert '-r __ns:=/robot1' in line and '-p use_sim_time:=true' in line
        # as Nav2's localization_launch.py: tf and tf_static in the namespace
        assert '-r /tf:=tf -r /tf_static:=tf_static' in line


def _start_graph(ctx, model, tmp_path):
    """flm-run with every node of the graph, once each node publishes on /diagnostics: (the flm-run process, the
    node names, the nodes' pids)."""
    import rclpy
    node = rclpy.create_node('flm_test_runner_probe', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    seen: set[str] = set()
    node.create_subscription(DiagnosticArray, '/diagnostics',
                             lambda m: seen.update(s.name.split(':')[0] for s in m.status), 10)
    import numpy as np

    from flm_core.site import Anchor, Site, save_site
    site = save_site(Site(name='t', anchors=(Anchor('a0', np.zeros(3)),)), tmp_path)
    want = {s.name for s in node_specs(BringupArgs(site=str(site), model=str(model)))}
    run = python_proc(['-m', 'flm_ros.runner', 'namespace:=', 'log_level:=info', f'site:={site}', f'model:={model}'])
    try:
        wait_until(lambda: want <= seen, 120.0, f'diagnostics from every node of the graph ({sorted(want)})',
                   lambda t: ex.spin_once(timeout_sec=t), run, lambda: f'seen: {sorted(seen)}\n{run.output()}')
    except BaseException:
        stop_proc(run, timeout=20)
        raise
    finally:
        node.destroy_node()
    pids = [int(line.split('pid ')[1].rstrip(')')) for line in run.output().splitlines()
            if line.startswith('[flm-run] started')]
    assert len(pids) == len(want), run.output()
    return run, want, pids


def test_runner_starts_the_graph_and_stops_it_on_ctrl_c(rclpy_context, random_model, tmp_path):
    run, want, pids = _start_graph(rclpy_context, random_model, tmp_path)
    out = stop_proc(run, timeout=20)
    assert run.returncode == 0, out
    for name in want:
        assert f'{name} stopped (code 0)' in out, out
    assert not [pid for pid in pids if alive(pid)], out
    assert '[stop_proc]' not in out, out


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGKILL], ids=['SIGTERM', 'SIGKILL'])
def test_killing_the_runner_leaves_no_node_alive(rclpy_context, random_model, tmp_path, sig):
    """flm-run ended by a signal to it alone (its nodes run in sessions of their own, so a signal to its process
    group does not reach them): SIGTERM stops them in order; after SIGKILL the kernel tells them (they asked for
    SIGTERM at their parent's death)."""
    run, want, pids = _start_graph(rclpy_context, random_model, tmp_path)
    try:
        os.kill(run.pid, sig)
        run.wait(timeout=30)
        wait_until(lambda: not [pid for pid in pids if alive(pid)], 30.0, f'every node gone after {sig.name} to '
                   'flm-run', details=lambda: f'alive: {[pid for pid in pids if alive(pid)]}\n{run.output()}')
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        out = stop_proc(run)
    if sig == signal.SIGTERM:
        assert run.returncode == 0 and all(f'{name} stopped (code 0)' in out for name in want), out
