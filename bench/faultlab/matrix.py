"""The whole matrix against a fresh node process: scenario, plan, node, the model file removed after configure, the
timeline, lifecycle checks, a clean shutdown, judging, and the report (faults.json, record.pkl, node.log)."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.faultlab.cases import SCENARIO_S, Case, default_cases, fault_scenario, random_model
from bench.faultlab.inject import Injector, node_command, node_env, node_parameters, run_plan
from bench.faultlab.judge import CaseResult, analyze, case_json, events, figures, table
from bench.faultlab.plan import build_plan
from flm_core.datagen.config import ROBOT_MODEL


#: CPU cores the matrix needs to keep up with its clock: the node (model, filter, executor) and the injector.
MATRIX_CORES = 1.5


def clock_scale(need: float = MATRIX_CORES, sample_s: float = 1.0) -> tuple[float, float]:
    """(scale, busy): how much slower than asked the matrix's clock runs on this machine now, and the CPU cores
    other processes keep busy (measured over ``sample_s``). The cases are judged in sim time, so what they test is
    the node's logic, not the machine: where other work leaves fewer than ``need`` cores, the clock slows in
    proportion (``cores / (busy + need)``) so that the node gets the CPU per sim second it gets on an idle machine.
    1.0 on an idle machine."""
    import os  # noqa: PLC0415

    import psutil  # noqa: PLC0415

    cores = float(os.cpu_count() or 1)
    busy = psutil.cpu_percent(interval=sample_s) / 100.0 * cores
    return min(1.0, cores / (busy + need)) if busy + need > cores else 1.0, busy


def run_matrix(out: str | Path, seed: int = 5, rate: float = 3.0, model: str | Path | None = None,
               trained: bool | None = None, only: Iterable[str] | None = None,
               progress: Callable[[str], None] = print, params: dict[str, Any] | None = None,
               scale: float | None = None) -> dict[str, Any]:
    """The whole fault matrix against a fresh node process: scenario, plan, node, the model file removed after
    configure, the timeline, lifecycle checks, a clean shutdown, judging. Returns a JSON-able report (also written to
    ``out/faults.json``; the node's log is ``out/node.log``). ``model``: default the shipped checkpoint when it
    exists, else a freshly initialised network; ``trained`` (default: the shipped checkpoint is used) turns on the
    checks that need a model which localizes. Call with FASTDDS_DEFAULT_PROFILES_FILE set to
    :func:`large_data_profile` before rclpy creates anything in this process (the CLI does), or the huge messages
    do not get through. ``params``: node parameters on top of the matrix's own (e.g. ``{'model.refine': True}``).
    ``scale``: the clock's slow-down (None: :func:`clock_scale` measures it) - the plan plays at ``rate * scale`` x
    real time, its real-time windows at ``scale`` x."""
    import rclpy  # noqa: PLC0415
    from rclpy.context import Context  # noqa: PLC0415

    from flm_core.model.inference import DEFAULT_MODEL  # noqa: PLC0415
    from flm_core.site import save_site  # noqa: PLC0415
    from flm_ros.runner import stop_processes  # noqa: PLC0415

    t_start = time.monotonic()
    busy = None
    if scale is None:
        scale, busy = clock_scale()
    if not 0.0 < scale <= 1.0:
        raise ValueError(f'clock scale must be in (0, 1]; got {scale}')
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = DEFAULT_MODEL if DEFAULT_MODEL.is_file() else random_model(out / 'flm_random.pt')
    model = Path(model)
    if trained is None:
        trained = DEFAULT_MODEL.is_file() and model.resolve() == DEFAULT_MODEL.resolve()
    cases = default_cases()
    if only:
        names = set(only)
        cases = [c for c in cases if c.name in names]
    # the world does not depend on which cases run or how long they are (a scenario's trajectory depends on its
    # duration): SCENARIO_S unless the timeline needs more
    duration = max(SCENARIO_S, max(c.t1 for c in cases) + 36.0)
    progress(f'faults: generating a {duration:.0f} s scenario (seed {seed})')
    sc = fault_scenario(duration=duration, seed=seed)
    site = save_site(sc.site(), out, 'site')
    plan = build_plan(sc, cases, operator=not trained)
    under_test = out / 'model_under_test.pt'
    shutil.copyfile(model, under_test)
    log_path = out / 'node.log'
    log = open(log_path, 'w')
    lifecycle = CaseResult(Case('model_unavailable', 'lifecycle', plan.end, plan.end, (),
                                'the model file is deleted after configure; later a reconfigure must fail cleanly'))
    robot = {'robot_model': ROBOT_MODEL[sc.motion.robot]}     # the user configures the robot's wheels
    proc = subprocess.Popen(node_command(node_parameters(site, under_test, trained, **{**robot, **(params or {})})),
                            stdout=log, stderr=subprocess.STDOUT, env=node_env())
    ctx = Context()
    rclpy.init(context=ctx)
    inj = Injector(ctx)
    rec = inj.record
    try:
        progress(f'faults: node pid {proc.pid}, model {model} ({"trained" if trained else "untrained"})')
        inj.publish_clock(plan.stamp_at(0.0))
        up = inj.wait_for_node(120.0, lambda: proc.poll() is None)
        if up:
            under_test.rename(under_test.with_suffix('.gone'))   # the model file is unavailable from here on
            progress(f'faults: playing {len(plan.items)} messages, {plan.end:.0f} s of sim time at {rate * scale:.2g}x'
                     + (f' (clock slowed to {scale:.2f}: other processes kept {busy:.1f} cores busy)'
                        if scale < 1.0 and busy is not None else ''))
            rec = run_plan(plan, proc.pid, rate=rate * scale, slow_rate=scale, injector=inj, progress=progress)
            inj.recording = False
            # lifecycle after the model vanished: deactivate/cleanup work, configure fails cleanly, node stays up
            # (a result of None: the service did not answer)
            res = inj.lifecycle('deactivate')
            lifecycle.add('deactivate succeeds', res is True, f'result {res}')
            res = inj.lifecycle('cleanup')
            lifecycle.add('cleanup succeeds', res is True, f'result {res}')
            res = inj.lifecycle('configure')
            lifecycle.add('configure is refused while the model file is missing', res is False, f'result {res}')
            st, code = inj.lifecycle_state(), proc.poll()
            lifecycle.add('the node stays up, unconfigured', st == 'unconfigured' and code is None,
                          f'state {st}, ' + ('process running' if code is None else f'process exited with {code}'))
            under_test.with_suffix('.gone').rename(under_test)
            res = inj.lifecycle('configure')
            act = inj.lifecycle('activate') if res is True else None
            lifecycle.add('with the file back, configure and activate succeed', res is True and act is True,
                          f'configure {res}, activate {act}')
        else:
            rec.exited = proc.poll() if proc.poll() is not None else -2
            rec.exited_play = 0.0
    finally:
        inj.close()
        rclpy.shutdown(context=ctx)
        stop_processes([proc], grace=30.0)
        log.close()
    text = log_path.read_text(errors='replace')
    failed_lines = [line for line in text.splitlines() if 'configure failed' in line]
    lifecycle.add('the configure failure is logged with the reason',
                  'configure failed' in text and ('not found' in text or 'No such file' in text),
                  failed_lines[0][-300:] if failed_lines else "no 'configure failed' line in node.log")
    results = analyze(plan, rec, trained=trained)
    run = results['run']
    run.add('the node came up', up, '' if up else f'no subscriptions on every sensor topic and /initialpose or no '
            f'/diagnostics within 120 s (node exit status {proc.returncode})')
    run.add('clean shutdown on SIGINT (exit status 0)', proc.returncode == 0, f'exit status {proc.returncode}')
    run.add('no Python traceback in the node output', 'Traceback' not in text,
            text[text.find('Traceback'):][:600] if 'Traceback' in text else '')
    results['model_unavailable'] = lifecycle
    figs = figures(results, rec)
    figs['crashes'] = int(rec.exited is not None or proc.returncode != 0 or 'Traceback' in text)
    report = {
        'meta': {'seed': seed, 'rate': rate, 'clock_scale': scale, 'busy_cores': busy, 'model': str(model),
                 'trained': trained, 'params': dict(params or {}), 'sim_s': plan.end,
                 'wall_s': time.monotonic() - t_start, 'play_wall_s': rec.wall, 'messages': len(plan.items),
                 'node_exit': proc.returncode, 'node_gone_at_play': rec.exited_play,
                 'poses': len(rec.poses), 'transforms': len(rec.tf)},
        'figures': figs,
        'cases': {name: case_json(c) for name, c in results.items()},
        'table': table(results),
        'events': events(rec),   # (stamp s after EPOCH, what) of the localization events the node reported
    }
    (out / 'faults.json').write_text(json.dumps(report, indent=1, default=float))
    with open(out / 'record.pkl', 'wb') as f:   # for a post-mortem: what was sent and what came back
        pickle.dump({'cases': plan.cases, 'segments': plan.segments, 'sent': plan.sent, 'operator': plan.operator,
                     'record': rec}, f)
    return report

