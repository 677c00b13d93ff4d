"""flm-demo: the README's first command. Localize in a building the model never saw.

1. Generates a scenario from the building family held out of training ('cluttered'), with an evaluation seed
   (reserved: training never draws it), as a rosbag2 + site file.
2. Runs `flm-eval --mode live`: the real flm_localizer node (started by flm-run, as for `ros2 launch`) and the bag
   player as separate ROS 2 processes over DDS with /clock; what the node publishes is recorded.
3. Prints the metrics table and the path of the report with the plots.
4. Then a real recording: 20 s of a real UWB run shipped in data/ (ranges as a real driver sends them, biased, one
   stamp per ranging frame; see its README for the source and license), evaluated offline with the UWB EKF beside
   the FLM (--no-real skips it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flm_core.datagen.bagwriter import write_bag
from flm_core.datagen.config import BuildingConfig, ScenarioConfig
from flm_core.datagen.scenario import generate_scenario
from flm_core.datagen.seeds import EVAL_SEED_MIN

HELD_OUT_FAMILY = 'cluttered'  # flm_core.train's default holdout_family: no training scenario comes from it
REAL_RUN = Path(__file__).resolve().parents[1] / 'data' / 'lias_uwb_mid_tag0_20s'


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='flm-demo', description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, default=Path('out/demo'), help='output folder (default: %(default)s)')
    p.add_argument('--seed', type=int, default=EVAL_SEED_MIN, help='evaluation seed (default: %(default)s)')
    p.add_argument('--family', default=HELD_OUT_FAMILY, help='building family (default: %(default)s, held out)')
    p.add_argument('--duration', type=float, default=60.0, help='seconds of robot motion (default: %(default)s)')
    p.add_argument('--rate', type=float, default=1.0, help='playback rate (default: %(default)s)')
    p.add_argument('--mode', choices=('live', 'offline'), default='live',
                   help='live: node + player over DDS (default); offline: the same pipeline, as fast as possible')
    p.add_argument('--no-real', action='store_true', help='skip the real recording (step 4)')
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = _parse(sys.argv[1:] if argv is None else argv)
    scen_dir = ns.out / f'{ns.family}_{ns.seed}'
    bag = scen_dir / 'bag_mcap'
    if not (bag / 'metadata.yaml').is_file():
        print(f'[flm-demo] generating an unseen {ns.family} building (evaluation seed {ns.seed}, {ns.duration:.0f} s) '
              f'in {scen_dir}', flush=True)
        cfg = ScenarioConfig(duration=ns.duration, building=BuildingConfig(families=(ns.family,)))
        write_bag(generate_scenario(cfg, ns.seed), scen_dir, storage='mcap')
    from flm_ros import evaluate  # noqa: PLC0415 (imports rclpy and torch: after the quick argument check)

    print(f'[flm-demo] replaying {bag} to the localizer ({ns.mode})', flush=True)
    rc = evaluate.main([str(bag), '--mode', ns.mode, '--rate', str(ns.rate), '--out', str(ns.out / 'report'),
                        '--no-progress'])
    if ns.no_real or rc != 0:
        return rc
    if not (REAL_RUN / 'bag' / 'metadata.yaml').is_file():
        print(f'[flm-demo] no real recording at {REAL_RUN}: step 4 skipped', flush=True)
        return rc
    print(f'\n[flm-demo] a real recording: {REAL_RUN.name} (UWB only; offline, the UWB EKF beside the FLM)', flush=True)
    return evaluate.main([str(REAL_RUN / 'bag'), '--site', str(REAL_RUN / 'site.yaml'),
                          '--gt', f'tum:{REAL_RUN / "ground_truth.tum"}', '--compare', 'uwb-ekf',
                          '--out', str(ns.out / 'real_report'), '--no-progress'])


if __name__ == '__main__':
    sys.exit(main())
