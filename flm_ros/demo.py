"""flm-demo: the README's first command. Generates a building the model never saw, plays it as a rosbag to the
real FLM-ROS graph (separate ROS 2 processes over DDS), and prints what the graph reported.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray

from flm_core.datagen.bagwriter import write_bag
from flm_core.datagen.config import ScenarioConfig
from flm_core.datagen.scenario import generate_scenario
from flm_core.datagen.seeds import EVAL_SEED_MIN


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog='flm-demo', description='Generate an unseen building (evaluation seed), replay it over DDS to the '
                                     'FLM-ROS graph started by flm-run, and print the results.')
    p.add_argument('--out', type=Path, default=Path('out/demo'), help='output folder (default: %(default)s)')
    p.add_argument('--seed', type=int, default=EVAL_SEED_MIN, help='evaluation seed (default: %(default)s)')
    p.add_argument('--duration', type=float, default=30.0, help='seconds of robot motion (default: %(default)s)')
    p.add_argument('--rate', type=float, default=1.0, help='playback rate (default: %(default)s)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(argv)
    scen_dir = ns.out / f'scenario_{ns.seed}'
    bag = scen_dir / 'bag_mcap'
    if not (bag / 'metadata.yaml').is_file():
        print(f'[flm-demo] generating evaluation scenario {ns.seed} ({ns.duration:.0f} s) in {scen_dir}', flush=True)
        sc = generate_scenario(ScenarioConfig(duration=ns.duration), ns.seed)
        write_bag(sc, scen_dir, storage='mcap')
    site = scen_dir / 'site.yaml'
    graph = subprocess.Popen([sys.executable, '-m', 'flm_ros.runner', f'site:={site}', 'use_sim_time:=true'])
    rclpy.init()
    node = rclpy.create_node('flm_demo_observer')
    last: dict[str, DiagnosticArray] = {}
    node.create_subscription(DiagnosticArray, '/diagnostics', lambda m: last.update(diag=m), 10)
    try:
        time.sleep(2.0)
        play = subprocess.Popen([sys.executable, '-m', 'flm_ros.player', str(bag), '--clock', '100',
                                 '--rate', str(ns.rate), '--delay', '0.5'])
        while play.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        if play.returncode != 0:
            print('[flm-demo] the bag player failed', file=sys.stderr)
            return 1
    finally:
        graph.send_signal(2)
        graph.wait(timeout=20)
        node.destroy_node()
        rclpy.try_shutdown()
    diag = last.get('diag')
    if diag is None:
        print('[flm-demo] no /diagnostics received from the graph', file=sys.stderr)
        return 1
    print('\n| stream | status | rate (Hz) | accepted | rejected |\n|---|---|---|---|---|')
    for s in diag.status:
        v = {kv.key: kv.value for kv in s.values}
        rej = sum(int(x) for k, x in v.items() if k.startswith('rejected.'))
        print(f'| {s.hardware_id} | {s.message} | {v.get("rate_hz", "")} | {v.get("buffer.accepted", 0)} | {rej} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
