#!/usr/bin/env python3
"""Reliability figures: the fault matrix on the real node over DDS, and an accelerated soak.

1. The matrix (bench/faultlab, run by ``matrix.run_matrix``): a generated scenario played to a fresh
   ``flm_localizer`` process in sim time (3x real time, storms, huge messages, the kidnap and the bag loop at real
   time) with every fault case on one timeline, the model file deleted after configure, then lifecycle checks.
   Writes faults.json (every case's checks with what was measured), record.pkl (what was sent and what came back)
   and node.log; prints the case table and: cases run, crashes, peak RSS, max time to recover, max pose jump on
   recovery, messages rejected by reason.
2. The soak: one simulated hour (``--soak-hours``) replayed as fast as possible through the ROS-free pipeline the
   node runs (flm_core.pipeline via make_pipeline, as ``flm-eval`` offline; the node over DDS could not replay an
   hour faster than real time on this machine), with dropouts; RSS sampled every simulated minute; prints the
   samples and the slope (target: flat).

    python bench/faults.py                       # both (about 2 + 10 minutes on 2 loaded cores)
    python bench/faults.py --no-soak             # the matrix only (what test/test_faults.py runs)
    python bench/faults.py --no-soak --cases drop_scan,kidnap --trained no
    python bench/faults.py --no-matrix --soak-hours 0.25
    python bench/faults.py --no-soak --param model.refine=true   # a node parameter overridden (repeatable)

The model is the shipped checkpoint when it exists, else a freshly initialised network (then the checks that need
a model which localizes are skipped; the table says so). Exit status 0, or 1 when a case failed, the node crashed
or the soak's RSS was not flat.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# torch single-threaded (on a loaded 2-core machine its default pool made model steps ~100x slower), and the Fast DDS
# profile that lets this process publish the multi-MB messages: both before torch/rclpy are imported.
for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ.setdefault(_var, '1')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.faultlab.cases import default_cases  # noqa: E402
from bench.faultlab.inject import large_data_profile  # noqa: E402
from bench.faultlab.matrix import run_matrix  # noqa: E402
from bench.faultlab.soak import soak  # noqa: E402

os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(large_data_profile()))
os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-faults-roslog-'))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seed', type=int, default=5, help='scenario seed (default 5)')
    p.add_argument('--rate', type=float, default=3.0, help='matrix: sim seconds per wall second (default 3)')
    p.add_argument('--clock-scale', default='auto',
                   help="matrix: slow the clock by this factor in (0, 1]; 'auto' (default): in proportion to the CPU "
                        'other processes keep busy (1 on an idle machine; the cases are judged in sim time)')
    p.add_argument('--model', default=None, help='TorchScript model (default: the shipped one, else untrained)')
    p.add_argument('--trained', choices=('auto', 'yes', 'no'), default='auto',
                   help='matrix: run the checks that need a model that localizes (auto: when the shipped one is used)')
    p.add_argument('--cases', default='', help='matrix: comma-separated case names (default: all)')
    p.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                   help='matrix: a node parameter on top of config/flm.yaml and the matrix\'s own (the value is read '
                        'as YAML: true, 2.5, text); repeatable, e.g. --param model.refine=true')
    p.add_argument('--out', type=Path, default=None, help='folder for faults.json, soak.json, node.log')
    p.add_argument('--no-matrix', action='store_true', help='skip the fault matrix')
    p.add_argument('--no-soak', action='store_true', help='skip the soak')
    p.add_argument('--soak-hours', type=float, default=1.0, help='simulated hours of the soak (default 1)')
    p.add_argument('--soak-full-sensors', action='store_true',
                   help='soak with the 3D lidar and depth camera too (slower)')
    args = p.parse_args(argv)
    if args.rate <= 0 or args.soak_hours <= 0:
        p.error('--rate and --soak-hours must be > 0')
    try:
        args.param = parse_params(args.param)
    except ValueError as e:
        p.error(f'--param: {e}')
    try:
        args.clock_scale = None if args.clock_scale == 'auto' else float(args.clock_scale)
    except ValueError:
        p.error(f"--clock-scale: 'auto' or a number in (0, 1]; got {args.clock_scale!r}")
    if args.clock_scale is not None and not 0.0 < args.clock_scale <= 1.0:
        p.error(f'--clock-scale must be in (0, 1]; got {args.clock_scale}')
    known = [c.name for c in default_cases()]
    unknown = [c for c in args.cases.split(',') if c and c not in known]
    if unknown:
        p.error(f'--cases: unknown {unknown}; the cases are {", ".join(known)}')
    return args


def parse_params(items: list[str]) -> dict[str, Any]:
    """{name: value} of 'NAME=VALUE' strings, each value read as YAML (true, 3, 0.5, text). Names are checked by the
    node itself (an unknown one fails its configure, which the matrix reports)."""
    import yaml  # noqa: PLC0415

    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not name.strip():
            raise ValueError(f'{item!r} is not NAME=VALUE')
        out[name.strip()] = yaml.safe_load(value)
    return out


def _fmt(v: float | None, unit: str) -> str:
    return 'n/a' if v is None else f'{v:.2f} {unit}'


def print_report(report: dict[str, Any]) -> None:
    """The case table and the headline figures of a matrix report (:func:`bench.faultlab.matrix.run_matrix`)."""
    f, m = report['figures'], report['meta']
    print(report['table'])
    print()
    kind = 'trained' if m['trained'] else 'untrained: the checks that need a model that localizes are skipped'
    print(f'model: {m["model"]} ({kind})'
          + (f'; parameters: ' + ', '.join(f'{k}={v}' for k, v in m['params'].items()) if m.get('params') else ''))
    print(f'cases run: {f["cases"]}   failed: {", ".join(f["failed"]) or "none"}   crashes: {f["crashes"]}')
    print(f'peak RSS: {f["peak_rss_mb"]:.0f} MB   max time to recover: '
          f'{_fmt(f["max_recover_s"], "s")} ({f.get("max_recover_case")}; relocalization: '
          + ', '.join(f'{n} {_fmt(v, "s")}' for n, v in f.get('relocalize_s', {}).items()) + ')   '
          f'max pose jump on recovery: {_fmt(f["max_jump_m"], "m")} ({f.get("max_jump_case")})')
    print('messages rejected by reason: ' + ', '.join(f'{k} {v}' for k, v in f['rejected'].items()))
    print(f'{m["sim_s"]:.0f} s of sim time, {m["messages"]} messages, played in {m["play_wall_s"]:.0f} s '
          f'({m["wall_s"]:.0f} s in all); clock scale {m["clock_scale"]:.2f}'
          + (f' (other processes kept {m["busy_cores"]:.1f} cores busy)' if m.get('busy_cores') is not None else ''))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix='flm-bench-faults-'))
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda s: print(s, file=sys.stderr, flush=True))
    rc = 0
    if not args.no_matrix:
        trained = {'auto': None, 'yes': True, 'no': False}[args.trained]
        report = run_matrix(out, args.seed, args.rate, args.model, trained,
                            [c for c in args.cases.split(',') if c] or None, progress=say,
                            params=args.param, scale=args.clock_scale)
        print('== fault matrix (node process over DDS)')
        print_report(report)
        print(f'report: {out / "faults.json"}')
        rc = 0 if not report['figures']['failed'] and not report['figures']['crashes'] else 1
    if not args.no_soak:
        s = soak(args.soak_hours, args.seed, args.model, full_sensors=args.soak_full_sensors, progress=say)
        (out / 'soak.json').write_text(json.dumps(s, indent=1))
        print(f'\n== soak: {s["sim_s"] / 3600:.2f} simulated hours through the pipeline (offline, no DDS), '
              f'{s["laps"]} laps of a generated scenario, {s["messages_dropped"]} messages dropped out')
        print(f'{"sim min":>8} {"wall s":>8} {"RSS MB":>8} {"buffered":>9}')
        for row in s['samples'][::max(1, len(s['samples']) // 15)] + s['samples'][-1:]:
            print(f'{row["sim_min"]:>8.0f} {row["wall_s"]:>8.0f} {row["rss_mb"]:>8.1f} {row["buffered"]:>9d}')
        flat = abs(s['rss_slope_mb_per_h']) <= 20.0
        print(f'RSS {s["rss_first_mb"]:.0f} -> {s["rss_last_mb"]:.0f} MB (peak {s["rss_peak_mb"]:.0f}); slope over the '
              f'second half {s["rss_slope_mb_per_h"]:+.1f} MB per simulated hour ({"flat" if flat else "NOT flat"}, '
              'target |slope| <= 20)')
        print(f'{s["steps"]} pipeline steps in {s["wall_s"]:.0f} s ({s["sim_s"] / max(s["wall_s"], 1e-9):.1f}x real '
              f'time); model latency p50 {s["model_latency_ms"]["p50"]:.1f} ms, p99 {s["model_latency_ms"]["p99"]:.1f} '
              f'ms; most buffered {s["max_buffered"]} measurements; filter event log {s["filter_events"]}; '
              f'final state {s["state"]}; model {s["model"]}')
        rc = rc or (0 if flat else 1)
    print(f'\noutputs: {out}')
    return rc


if __name__ == '__main__':
    sys.exit(main())
