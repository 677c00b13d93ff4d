"""Real recorded data: every data set under a folder, every applicable method side by side, one table.

    .venv/bin/python bench/real_data.py [--data ../shared/data] [--out out/real_data] [--seconds S] [--only NAME]

A data set is a folder with ``bag/`` (rosbag2), ``site.yaml`` and ``ground_truth.tum`` (see ../shared/data/README.md).
For each one:

- ``flm-eval`` offline: the FLM as configured by default (its poses solved against the measurements,
  :mod:`flm_core.estimation.refine`; no initial pose: it localizes globally) and, with ``--compare``, the classical
  methods the site's sensors allow, started from the ground truth: on a map ``icp`` and ``amcl`` (both laser
  models), with UWB anchors ``uwb-ekf``;
- ``flm-network``: flm-eval again with ``model.refine: false`` (the network's poses and covariances as they are),
  also from no initial pose;
- with UWB anchors, the naive reference: one plain 2D least-squares fix per ranging frame
  (:func:`flm_core.estimation.multilateration.naive_fix`: the tag's height from /tf_static, no bias model, no
  outlier rejection, no filter; the tag's position taken as base_link's, since one tag does not observe the
  heading that its lever arm would need), and every method's RMSE as a multiple of it (``x naive``);
- the messages: read per sensor stream, and what became of them (buffered, or dropped and counted by reason);
  ``silent`` = read minus everything counted, which must be 0.

Prints a markdown table and writes ``results.md`` and ``results.json`` in --out (each flm-eval report in a folder
per data set). ``--seconds`` replays only the first S seconds of each bag (a slice written with
``flm_ros.bagio.write_slice``), for a quick look. Real data is for evaluation only: nothing here trains.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flm_core.estimation.multilateration import naive_fix  # noqa: E402
from flm_core.evaluation.report import evaluate  # noqa: E402
from flm_core.evaluation.trajectory import Trajectory, read_tum  # noqa: E402
from flm_core.site import Site, load_site  # noqa: E402
from flm_ros import conversions as conv  # noqa: E402
from flm_ros.bagio import messages, open_bag, write_slice  # noqa: E402
from flm_ros.bringup import params_file_with  # noqa: E402

UWB_TOPIC = '/uwb/ranges'


def datasets(root: Path) -> list[Path]:
    """The data set folders under ``root`` (those with a bag, a site file and a TUM ground truth)."""
    return sorted(d for d in root.iterdir() if (d / 'bag').is_dir() and (d / 'site.yaml').is_file()
                  and (d / 'ground_truth.tum').is_file())


def methods_for(site: Site) -> list[str]:
    """The classical methods a site's sensors allow (the FLM always runs)."""
    out = []
    if site.map is not None:
        out += ['icp', 'amcl']
    if site.anchors:
        out.append('uwb-ekf')
    return out


def naive_multilateration(bag: Path, site: Site, tag_frame: str = 'uwb_tag') -> Trajectory:
    """The naive reference trajectory (one fix per ranging frame = per shared stamp; see the module docstring)."""
    anchors = {a.id: np.asarray(a.position, float) for a in site.anchors}
    reader = open_bag(bag)
    problems: list[str] = []
    z = 0.0
    frames: dict[float, list[tuple[str, float]]] = {}
    for topic, _, msg in messages(reader, ['/tf_static', UWB_TOPIC], problems):
        if topic == '/tf_static':
            z = next((tr.transform.translation.z for tr in msg.transforms if tr.child_frame_id == tag_frame), z)
        elif msg.header.frame_id in anchors and np.isfinite(msg.range):
            frames.setdefault(conv.stamp_to_sec(msg.header.stamp), []).append((msg.header.frame_id, msg.range))
    reader.close()
    rows = []
    for t, rs in sorted(frames.items()):
        p = naive_fix(np.stack([anchors[a] for a, _ in rs]), np.array([r for _, r in rs]), z)
        if p is not None:
            rows.append((t, p[0], p[1]))
    a = np.array(rows).reshape(-1, 3)
    return Trajectory(a[:, 0], np.column_stack([a[:, 1:], np.zeros(len(a))]))


