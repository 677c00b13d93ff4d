"""``flm-gen``: generate scenarios as training shards and/or rosbag2 bags (entry point: flm_core.datagen.cli:main)."""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import signal
import sys
from pathlib import Path
from typing import Any

from .config import ANCHOR_LAYOUTS, FAMILIES, REALISM_APPLY, ROBOTS, SENSORS, ConfigError, ScenarioConfig
from .seeds import EVAL_SEED_MAX, EVAL_SEED_MIN, SeedError, check_training_seeds

FORMATS = ('shards', 'mcap', 'sqlite3')

EPILOG = f"""
output layout (under --out):
  manifest.json                 seed(s), every distribution parameter, completed shards, 'complete': true/false
  shard-000000.npz ...          one per scenario (--format shards; layout in flm_core/datagen/shards.py)
  <name>/bag_mcap|bag_sqlite3   rosbag2 (metadata v9, Jazzy/Kilted) + <name>/site.yaml (map_server map + anchors)
  previews/<name>.png           building, anchors and trajectory (--preview)

seeds: scenario k uses seed --seed + k. Seeds {EVAL_SEED_MIN}..{EVAL_SEED_MAX} are reserved for evaluation and
refused unless --evaluation is given (then every seed must lie in that range; default start {EVAL_SEED_MIN}).
The same config and seed always give byte-identical shards, whatever --workers.

realism (--realism; default 'evaluation': evaluation seeds only, training shards keep the exact world): the site map
comes from a simulated mapping run (SLAM drift, blur, unknown cells) of the world as it was then; furniture moved,
removed or added and doors closed differently since; people never in the map; see-through glass; shared UWB frame
stamps, anchor biases of both signs, coplanar anchors, tilted platforms, z-down IMUs, a tag moving up and down
(per-scenario draws; all parameters under "realism" in --config, see flm_core/datagen/config.py). --keyframes N
keeps only one lidar scan every ~N s (a keyframe log).

examples:
  flm-gen --out data/train --count 100 --duration 120 --workers 2
  flm-gen --out data/bags --family office warehouse --count 2 --duration 60 --format mcap --preview
  flm-gen --out data/eval --evaluation --count 20 --sensors lidar2d,uwb,imu,odom,lidar3d,depth
  flm-gen --out data/eval_exact --evaluation --count 20 --realism never --format mcap
"""


