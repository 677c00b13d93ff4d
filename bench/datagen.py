"""Throughput of flm_core.datagen: simulated time of all default sensors per wall-clock second.

Default sensors and rates: 2D lidar 360 beams @ 10 Hz, UWB 8 anchors @ 10 Hz (one range per anchor per epoch),
IMU 200 Hz, wheel odometry 50 Hz, plus ground truth @ 50 Hz, written as training shards.
Target: one simulated hour in under 3 minutes on 2 cores.

    python bench/datagen.py                       # 1 h as 12 x 300 s scenarios, 2 workers, shards
    python bench/datagen.py --hours 0.1 --bags    # also time rosbag2 (mcap) writing
    python bench/datagen.py --hours 0.1 --realism # with the realism dimensions (mapping run, changes, habits),
                                                  # as evaluation seeds get them by default
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flm_core.datagen.cli import _work  # noqa: E402
from flm_core.datagen.config import ScenarioConfig  # noqa: E402
from flm_core.datagen.shards import load_shard  # noqa: E402

TARGET_S_PER_HOUR = 180.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--hours', type=float, default=1.0, help='simulated hours in total (default 1)')
    p.add_argument('--scenario-duration', type=float, default=300.0, help='seconds per scenario (default 300)')
    p.add_argument('--workers', type=int, default=2, help='worker processes (default 2)')
    p.add_argument('--bags', action='store_true', help='also write an mcap bag per scenario')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--realism', action='store_true', help='realism on for every scenario (realism.apply = always)')
    a = p.parse_args()
    cfg = ScenarioConfig(duration=a.scenario_duration)
    cfg.realism.apply = 'always' if a.realism else 'never'
    cfg.anchors.count = (8, 8)
    cfg.validate()
    n = max(1, round(a.hours * 3600.0 / a.scenario_duration))
    formats = ['shards'] + (['mcap'] if a.bags else [])
    with tempfile.TemporaryDirectory(prefix='flm-bench-datagen-') as tmp:
        tasks = [(i, a.seed + i, cfg.to_dict(), tmp, formats, False, False) for i in range(n)]
        t0 = time.perf_counter()
        if a.workers == 1:
            recs = [_work(t) for t in tasks]
        else:
            with mp.get_context('spawn').Pool(a.workers) as pool:
                recs = list(pool.imap_unordered(_work, tasks))
        wall = time.perf_counter() - t0
        msgs: dict[str, int] = {}
        for r in recs:
            for k, v in r['messages'].items():
                msgs[k] = msgs.get(k, 0) + v
        total_bytes = sum(r['bytes'] for r in recs)
        sh = load_shard(Path(tmp) / recs[0]['file'])
        beams = int(sh['lidar2d/ranges'].shape[1])
        anchors = int(len(sh['site/anchor_ids']))
    sim = n * a.scenario_duration
    per_hour = wall * 3600.0 / sim
    out = {
        'scenarios': n, 'scenario_duration_s': a.scenario_duration, 'simulated_s': sim, 'workers': a.workers,
        'formats': formats, 'realism': a.realism, 'wall_s': round(wall, 2), 'sim_s_per_wall_s': round(sim / wall, 1),
        'wall_s_per_simulated_hour': round(per_hour, 1), 'target_s_per_hour': TARGET_S_PER_HOUR,
        'meets_target': per_hour < TARGET_S_PER_HOUR, 'messages': msgs,
        'messages_per_s': round(sum(msgs.values()) / wall), 'lidar_rays_per_s': round(msgs.get('lidar2d', 0) * beams / wall),
        'shard_MB': round(total_bytes / 1e6, 1), 'lidar2d_beams': beams, 'uwb_anchors': anchors,
        'families': sorted({r['family'] for r in recs}),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
