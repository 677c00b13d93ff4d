"""Offline replay speed of flm-eval: the node's pipeline driven through a bag as fast as the machine allows.

A generated scenario (2D lidar + IMU + UWB + odometry, an evaluation seed) is written as a rosbag2 and replayed
with `flm-eval`'s offline mode (the same pipeline class the node runs). Prints simulated seconds per wall second.

    .venv/bin/python bench/replay.py [--duration 60] [--model PATH]

Target (issue 7): >= 20x real time on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--duration', type=float, default=60.0, help='seconds of data (default: %(default)s)')
    ap.add_argument('--model', default='', help='TorchScript model (default: the shipped one)')
    ap.add_argument('--seed', type=int, default=None, help='evaluation seed (default: the first)')
    ns = ap.parse_args(argv)
    os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-roslog-'))
    from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario
    from flm_core.datagen.bagwriter import write_bag
    from flm_core.evaluation.report import evaluate
    from flm_core.site import load_site
    from flm_ros import params as P
    from flm_ros.bringup import default_params_file
    from flm_ros.evaluate import TABLE, replay_offline

    seed = ns.seed if ns.seed is not None else int(evaluation_seeds(1)[0])
    tmp = Path(tempfile.mkdtemp(prefix='flm-replay-'))
    bag = write_bag(generate_scenario(ScenarioConfig(duration=ns.duration), seed), tmp, storage='mcap')
    p = P.from_yaml(str(default_params_file()), 'flm_localizer', TABLE)
    p['sensors.points.enabled'] = p['sensors.depth.enabled'] = False
    if ns.model:
        p['model_path'] = ns.model
    rep = replay_offline(bag, load_site(tmp / 'site.yaml'), p, '/ground_truth/pose', progress=True)
    ev = evaluate('flm', rep.est, rep.gt)
    rtf = rep.duration / rep.wall
    print(f'offline replay, 2D lidar + IMU + UWB + odometry, update_rate {p["update_rate"]:g} Hz, '
          f'{os.cpu_count()} cores')
    print('| data [s] | wall [s] | speed [x real time] | updates | APE RMSE [m] |')
    print('|---|---|---|---|---|')
    print(f'| {rep.duration:.1f} | {rep.wall:.1f} | {rtf:.1f} | {len(rep.est)} | {ev.metrics["ape_m"]["rmse"]:.3f} |')
    print(f'target >= 20x real time: {"met" if rtf >= 20 else "NOT met"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