def _pair(text: str, cast: type = float) -> tuple:
    parts = text.replace(':', '-').split('-') if cast is int else text.split(':')
    if len(parts) == 1:
        return (cast(parts[0]), cast(parts[0]))
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f'expected VALUE or LO{":" if cast is float else "-"}HI, got {text!r}')
    return (cast(parts[0]), cast(parts[1]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='flm-gen', formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description='Generate localization scenarios (procedural buildings, UWB anchors, robot motion, sensors, '
                    'moving people) as training shards and/or playable rosbag2 bags.')
    p.add_argument('--out', '-o', required=True, type=Path, help='output directory (created)')
    p.add_argument('--count', '-n', type=int, default=1, help='number of scenarios (default 1)')
    p.add_argument('--seed', type=int, default=None, help='first seed (default 0, or the first evaluation seed)')
    p.add_argument('--evaluation', action='store_true', help='generate reserved evaluation seeds')
    p.add_argument('--duration', '-d', type=float, default=None, help='simulated seconds per scenario (default 60)')
    p.add_argument('--family', nargs='+', choices=FAMILIES, default=None,
                   help=f'building families to draw from (default all: {" ".join(FAMILIES)})')
    p.add_argument('--size', type=str, default=None, metavar='X[:X2]xY[:Y2]',
                   help='building size range in metres, e.g. 20x15 or 10:80x10:60 (default: per family)')
    p.add_argument('--sensors', type=str, default=None,
                   help=f'comma-separated sensors to enable (default lidar2d,uwb,imu,odom; all: {",".join(SENSORS)})')
    p.add_argument('--anchors', type=lambda s: _pair(s, int), default=None, metavar='N[-M]',
                   help='number of UWB anchors, fixed or a range (default 4-8)')
    p.add_argument('--anchor-layout', nargs='+', choices=ANCHOR_LAYOUTS, default=None, help='anchor layouts to draw from')
    p.add_argument('--robot', nargs='+', choices=ROBOTS, default=None, help='robot kinematics to draw from')
    p.add_argument('--people', type=lambda s: _pair(s, int), default=None, metavar='N[-M]',
                   help='number of moving people (default 0-3)')
    p.add_argument('--kidnap-prob', type=float, default=None, help='probability that a scenario has kidnaps')
    p.add_argument('--lidar-beams', type=int, default=None, help='2D lidar beams (90..2048, default 360)')
    p.add_argument('--rate', action='append', default=[], metavar='SENSOR=HZ',
                   help='override a sensor rate, e.g. --rate imu=400 (repeatable)')
    p.add_argument('--realism', choices=REALISM_APPLY, default=None,
                   help="which seeds get the real-world dimensions (mapped map, changed world, sensor habits): "
                        "'evaluation' (default), 'always' (training shards too) or 'never'")
    p.add_argument('--keyframes', type=float, default=None, metavar='SEC',
                   help='where realism applies: keep one lidar scan every ~SEC s, with occasional longer gaps')
    p.add_argument('--window', type=float, default=None, help='training window length, s (default 10)')
    p.add_argument('--stride', type=float, default=None, help='training window stride, s (default 10)')
    p.add_argument('--format', '-f', type=str, default='shards',
                   help=f'comma-separated outputs among {",".join(FORMATS)} (default shards)')
    p.add_argument('--compress', action='store_true', help='deflate shard arrays (smaller, slower)')
    p.add_argument('--config', type=Path, default=None,
                   help='YAML/JSON file with ScenarioConfig fields (as in manifest.json "config"); flags override it')
    p.add_argument('--preview', action='store_true', help='write previews/<name>.png for each scenario')
    p.add_argument('--workers', '-j', type=int, default=1, help='worker processes (default 1)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def config_from_args(a: argparse.Namespace) -> ScenarioConfig:
    if a.config is not None:
        import yaml  # noqa: PLC0415

        if not a.config.is_file():
            raise ConfigError(f'--config: file not found: {a.config}')
        cfg = ScenarioConfig.from_dict(yaml.safe_load(a.config.read_text()) or {})
    else:
        cfg = ScenarioConfig()
    if a.duration is not None:
        cfg.duration = a.duration
    if a.family:
        cfg.building.families = tuple(a.family)
    if a.size:
        try:
            xs, ys = a.size.lower().split('x')
            cfg.building.size_x, cfg.building.size_y = _pair(xs), _pair(ys)
        except (ValueError, argparse.ArgumentTypeError):
            raise ConfigError(f'--size: expected e.g. 20x15 or 10:80x10:60, got {a.size!r}') from None
    if a.sensors is not None:
        names = [s.strip() for s in a.sensors.split(',') if s.strip()]
        bad = [s for s in names if s not in SENSORS]
        if bad:
            raise ConfigError(f'--sensors: unknown {bad}; expected some of {list(SENSORS)}')
        for s in SENSORS:
            getattr(cfg.sensors, s).enabled = s in names
    if a.anchors is not None:
        cfg.anchors.count = a.anchors
    if a.anchor_layout:
        cfg.anchors.layouts = tuple(a.anchor_layout)
    if a.robot:
        cfg.motion.robots = tuple(a.robot)
    if a.people is not None:
        cfg.dynamics.people = a.people
    if a.kidnap_prob is not None:
        cfg.motion.kidnap_prob = a.kidnap_prob
    if a.lidar_beams is not None:
        cfg.sensors.lidar2d.beams = a.lidar_beams
    for r in a.rate:
        name, _, hz = r.partition('=')
        if name not in SENSORS:
            raise ConfigError(f'--rate: unknown sensor {name!r}; expected one of {list(SENSORS)}')
        try:
            getattr(cfg.sensors, name).rate = float(hz)
        except ValueError:
            raise ConfigError(f'sensors.{name}.rate: expected a number, got {hz!r}') from None
    if a.realism is not None:
        cfg.realism.apply = a.realism
    if a.keyframes is not None:
        cfg.realism.habits.keyframe_interval = a.keyframes
    if a.window is not None:
        cfg.window = a.window
    if a.stride is not None:
        cfg.stride = a.stride
    return cfg.validate()


def _work(task: tuple[int, int, dict, str, list[str], bool, bool]) -> dict[str, Any]:
    """Generate one scenario and write its outputs (runs in a worker process)."""
    from .bagwriter import write_bag  # noqa: PLC0415
    from .preview import write_preview  # noqa: PLC0415
    from .scenario import generate_scenario  # noqa: PLC0415
    from .shards import write_shard  # noqa: PLC0415

    index, seed, cfg_d, out, formats, compress, preview = task
    cfg = ScenarioConfig.from_dict(cfg_d)
    sc = generate_scenario(cfg, seed)
    out_p = Path(out)
    rec: dict[str, Any] = {'index': index, 'seed': seed, 'name': sc.name, 'family': sc.building.family}
    if 'shards' in formats:
        rec.update(write_shard(sc, out_p / f'shard-{index:06d}.npz', compress))
    for st in ('mcap', 'sqlite3'):
        if st in formats:
            bag = write_bag(sc, out_p / sc.name, st)
            rec.setdefault('bags', []).append(str(bag.relative_to(out_p)))
            rec['site'] = f'{sc.name}/site.yaml'
    if preview:
        rec['preview'] = str(write_preview(sc, out_p / 'previews' / f'{sc.name}.png').relative_to(out_p))
    return rec  # no wall times: the manifest is byte-identical for the same config and seeds


def _raise_interrupt(signum: int, frame: Any) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        if a.count < 1:
            raise ConfigError(f'--count: must be >= 1, got {a.count}')
        if a.workers < 1:
            raise ConfigError(f'--workers: must be >= 1, got {a.workers}')
        formats = [f.strip() for f in a.format.split(',') if f.strip()]
        bad = [f for f in formats if f not in FORMATS]
        if bad or not formats:
            raise ConfigError(f'--format: unknown {bad}; expected some of {list(FORMATS)}')
        cfg = config_from_args(a)
        if a.evaluation:
            start = EVAL_SEED_MIN if a.seed is None else a.seed
            if start < EVAL_SEED_MIN or start + a.count - 1 > EVAL_SEED_MAX:
                raise SeedError(f'--seed: with --evaluation the seeds must lie in [{EVAL_SEED_MIN}, {EVAL_SEED_MAX}], '
                                f'got [{start}, {start + a.count - 1}]')
            seeds = list(range(start, start + a.count))
        else:
            seeds = list(check_training_seeds(0 if a.seed is None else a.seed, a.count, name='--seed'))
    except (ConfigError, SeedError) as e:
        parser.exit(2, f'flm-gen: error: {e}\n')
    from .shards import Manifest  # noqa: PLC0415

    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob('.*.tmp'):
        stale.unlink()
    cfg_d = cfg.to_dict()
    manifest = Manifest(out, cfg_d, seeds, a.evaluation, extra={'formats': formats})
    tasks = [(i, s, cfg_d, str(out), formats, a.compress, a.preview) for i, s in enumerate(seeds)]
    from tqdm import tqdm  # noqa: PLC0415

    bar = tqdm(total=len(tasks), unit='scn', desc='flm-gen', disable=a.no_progress, file=sys.stderr)
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = None
    status, error = 'complete', None
    try:
        if a.workers == 1:
            for t in tasks:
                manifest.add(_work(t))
                bar.update(1)
        else:
            pool = mp.get_context('spawn').Pool(a.workers)
            for rec in pool.imap_unordered(_work, tasks):
                manifest.add(rec)
                bar.update(1)
            pool.close()
            pool.join()
    except KeyboardInterrupt:
        status = 'interrupted'
    except Exception as e:  # noqa: BLE001 - recorded in the manifest, then re-raised
        status, error = 'failed', f'{type(e).__name__}: {e}'
    finally:
        if pool is not None and status != 'complete':
            pool.terminate()
            pool.join()
        bar.close()
        signal.signal(signal.SIGTERM, old_term)
        if status != 'complete':
            recorded = {r.get('file') for r in manifest.data['shards']}
            for f in out.glob('shard-*.npz'):  # complete files whose record did not reach the manifest
                if f.name not in recorded:
                    f.unlink()
            for stale in out.glob('.*.tmp'):
                stale.unlink()
        manifest.finish(status, error)
    done = len(manifest.data['shards'])
    sim = sum(cfg.duration for _ in range(done))
    print(json.dumps({'status': status, 'scenarios': done, 'simulated_s': sim, 'out': str(out)}), file=sys.stderr)
    if status == 'failed':
        print(f'flm-gen: error: {error}', file=sys.stderr)
        return 1
    return 130 if status == 'interrupted' else 0


if __name__ == '__main__':
    sys.exit(main())
