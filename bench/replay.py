"""Offline replay speed of flm-eval: the node's pipeline driven through a bag as fast as the machine allows.

A generated scenario (2D lidar + IMU + UWB + odometry, an evaluation seed) is written as a rosbag2 and replayed
with `flm-eval`'s offline mode (the same pipeline class the node runs). Prints simulated seconds per wall second,
where the wall time went, and the most a perfect split of that work over the machine's cores could give.

    .venv/bin/python bench/replay.py [--duration 60] [--model PATH] [--no-odom]

Target (issue 7): >= 20x real time on 2 cores.

Where the time goes (wall-clock timers around the library's functions; ~21,000 timed calls of ~1 us each):

- model chain: per update, the tokens built from the prior, the network passes on them and the solve behind them
  (``model.refine``). Each update starts from the pose the previous one fused, so these run one after another
  whatever else runs beside them; the solve's residual blocks (the window in base_link, voxel-filtered) are timed
  apart;
- window preparation: the buffered window put into base_link (does not depend on the prior);
- sensor input: the input checks, the time buffer and the filter's propagation on every message (``Pipeline.admit``);
- the rest: reading and decoding the bag, message conversion, transforms, fusing the model poses, the estimates,
  the progress bar.

No split of this work over ``cores`` cores can finish before the model chain has run, nor before its CPU time
(the process's, measured around the replay) divided by the cores: the bound printed is
``data / max(chain, cpu / cores)``. Meeting a target above it takes less work, not a better split.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def timed(owner: Any, name: str, totals: dict[str, list[float]], label: str) -> Iterator[None]:
    """Add the wall time and the calls of ``owner.name`` to ``totals[label]`` ([seconds, calls]) while inside."""
    inner = getattr(owner, name)
    own = name in vars(owner)          # else an instance's method, found on its class
    acc = totals.setdefault(label, [0.0, 0])

    def wrapper(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            acc[0] += time.perf_counter() - t0
            acc[1] += 1

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, inner)
        else:
            delattr(owner, name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--duration', type=float, default=60.0, help='seconds of data (default: %(default)s)')
    ap.add_argument('--model', default='', help='TorchScript model (default: the shipped one)')
    ap.add_argument('--seed', type=int, default=None, help='evaluation seed (default: the first)')
    ap.add_argument('--no-odom', action='store_true',
                    help='leave the wheel odometry out (2D lidar + IMU + UWB, the set the target names)')
    ns = ap.parse_args(argv)
    os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-roslog-'))
    from flm_core import config as C
    from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario
    from flm_core.datagen.bagwriter import write_bag
    from flm_core.evaluation.report import evaluate
    from flm_core.model import inference
    from flm_core.pipeline import Pipeline
    from flm_core.site import load_site
    from flm_ros import params as P
    from flm_ros.bringup import default_params_file
    from flm_ros.evaluate import TABLE, _log, replay_offline

    seed = ns.seed if ns.seed is not None else int(evaluation_seeds(1)[0])
    tmp = Path(tempfile.mkdtemp(prefix='flm-replay-'))
    bag = write_bag(generate_scenario(ScenarioConfig(duration=ns.duration), seed), tmp, storage='mcap')
    p = P.from_yaml(str(default_params_file()), 'flm_localizer', TABLE)
    p['sensors.points.enabled'] = p['sensors.depth.enabled'] = False
    p['sensors.odom.enabled'] = not ns.no_odom
    if ns.model:
        p['model_path'] = ns.model
    source = C.load_pose_source(C.load_config(p), _log)
    tm: dict[str, list[float]] = {}
    cpu0 = time.process_time()
    network = getattr(source, 'source', None) or source      # the solve (model.refine) wraps the network
    solving = hasattr(source, '_minima')
    with timed(network, 'forward', tm, 'network'), timed(inference, 'tokenize', tm, 'tokens'), \
            timed(inference, 'prepare', tm, 'window'), timed(Pipeline, 'admit', tm, 'input'), \
            (timed(source, 'blocks', tm, 'blocks') if solving else contextlib.nullcontext()), \
            (timed(source, '_minima', tm, 'solve') if solving else contextlib.nullcontext()):
        rep = replay_offline(bag, load_site(tmp / 'site.yaml'), p, '/ground_truth/pose', progress=True,
                             source=source)
    cpu = time.process_time() - cpu0
    ev = evaluate('flm', rep.est, rep.gt)
    rtf = rep.duration / rep.wall
    cores = os.cpu_count() or 1
    streams = '2D lidar + IMU + UWB' + ('' if ns.no_odom else ' + odometry')
    print(f'offline replay, {streams}, update_rate {p["update_rate"]:g} Hz, {cores} cores')
    print('| data [s] | wall [s] | speed [x real time] | updates | APE RMSE [m] |')
    print('|---|---|---|---|---|')
    print(f'| {rep.duration:.1f} | {rep.wall:.1f} | {rtf:.1f} | {len(rep.est)} | {ev.metrics["ape_m"]["rmse"]:.3f} |')
    solve, blocks = tm.get('solve', [0.0, 0]), tm.get('blocks', [0.0, 0])
    chain = tm['network'][0] + tm['tokens'][0] + solve[0]
    rest = rep.wall - chain - tm['window'][0] - tm['input'][0] - blocks[0]
    print('\n| where the wall time went | s | share | calls |')
    print('|---|---|---|---|')
    for label, (s, n) in (('model chain: network passes', tm['network']), ('model chain: tokens', tm['tokens']),
                          ('model chain: the solve (model.refine)', solve),
                          ('window preparation', tm['window']),
                          ("the solve's residual blocks (the window in base_link, voxel filter)", blocks),
                          ('sensor input (checks, buffer, filter)', tm['input']),
                          ('the rest (bag decoding, conversion, fusion)', (rest, 0))):
        print(f'| {label} | {s:.2f} | {100 * s / rep.wall:.0f} % | {n or "-"} |')
    bound = rep.duration / max(chain, cpu / cores)
    print(f'\nthe most any split of this work over {cores} cores could give: {bound:.1f}x real time '
          f'(model chain {chain:.2f} s; CPU time {cpu:.2f} s / {cores} cores = {cpu / cores:.2f} s)')
    print(f'target >= 20x real time: {"met" if rtf >= 20 else "NOT met"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
