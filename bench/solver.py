"""The pose solved, not regressed: the FLM with the geometric solver behind it against the plain FLM.

    .venv/bin/python bench/solver.py [--data ../shared/data] [--only NAMES] [--intel-seconds 300] [--generated]
                                     [--variants flm,refined] [--out out/solver]

Each data set is replayed offline through the node's pipeline (``flm_ros.evaluate.replay_offline``, the same as
``flm-eval``), once per variant:

- ``flm``: the shipped model alone as the pose source (``model.refine: false``);
- ``refined``: ``Refined(FLM)`` (:mod:`flm_core.estimation.refine`, ``model.refine: true``): the model's pose
  solved against the window's measurements (scan points against the map's distance field, UWB ranges with learnt
  biases) by :mod:`flm_core.estimation.solver`;
- ``solver``: ``Refined(None)``: the solver alone (tracking from the filter's prior; global only from UWB).

Data sets: the real recordings under --data (``lias_uwb_mid_tag0``, ``lias_uwb_fast_tag1``: UWB only, with the naive
per-frame multilateration of ``bench/real_data.py`` as the reference; ``intel_lab``: 2D lidar + odometry, its first
``--intel-seconds`` s, 0 = the whole 44 min) and, with --generated, one generated building of the family held out of
training (flm-demo's scenario: 2D lidar, UWB, IMU, odometry).

Printed per data set and variant: APE RMSE and median (m), the share of estimates more than 1 m off (estimates exist
only after the first fix), mean NEES (3 dof; 3 is consistent), the solver's wall time per update (p50 / p95 ms) and
what the refinement did (solved / inconsistent / nothing new). One heavy run at a time: the variants run one after
the other.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'bench'))

VARIANTS = ('flm', 'refined', 'solver')


def _params(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from flm_ros import params as P  # noqa: PLC0415
    from flm_ros.bringup import default_params_file  # noqa: PLC0415
    from flm_ros.evaluate import TABLE  # noqa: PLC0415

    p = P.from_yaml(str(default_params_file()), 'flm_localizer', TABLE)
    p.update(extra or {})
    return p


def _source(variant: str, p: dict[str, Any]) -> Any:
    from flm_core import config as C  # noqa: PLC0415
    from flm_core.estimation.refine import Refined  # noqa: PLC0415
    from flm_ros.evaluate import _log  # noqa: PLC0415

    cfg = C.load_config({**p, 'model.refine': False})       # the network alone; the variant adds the rest
    if variant == 'flm':
        return C.load_pose_source(cfg, _log)
    if variant == 'refined':
        return Refined(C.load_pose_source(cfg, _log), cfg.refine)
    if variant == 'solver':
        return Refined(None, cfg.refine)
    raise ValueError(f'unknown variant {variant!r}; expected some of {", ".join(VARIANTS)}')


def run(name: str, bag: Path, site_path: Path, gt_spec: str, variants: list[str], p: dict[str, Any],
        naive: Any = None) -> list[dict[str, Any]]:
    """Replay ``bag`` once per variant; one row of figures per variant."""
    from flm_core.evaluation.report import evaluate  # noqa: PLC0415
    from flm_core.site import load_site  # noqa: PLC0415
    from flm_ros.evaluate import replay_offline  # noqa: PLC0415

    site = load_site(site_path)
    rows = []
    for v in variants:
        src = _source(v, p)
        rep = replay_offline(bag, site, p, gt_spec, progress=True, source=src)
        ev = evaluate(v, rep.est, rep.gt, duration=rep.duration)
        m = ev.metrics
        times = np.array(getattr(src, 'solve_times', []) or [np.nan]) * 1e3
        lat = np.array(rep.latencies or [np.nan]) * 1e3
        rows.append({'data': name, 'variant': v, 'rmse': m['ape_m']['rmse'], 'median': m['ape_m']['median'],
                     'fail': m['failure_rate'], 'nees': m.get('nees_mean', float('nan')),
                     'yaw_rmse_deg': m['yaw_error_deg']['rmse'], 'estimates': m['estimates'],
                     'solver_ms_p50': float(np.nanpercentile(times, 50)),
                     'solver_ms_p95': float(np.nanpercentile(times, 95)),
                     'update_ms_p50': float(np.nanpercentile(lat, 50)),
                     'counts': dict(getattr(src, 'counts', {})), 'filter': rep.counts.get('filter', {}),
                     'events': rep.counts.get('events', {}), 'wall_s': rep.wall})
    if naive is not None and gt_spec.startswith('tum:'):
        from flm_core.evaluation.trajectory import read_tum  # noqa: PLC0415

        ev = evaluate('naive', naive, read_tum(gt_spec[4:]))
        rows.append({'data': name, 'variant': 'naive multilateration', 'rmse': ev.metrics['ape_m']['rmse'],
                     'median': ev.metrics['ape_m']['median'], 'fail': ev.metrics['failure_rate'],
                     'nees': float('nan'), 'yaw_rmse_deg': float('nan'), 'estimates': ev.metrics['estimates']})
    return rows


def _f(v: Any, fmt: str = '{:.3f}') -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and np.isfinite(v) else '-'


def table(rows: list[dict[str, Any]]) -> str:
    out = ['| data | variant | APE RMSE [m] | x naive | median [m] | > 1 m | NEES | yaw RMSE [deg] '
           '| solver ms p50 / p95 | update ms p50 | refinement | estimates |', '|---' * 12 + '|']
    naive = {r['data']: r['rmse'] for r in rows if r['variant'] == 'naive multilateration'}
    for r in rows:
        ratio = r['rmse'] / naive[r['data']] if r['data'] in naive else float('nan')
        c = r.get('counts') or {}
        what = ', '.join(f'{k} {v}' for k, v in sorted(c.items())) or '-'
        out.append(f"| {r['data']} | {r['variant']} | {_f(r['rmse'])} | {_f(ratio, '{:.2f}')} | {_f(r['median'])} | "
                   f"{_f(100 * r['fail'], '{:.1f} %')} | {_f(r['nees'], '{:.2f}')} | "
                   f"{_f(r['yaw_rmse_deg'], '{:.1f}')} | {_f(r.get('solver_ms_p50'), '{:.2f}')} / "
                   f"{_f(r.get('solver_ms_p95'), '{:.2f}')} | {_f(r.get('update_ms_p50'), '{:.1f}')} | {what} | "
                   f"{r['estimates']} |")
    return '\n'.join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='solver.py', description=__doc__.split('\n\n')[0],
                                 epilog=__doc__.split('\n\n', 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', type=Path, default=ROOT.parent / 'shared' / 'data', help='folder of real data sets')
    ap.add_argument('--only', default='lias_uwb_mid_tag0,lias_uwb_fast_tag1,intel_lab',
                    help='comma-separated real data sets (default: %(default)s; empty: none)')
    ap.add_argument('--intel-seconds', type=float, default=300.0,
                    help='replay the first S s of intel_lab (0: the whole log; default %(default)s)')
    ap.add_argument('--generated', action='store_true', help='also one generated held-out building (flm-demo)')
    ap.add_argument('--duration', type=float, default=60.0, help='s of the generated building (default 60)')
    ap.add_argument('--variants', default='flm,refined', help=f'comma-separated, of {", ".join(VARIANTS)}')
    ap.add_argument('--out', type=Path, default=ROOT / 'out' / 'solver', help='output folder for results.json/md')
    ns = ap.parse_args(argv)
    variants = [v for v in ns.variants.split(',') if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f'unknown variants {bad}; expected some of {VARIANTS}')
    os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-roslog-'))
    from flm_core.site import load_site  # noqa: PLC0415
    from flm_ros.bagio import write_slice  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    for name in [n for n in ns.only.split(',') if n]:
        d = ns.data / name
        if not (d / 'bag').is_dir():
            print(f'solver.py: no data set {d}: skipped', file=sys.stderr)
            continue
        bag = d / 'bag'
        label = name
        if name == 'intel_lab' and ns.intel_seconds > 0:
            bag = Path(tempfile.mkdtemp(prefix='flm-solver-')) / 'slice'
            write_slice(d / 'bag', bag, ns.intel_seconds)
            label = f'intel_lab (first {ns.intel_seconds:.0f} s)'
        naive = None
        site = load_site(d / 'site.yaml')
        if site.anchors:
            from real_data import naive_multilateration  # noqa: PLC0415 (bench/real_data.py)

            naive = naive_multilateration(bag, site)
        rows += run(label, bag, d / 'site.yaml', f'tum:{d / "ground_truth.tum"}', variants, _params(), naive)
        print(table(rows), flush=True)
    if ns.generated:
        from flm_core.datagen.bagwriter import write_bag  # noqa: PLC0415
        from flm_core.datagen.config import BuildingConfig, ScenarioConfig  # noqa: PLC0415
        from flm_core.datagen.scenario import generate_scenario  # noqa: PLC0415
        from flm_core.datagen.seeds import EVAL_SEED_MIN  # noqa: PLC0415
        from flm_ros.demo import HELD_OUT_FAMILY  # noqa: PLC0415

        tmp = Path(tempfile.mkdtemp(prefix='flm-solver-gen-'))
        cfg = ScenarioConfig(duration=ns.duration, building=BuildingConfig(families=(HELD_OUT_FAMILY,)))
        bag = write_bag(generate_scenario(cfg, EVAL_SEED_MIN), tmp, storage='mcap')
        rows += run(f'generated {HELD_OUT_FAMILY} {EVAL_SEED_MIN}', bag, tmp / 'site.yaml', '/ground_truth/pose',
                    variants, _params())
    text = table(rows)
    ns.out.mkdir(parents=True, exist_ok=True)
    (ns.out / 'results.md').write_text(text + '\n')
    (ns.out / 'results.json').write_text(json.dumps(rows, indent=2, default=float))
    print('\n' + text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
