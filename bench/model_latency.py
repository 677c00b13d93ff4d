"""FLM inference latency at batch 1 on CPU (default 2 threads): tracking-mode p50/p99 per update and global-mode
time, per sensor subset, measured through the runtime API (``Localizer.localize``: numpy preprocessing +
TorchScript forward, everything the node pays per update).

    .venv/bin/python bench/model_latency.py                 # shipped model, prints a table
    .venv/bin/python bench/model_latency.py --model export/flm.pt --threads 2 --updates 300 --out bench/results
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario  # noqa: E402
from flm_core.model.inference import DEFAULT_MODEL, Localizer  # noqa: E402
from flm_core.model.replay import ScenarioReplay  # noqa: E402
from flm_core.train import BENCH_SUBSETS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=str(DEFAULT_MODEL), help='TorchScript model (default: the shipped one)')
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default: %(default)s)')
    ap.add_argument('--updates', type=int, default=300, help='tracking updates per subset (default: %(default)s)')
    ap.add_argument('--global-calls', type=int, default=10, help='global localizations per subset')
    ap.add_argument('--family', default='office', help='building family of the scenario')
    ap.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'auto'")
    ap.add_argument('--iterations', type=int, default=2, help='tracking iterations per update')
    ap.add_argument('--out', default='bench/results', help='writes model_latency.md/.json here')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    loc = Localizer.load(a.model, device=a.device, converge=0.0)   # every one of --iterations passes
    cfg = ScenarioConfig(duration=40.0)
    cfg.building.families = (a.family,)
    cfg.motion.kidnap_prob = 0.0
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.depth.enabled = True
    seed = evaluation_seeds(1, offset=900)[0]
    rp = ScenarioReplay(generate_scenario(cfg, seed))
    loc.map_index(rp.site)
    rows = []
    for name, subset in BENCH_SUBSETS.items():
        ts = np.linspace(2.0, rp.duration - 0.1, a.updates)
        lat = []
        for i, t in enumerate(ts):
            w = rp.window(float(t), 1.2, list(subset))
            prior = rp.truth(float(t)) + np.array([0.1, -0.1, 0.03])
            est = loc.localize(w, rp.site, float(t), prior, np.diag([0.04, 0.04, 0.01]), rig=rp.rig,
                               iterations=a.iterations)
            if i >= 5:  # warm-up
                lat.append(est.latency * 1e3)
        glat = []
        for t in np.linspace(3.0, rp.duration - 0.1, a.global_calls):
            w = rp.window(float(t), 2.0, list(subset))
            t0 = time.perf_counter()
            loc.localize(w, rp.site, float(t), rig=rp.rig)
            glat.append((time.perf_counter() - t0) * 1e3)
        lat_a = np.array(lat)
        rows.append({'subset': name, 'track_p50_ms': float(np.percentile(lat_a, 50)),
                     'track_p99_ms': float(np.percentile(lat_a, 99)), 'track_mean_ms': float(lat_a.mean()),
                     'global_p50_ms': float(np.percentile(glat, 50)), 'global_max_ms': float(np.max(glat))})
    head = (f'FLM latency, batch 1, {a.device}, torch threads {a.threads}, {a.iterations} iterations per tracking '
            f'update, {loc.global_refine} of {loc.global_candidates} global candidates refined, '
            f'model {Path(a.model).name} '
            f'({loc.meta.get("params", "?")} params), {a.updates} tracking updates / {a.global_calls} global calls '
            f'per subset, building {a.family} seed {seed}')
    lines = [head, '', '| subset | tracking p50 ms | tracking p99 ms | tracking mean ms | global p50 ms | global max ms |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["subset"]} | {r["track_p50_ms"]:.2f} | {r["track_p99_ms"]:.2f} | {r["track_mean_ms"]:.2f} '
                     f'| {r["global_p50_ms"]:.0f} | {r["global_max_ms"]:.0f} |')
    text = '\n'.join(lines)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'model_latency.md').write_text(text + '\n')
    (out / 'model_latency.json').write_text(json.dumps({'header': head, 'rows': rows}, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
