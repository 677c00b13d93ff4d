"""flm-run: start the FLM-ROS graph without the ``launch`` package.

Starts the same nodes with the same parameters as ``ros2 launch flm_ros localize.launch.py`` (both read
:func:`flm_ros.bringup.node_specs`), each as its own process, prefixes their output with the node name, and
stops them all cleanly on Ctrl-C or SIGTERM (SIGINT, then SIGTERM, then SIGKILL after a grace period each, to each
node's process group). Each node runs in a session of its own (a Ctrl-C in the terminal reaches flm-run only, which
then stops the nodes in order); on Linux each node also asks the kernel for SIGTERM when flm-run ends, so that no
node outlives flm-run, however it ended (SIGKILL included).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import subprocess
import sys
import threading
import time

from flm_ros.bringup import BringupArgs, NodeSpec, default_params_file, node_specs

GRACE_S = 5.0


def command_for(spec: NodeSpec, log_level: str | None = None) -> list[str]:
    """The command line that runs ``spec`` as a process (its console_scripts entry point + --ros-args)."""
    eps = importlib.metadata.entry_points(group='console_scripts', name=spec.executable)
    ep = next(iter(eps), None)
    if ep is None:
        raise SystemExit(f'flm-run: executable {spec.executable!r} of package {spec.package} is not installed '
                         '(run scripts/setup.sh or colcon build)')
    module, _, func = ep.value.partition(':')
    code = f'import sys; from {module} import {func} as main; sys.exit(main())'
    return [sys.executable, '-c', code, *spec.ros_args(log_level)]


def stop_processes(procs: list[subprocess.Popen], grace: float = GRACE_S) -> None:
    """Stop child processes as Ctrl-C would: SIGINT, then SIGTERM, then SIGKILL, each after ``grace`` s for the
    ones still running; returns when all have exited."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            if p.poll() is None:
                _signal_group(p, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)
        if all(p.poll() is not None for p in procs):
            return


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    """``sig`` to ``p``'s process group when ``p`` leads one (started in a session of its own), else to ``p``."""
    try:
        if os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, sig)
        else:
            p.send_signal(sig)
    except ProcessLookupError:   # it has just exited
        pass


def _ends_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` (a :func:`command_for` line) made to end when this process ends: on Linux the child asks the kernel
    for SIGTERM at this process's death (prctl PR_SET_PDEATHSIG) and exits at once if this process is already gone;
    elsewhere ``cmd`` unchanged."""
    if not sys.platform.startswith('linux'):
        return cmd
    guard = ('import ctypes, os, signal; ctypes.CDLL(None).prctl(1, signal.SIGTERM); '
             f'os.getppid() == {os.getpid()} or os._exit(1); ')
    return [cmd[0], cmd[1], guard + cmd[2], *cmd[3:]]


def _pump(name: str, stream) -> None:
    for line in stream:
        sys.stdout.write(f'[{name}] {line}')
        sys.stdout.flush()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='flm-run',
        description='Start the FLM-ROS localization graph as separate processes (the same nodes and parameters '
                    'as `ros2 launch flm_ros localize.launch.py`). Arguments may also be given launch-style, '
                    'e.g. `flm-run site:=building/site.yaml use_sim_time:=true`. Ctrl-C stops every node.')
    p.add_argument('--params-file', default=str(default_params_file()), help='parameter file (default: %(default)s)')
    p.add_argument('--site', default='', help='site file (map + anchors) overriding the parameter file')
    p.add_argument('--model', default='', help='TorchScript model overriding the parameter file')
    p.add_argument('--use-sim-time', default='false', help='true to follow /clock (bag replay)')
    p.add_argument('--namespace', default='', help='namespace for all nodes')
    p.add_argument('--log-level', default='info', help='log level of all nodes')
    p.add_argument('--print', action='store_true', help='print the command lines and exit')
    argv = list(sys.argv[1:] if argv is None else argv)
    converted: list[str] = []
    for a in argv:  # launch-style name:=value
        if ':=' in a and not a.startswith('-'):
            k, v = a.split(':=', 1)
            converted += ['--' + k.replace('_', '-'), v]
        else:
            converted.append(a)
    return p.parse_args(converted)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(argv)
    specs = node_specs(BringupArgs(params_file=ns.params_file, site=ns.site, model=ns.model,
                                   use_sim_time=ns.use_sim_time.lower() in ('true', '1', 'yes'),
                                   namespace=ns.namespace))
    cmds = [(s.name, command_for(s, ns.log_level)) for s in specs]
    if ns.print:
        for name, cmd in cmds:
            print(name, ' '.join(cmd[3:]))
        return 0
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = threading.Event()

    def stop(*_):
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, cmd in cmds:
        if stopping.is_set():
            break
        p = subprocess.Popen(_ends_with_parent(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             bufsize=1, start_new_session=True, env=os.environ.copy())
        threading.Thread(target=_pump, args=(name, p.stdout), daemon=True).start()
        print(f'[flm-run] started {name} (pid {p.pid})', flush=True)
        procs.append((name, p))
    rc = 0
    while not stopping.is_set():
        alive = [(n, p) for n, p in procs if p.poll() is None]
        for n, p in procs:
            if p.poll() is not None and p.returncode != 0 and not getattr(p, '_reported', False):
                print(f'[flm-run] {n} exited with code {p.returncode}', flush=True)
                p._reported = True  # type: ignore[attr-defined]
                rc = 1
        if not alive:
            return rc
        stopping.wait(0.2)
    print('[flm-run] stopping all nodes', flush=True)
    stop_processes([p for _, p in procs])
    for n, p in procs:
        print(f'[flm-run] {n} stopped (code {p.returncode})', flush=True)
    return rc


if __name__ == '__main__':
    sys.exit(main())
