#!/usr/bin/env python3
"""Throughput of the ROS message <-> numpy conversions in flm_ros.conversions, on one CPU core.

Times each direction separately (median and p99 of single conversions, milliseconds) for a PointCloud2 of
--points points with x y z intensity ring time, and a LaserScan of --beams beams with intensities, and says
whether each median (and p99) is under --target-ms.

    python bench/conversions.py                # 64k points, 1080 beams, 300 repeats
    python bench/conversions.py --repeat 1000 --cpu 1

Exit status 0, or 1 with --strict when a median misses the target.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# One core: keep any BLAS/OpenMP pool single-threaded (must happen before numpy is imported).
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import numpy as np  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--repeat', type=int, default=300, help='timed conversions per case (default 300)')
    p.add_argument('--warmup', type=int, default=20, help='untimed conversions first (default 20)')
    p.add_argument('--points', type=int, default=65536, help='points in the cloud (default 65536)')
    p.add_argument('--beams', type=int, default=1080, help='beams in the scan (default 1080)')
    p.add_argument('--cpu', type=int, default=None, help='CPU to pin to (default: the lowest allowed one)')
    p.add_argument('--target-ms', type=float, default=1.0, help='per-conversion target (default 1.0 ms)')
    p.add_argument('--strict', action='store_true', help='exit 1 when a median misses the target')
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.points < 1 or args.beams < 2:
        p.error('--repeat and --points must be >= 1, --beams >= 2, --warmup >= 0')
    return args


def pin_one_core(cpu: int | None) -> int | None:
    """Restrict this process to one CPU; returns it (None where affinity is not supported)."""
    if not hasattr(os, 'sched_setaffinity'):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return cpu


def time_ms(fn, arg, repeat: int, warmup: int) -> np.ndarray:
    """(repeat,) wall times in ms of ``fn(arg)``."""
    for _ in range(warmup):
        fn(arg)
    out = np.empty(repeat)
    clock = time.perf_counter_ns
    for i in range(repeat):
        t0 = clock()
        fn(arg)
        out[i] = (clock() - t0) * 1e-6
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_core(args.cpu)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from rclpy.serialization import deserialize_message, serialize_message

    from flm_core.measurements import LaserScan2D, PointCloud
    from flm_ros import conversions as cv

    rng = np.random.default_rng(0)
    n = args.points
    cloud = PointCloud(stamp=1.7e9, frame_id='lidar', xyz=rng.normal(0, 20, (n, 3)).astype(np.float32),
                       intensity=rng.uniform(0, 255, n).astype(np.float32),
                       ring=(np.arange(n) % 128).astype(np.uint16),
                       time=np.linspace(0.0, 0.1, n, dtype=np.float32))
    beams = args.beams
    scan = LaserScan2D(stamp=1.7e9, frame_id='laser',
                       angles=(-np.pi + np.arange(beams) * (2 * np.pi / beams)).astype(np.float32),
                       ranges=rng.uniform(0.1, 30.0, beams).astype(np.float32), range_min=0.05, range_max=30.0,
                       intensities=rng.uniform(0, 1000, beams).astype(np.float32))
    # Messages as a subscriber gets them: through CDR, so their buffers are what rclpy hands over.
    cloud_msg = deserialize_message(serialize_message(cv.cloud_to_msg(cloud)), cv.PointCloud2)
    scan_msg = deserialize_message(serialize_message(cv.scan_to_msg(scan)), cv.LaserScan)

    cases = [
        (f'PointCloud2 -> PointCloud ({n} pts, xyz+i+ring+t)', cv.cloud_from_msg, cloud_msg),
        (f'PointCloud -> PointCloud2 ({n} pts, xyz+i+ring+t)', cv.cloud_to_msg, cloud),
        (f'LaserScan -> LaserScan2D ({beams} beams)', cv.scan_from_msg, scan_msg),
        (f'LaserScan2D -> LaserScan ({beams} beams)', cv.scan_to_msg, scan),
    ]
    print(f'flm_ros.conversions throughput: numpy {np.__version__}, CPU {cpu if cpu is not None else "?"} only, '
          f'{args.repeat} repeats after {args.warmup} warm-up, target {args.target_ms:g} ms')
    width = max(len(c[0]) for c in cases)
    print(f'{"conversion":<{width}}  {"median ms":>9}  {"p99 ms":>7}  {"per s":>7}  target')
    missed = False
    for name, fn, arg in cases:
        t = time_ms(fn, arg, args.repeat, args.warmup)
        med, p99 = float(np.median(t)), float(np.percentile(t, 99))
        ok = med < args.target_ms
        missed |= not ok
        verdict = ('met' if p99 < args.target_ms else 'met (median; p99 over)') if ok else 'MISSED'
        print(f'{name:<{width}}  {med:9.3f}  {p99:7.3f}  {1e3 / med:7.0f}  {verdict}')
    print('target met' if not missed else f'target MISSED (median over {args.target_ms:g} ms)')
    return 1 if (missed and args.strict) else 0


if __name__ == '__main__':
    sys.exit(main())