def run_eval(bag: Path, d: Path, out: Path, compare: list[str], params_file: Path | None = None) -> dict[str, Any]:
    """flm-eval offline on ``bag`` with ``compare`` (and a parameter file); its metrics.json (with the exit
    status)."""
    cmd = [sys.executable, '-m', 'flm_ros.evaluate', str(bag), '--site', str(d / 'site.yaml'),
           '--gt', f'tum:{d / "ground_truth.tum"}', '--out', str(out), '--no-progress']
    if params_file is not None:
        cmd += ['--params-file', str(params_file)]
    if compare:
        cmd += ['--compare', ','.join(compare)]
    rc = subprocess.run(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = json.loads((out / 'metrics.json').read_text()) if (out / 'metrics.json').is_file() else {}
    metrics['exit'] = rc.returncode
    metrics['stderr_tail'] = rc.stderr.strip().splitlines()[-5:]
    return metrics


def message_ledger(counts: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per stream: read, buffered, dropped by reason and 'silent' (read - buffered - dropped) from flm-eval's
    counts."""
    out = {}
    for stream, n in counts.get('read', {}).items():
        buf = counts.get('buffer', {}).get(stream, {})
        kept = buf.get('accepted', 0) + buf.get('reset', 0)
        dropped = {k: v for k, v in buf.items() if k not in ('accepted', 'reset', 'evicted')}
        dropped.update({r.split('.', 1)[1]: c for r, c in counts.get('rejections', {}).items()
                        if r.startswith(stream + '.') and not r.endswith('.decimated')})
        out[stream] = {'read': n, 'buffered': kept, **{f'dropped.{k}': v for k, v in dropped.items()},
                       'silent': n - kept - sum(dropped.values())}
    return out


def bench(d: Path, out: Path, seconds: float, model: str = '') -> dict[str, Any]:
    site = load_site(d / 'site.yaml')
    bag = d / 'bag'
    if seconds > 0:
        bag = Path(tempfile.mkdtemp(prefix='flm-real-')) / 'slice'
        write_slice(d / 'bag', bag, seconds)
    gt = read_tum(d / 'ground_truth.tum')
    chosen = {'model_path': model} if model else {}
    chosen_file = params_file_with(chosen, out / 'params_default.yaml') if model else None
    metrics = run_eval(bag, d, out / d.name, methods_for(site), chosen_file)
    rows = {name: m for name, m in metrics.get('methods', {}).items()}
    network = run_eval(bag, d, out / f'{d.name}_network', [],
                       params_file_with({**chosen, 'model.refine': False}, out / 'params_network.yaml'))
    if 'flm' in network.get('methods', {}):
        rows['flm-network'] = network['methods']['flm']
    if site.anchors:
        naive = naive_multilateration(bag, site)
        rows['naive-multilateration'] = evaluate('naive-multilateration', naive, gt).metrics
    ref = rows.get('naive-multilateration', {}).get('ape_m', {}).get('rmse')
    flm_counts = rows.get('flm', {}).get('counts', {})
    return {'dataset': d.name, 'exit': metrics.get('exit'), 'problems': metrics.get('problems', []),
            'naive_rmse': ref, 'methods': rows, 'messages': message_ledger(flm_counts)}


def _f(v: Any, fmt: str = '{:.3f}') -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and np.isfinite(v) else '-'


def table(results: list[dict[str, Any]]) -> str:
    lines = ['| data set | method | APE RMSE [m] | x naive | median [m] | fail (>1 m) | NEES | confidently wrong [s] '
             '| estimates |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        for name, m in r['methods'].items():
            ape = m.get('ape_m', {})
            ratio = ape.get('rmse', float('nan')) / r['naive_rmse'] if r['naive_rmse'] else float('nan')
            lines.append(f"| {r['dataset']} | {name} | {_f(ape.get('rmse'))} | {_f(ratio, '{:.2f}')} | "
                         f"{_f(ape.get('median'))} | {_f(100 * m.get('failure_rate', float('nan')), '{:.1f} %')} | "
                         f"{_f(m.get('nees_mean'), '{:.1f}')} | {_f(m.get('confidently_wrong_s'), '{:.1f}')} | "
                         f"{m.get('matched', '-')}/{m.get('estimates', '-')} |")
    lines += ['', '| data set | stream | read | buffered | dropped (by reason) | silent |', '|---|---|---|---|---|---|']
    for r in results:
        for stream, c in r['messages'].items():
            dropped = ', '.join(f'{k[8:]} {v}' for k, v in c.items() if k.startswith('dropped.') and v) or '-'
            lines.append(f"| {r['dataset']} | {stream} | {c['read']} | {c['buffered']} | {dropped} | {c['silent']} |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='real_data.py', description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', type=Path, default=ROOT.parent / 'shared' / 'data', help='folder of data sets')
    p.add_argument('--out', type=Path, default=ROOT / 'out' / 'real_data', help='output folder')
    p.add_argument('--seconds', type=float, default=0.0, help='replay only the first S s of each bag (0: all)')
    p.add_argument('--only', default='', help='comma-separated data set names (default: all)')
    p.add_argument('--model', default='', help='model file for the FLM rows (NAME.pt or NAME.onnx; default: the '
                   'shipped one)')
    ns = p.parse_args(argv)
    if not ns.data.is_dir():
        print(f'real_data.py: error: no data folder {ns.data} (give one with --data)', file=sys.stderr)
        return 2
    from tqdm import tqdm  # noqa: PLC0415

    sets = [d for d in datasets(ns.data) if not ns.only or d.name in ns.only.split(',')]
    results = [bench(d, ns.out, ns.seconds, ns.model) for d in tqdm(sets, desc='data sets', unit='set')]
    ns.out.mkdir(parents=True, exist_ok=True)
    text = table(results)
    (ns.out / 'results.md').write_text(text + '\n')
    (ns.out / 'results.json').write_text(json.dumps(results, indent=2, default=float))
    print(text)
    for r in results:
        for prob in r['problems']:
            print(f"{r['dataset']}: {prob}", file=sys.stderr)
    silent = sum(c['silent'] for r in results for c in r['messages'].values())
    print(f'\nmessages lost silently: {silent}; results in {ns.out}')
    return 0 if silent == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
