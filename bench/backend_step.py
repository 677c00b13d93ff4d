"""Model step time of each inference back end (torch / ONNX Runtime) on this machine, with the shipped model: one
network pass on a real tracking token batch (batch 1), one tracking update through ``Localizer.localize``
(preprocessing + up to ``iterations`` passes) and one global localization (128 candidates), at the node's default
of 1 inference thread (and more with --threads). Prints a table; the back ends' outputs are compared too.

    .venv/bin/python bench/backend_step.py                       # 300 steps, 1 thread, cpu
    .venv/bin/python bench/backend_step.py --steps 500 --threads 1 2 --device cuda
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario  # noqa: E402
from flm_core.model.inference import DEFAULT_MODEL, Localizer  # noqa: E402
from flm_core.model.replay import ScenarioReplay  # noqa: E402
from flm_core.model.tokens import prepare, tokenize  # noqa: E402


def _ms(samples: list[float]) -> str:
    a = np.asarray(samples) * 1e3
    return f'{np.percentile(a, 50):.2f} / {np.percentile(a, 99):.2f}'


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=str(DEFAULT_MODEL), help='model path (NAME.pt; NAME.onnx lies beside it)')
    ap.add_argument('--steps', type=int, default=300, help='network passes and tracking updates per back end')
    ap.add_argument('--global-calls', type=int, default=5, help='global localizations per back end')
    ap.add_argument('--threads', type=int, nargs='+', default=[1], help='intra-op thread counts to measure')
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    a = ap.parse_args(argv)
    backends = [b for b, mod in (('torch', 'torch'), ('onnx', 'onnxruntime')) if importlib.util.find_spec(mod)]
    cfg = ScenarioConfig(duration=20.0)
    cfg.building.families = ('office',)
    cfg.motion.kidnap_prob = 0.0
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.depth.enabled = True
    rp = ScenarioReplay(generate_scenario(cfg, evaluation_seeds(1, offset=900)[0]))
    stamps = np.linspace(2.0, rp.duration - 0.1, a.steps)
    rows, outs = [], {}
    for threads in a.threads:
        for name in backends:
            loc = Localizer.load(a.model, device=a.device, backend=name, threads=threads)
            index = loc.map_index(rp.site)
            t = float(stamps[len(stamps) // 2])
            frame = prepare(rp.window(t, 1.2), rp.site, t, rp.rig, loc.tokens_cfg, index)
            tok = tokenize(frame, index, rp.truth(t), np.diag([0.04, 0.04, 0.01]), loc.tokens_cfg)
            for _ in range(10):  # warm-up
                loc.forward(tok)
            net = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                outs[name] = loc.forward(tok)
                net.append(time.perf_counter() - t0)
            upd = [loc.localize(rp.window(float(s), 1.2), rp.site, float(s),
                                rp.truth(float(s)) + np.array([0.1, -0.1, 0.03]), np.diag([0.04, 0.04, 0.01]),
                                rig=rp.rig).latency for s in stamps]
            glob = [loc.localize(rp.window(float(s), 2.0), rp.site, float(s), rig=rp.rig).latency
                    for s in np.linspace(3.0, rp.duration - 0.1, a.global_calls)]
            rows.append(f'| {name} | {loc.device} | {threads} | {tok.n} | {_ms(net)} | {_ms(upd)} | '
                        f'{np.median(glob) * 1e3:.0f} |')
    print(f'FLM step time per back end, model {Path(a.model).name}, {a.steps} steps, scenario office seed '
          f'{evaluation_seeds(1, offset=900)[0]}, every sensor\n')
    print('| back end | device | threads | tokens | network pass p50 / p99 ms | tracking update p50 / p99 ms '
          '| global (128 candidates) p50 ms |')
    print('|---|---|---|---|---|---|---|')
    print('\n'.join(rows))
    if len(outs) == 2:
        diff = max(float(np.abs(x - y).max()) for x, y in zip(outs['torch'], outs['onnx']))
        print(f'\nlargest difference between the back ends\' network outputs: {diff:.2e}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
