"""Classical baselines (and the FLM when a model is available) on held-out generated scenarios, in one table.

Scenarios: the reserved evaluation seeds (``flm_core.datagen.evaluation_seeds(n, offset=100)``, the same seeds and
family rotation as the 'unseen' group of ``bench/cross_scenario.py``), generated with the default configuration
plus the 3D lidar, without kidnapping (``--kidnap`` keeps datagen's default kidnap probability).

Every method starts from the same perturbed initial pose (0.3 m in a random direction, +-10 deg; Nav2's initial
covariance) at t = 0, receives the messages of its sensors in arrival order, and is evaluated at 10 Hz from 0.5 s on,
on its online estimate at that instant (what a consumer of its output would have had):

    amcl-lf / amcl-lf-tuned  Nav2 AMCL, likelihood-field model (Nav2's default; flm_core.estimation.mcl), odometry
                             + 2D lidar; Nav2 defaults / tuned set
    amcl-beam / amcl-beam-tuned  Nav2 AMCL, beam model (GPL PyPI ``amcl`` bindings, bench/amcl_beam.py; skipped when
                             not installed); Nav2 defaults / tuned set
    icp2d-eskf / icp3d-eskf  scan-to-map ICP + ESKF (IMU, odometry), 2D lidar vs occupancy map / 3D lidar vs point map
    uwb-eskf                 robust multilateration + ESKF (IMU, odometry)
    dead-reckoning           ESKF with IMU + odometry only (the floor)
    flm+eskf                 the FLM in the localizer pipeline (tracking at 5 Hz), all sensors - when a model exists
    pipeline(icp2d)          the same pipeline with the classical ICP pose source (checks the pipeline path)

Columns: ATE RMSE (m) and yaw RMSE (deg) pooled over all instants of all scenarios; fail = share of instants more
than 1 m off (no estimate counts as a failure); ANEES = mean 3-DOF NEES over the instants (ideal 3; failures make
it explode, the median is given too); update = mean wall time of one absolute update (ms: a particle-filter update,
a registration + filter update, a multilateration + filter update, a model step); cpu = wall time inside the
method per second of data (ms/s, < 1000 means faster than real time on this machine).

    nice -n 10 .venv/bin/python bench/baselines.py --seeds 10 --duration 60
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario  # noqa: E402
from flm_core.datagen.config import FAMILIES, ROBOT_MODEL  # noqa: E402
from flm_core.estimation.baselines import (Baseline, DeadReckoningBaseline, Estimate, IcpBaseline,  # noqa: E402
                                           UwbBaseline, make_pose_source)
from flm_core.estimation.harness import (perturbed_start, run_baseline, scenario_extrinsics,  # noqa: E402
                                         scenario_messages, scenario_point_map)
from flm_core.estimation.mcl import TUNED, LikelihoodFieldMcl  # noqa: E402
from flm_core.evaluation.metrics import pose_nees  # noqa: E402
from flm_core.measurements import Image, ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample  # noqa: E402
from flm_core.pipeline import State  # noqa: E402

AMCL = ('amcl-lf', 'amcl-lf-tuned', 'amcl-beam', 'amcl-beam-tuned')
ALL = (*AMCL, 'icp2d-eskf', 'icp3d-eskf', 'uwb-eskf', 'dead-reckoning', 'pipeline(icp2d)',
       'flm+eskf')
INPUTS = {**{m: 'odom+lidar2d' for m in AMCL}, 'icp2d-eskf': 'imu+odom+lidar2d',
          'icp3d-eskf': 'imu+odom+lidar3d', 'uwb-eskf': 'imu+odom+uwb', 'dead-reckoning': 'imu+odom',
          'pipeline(icp2d)': 'odom+lidar2d', 'flm+eskf': 'all'}
STREAMS = {**{m: ('odom', 'lidar2d') for m in AMCL},
           'icp2d-eskf': ('imu', 'odom', 'lidar2d'), 'icp3d-eskf': ('imu', 'odom', 'lidar3d'),
           'uwb-eskf': ('imu', 'odom', 'uwb'), 'dead-reckoning': ('imu', 'odom'),
           'pipeline(icp2d)': ('odom', 'lidar2d'), 'flm+eskf': ('imu', 'odom', 'lidar2d', 'lidar3d', 'uwb', 'depth')}
_RUNTIME_NAME = {LaserScan2D: 'scan', PointCloud: 'points', Image: 'depth', RangeSample: 'uwb', ImuSample: 'imu',
                 OdometrySample: 'odom'}


class _Rig:
    """Sensor mounts as the pipeline's pose sources read them (``flm_core.model.tokens.Rig`` without torch)."""

    def __init__(self, mounts: dict[str, tuple[float, float, float, float]], uwb_frame: str,
                 depth_intrinsics: Any = None) -> None:
        self.mounts, self.uwb_frame, self.depth_intrinsics = mounts, uwb_frame, depth_intrinsics

    def mount(self, frame_id: str) -> np.ndarray:
        return np.asarray(self.mounts.get(frame_id, (0.0, 0.0, 0.0, 0.0)), dtype=np.float64)


class PipelineBaseline(Baseline):
    """The localizer pipeline (``flm_core.pipeline``: front end, pose source, ESKF) behind the baseline interface:
    every message is offered as the node would, and the pose source runs every ``period`` s of stamps. ``config``:
    the localizer's configuration (default: the defaults, as the node runs them, with ``enabled`` the only
    streams on); ``rig``: the sensor mounts (IMU samples are rotated by their mount's yaw); ``robot``: the generated
    robot (``diff_drive``, ``holonomic``), told to the localizer as its ``robot_model`` (as the AMCL baselines are
    told it), with the default configuration."""

    def __init__(self, name: str, source: Any, site: Any, rig: Any, enabled: list[str], period: float = 0.2,
                 config: Any = None, robot: str | None = None) -> None:
        super().__init__()
        from flm_core import config as C  # noqa: PLC0415
        from flm_core.frontend import STREAMS as ALL_STREAMS  # noqa: PLC0415
        from flm_core.geometry import yaw_to_quat  # noqa: PLC0415

        self.name = name
        overrides: dict[str, Any] = {f'sensors.{s}.enabled': s in enabled for s in ALL_STREAMS}
        if robot is not None:
            overrides['robot_model'] = ROBOT_MODEL[robot]
        cfg = config or C.load_config(overrides=overrides)
        self.pipeline = C.make_pipeline(cfg, site, source)
        self.pipeline.rig = rig
        self.pipeline.front.mount = lambda frame: yaw_to_quat(float(rig.mount(frame)[3]))
        self.tracking_times: list[float] = []   # those of update_times that began while tracking (no global search)
        self.period = period
        self._next: float | None = None

    def reset(self, stamp: float, pose: np.ndarray, cov: np.ndarray) -> None:
        self.pipeline.set_initial_pose(pose, cov, stamp)
        self._next = stamp + self.period

    def step(self, m: Any) -> Estimate | None:
        name = _RUNTIME_NAME.get(type(m))
        if name is None:
            return None
        self.pipeline.offer(name, m, None)
        if self._next is not None and m.stamp >= self._next and name not in ('imu', 'odom'):
            tracking = self.pipeline.state == State.TRACKING
            t0 = time.perf_counter()
            r = self.pipeline.step(m.stamp)
            self.update_times.append(time.perf_counter() - t0)
            if tracking:
                self.tracking_times.append(self.update_times[-1])
            self._next = m.stamp + self.period
            if r is not None:
                self.events[f'model_{r.update}'] += 1
                return Estimate(stamp=r.stamp, pose=r.pose, cov=r.cov, source=self.name)
        return None

    def estimate(self, t: float) -> Estimate | None:
        """What the node would publish at t (the covariance spans rivals and the site while lost)."""
        r = self.pipeline.estimate(t)
        return None if r is None else Estimate(stamp=t, pose=r.pose, cov=r.cov, source=self.name)


def model_status() -> tuple[Any, str]:
    """(Localizer class or None, why not) - the model rows need flm_core.model.inference and its checkpoint."""
    try:
        from flm_core.model.inference import DEFAULT_MODEL, Localizer  # noqa: PLC0415
    except Exception as e:  # noqa: BLE001 - any import problem means: no model rows
        return None, f'flm_core.model.inference cannot be imported ({type(e).__name__}: {e})'
    if not Path(DEFAULT_MODEL).is_file():
        return None, f'no model checkpoint at {DEFAULT_MODEL}'
    return Localizer, ''


def make_methods(sc: Any, names: list[str], localizer: Any) -> list[tuple[Baseline, tuple[str, ...]]]:
    ext = scenario_extrinsics(sc)
    site = sc.site()
    out: list[tuple[Baseline, tuple[str, ...]]] = []
    maps: dict[int, Any] = {}

    def pm(dim: int) -> Any:
        if dim not in maps:
            maps[dim] = scenario_point_map(sc, dim)
        return maps[dim]

    s = sc.config.sensors
    rig = _Rig(ext, s.uwb.frame_id, sc.streams['depth'].intrinsics if 'depth' in sc.streams else None)
    for n in names:
        if n in AMCL:
            params = TUNED if n.endswith('-tuned') else None
            if n.startswith('amcl-lf'):
                b: Baseline = LikelihoodFieldMcl(site.map, ext, params, robot=sc.motion.robot, seed=sc.seed, name=n)
            else:
                from bench.amcl_beam import AmclBeamBaseline  # noqa: PLC0415 (GPL bindings inside)
                b = AmclBeamBaseline(site.map, ext, params, robot=sc.motion.robot, name=n)
            out.append((b, STREAMS[n]))
        elif n == 'icp2d-eskf':
            out.append((IcpBaseline(pm(2), ext), STREAMS[n]))
        elif n == 'icp3d-eskf':
            out.append((IcpBaseline(pm(3), ext), STREAMS[n]))
        elif n == 'uwb-eskf':
            out.append((UwbBaseline(site, ext), STREAMS[n]))
        elif n == 'dead-reckoning':
            out.append((DeadReckoningBaseline(ext), STREAMS[n]))
        elif n == 'pipeline(icp2d)':
            out.append((PipelineBaseline(n, make_pose_source('icp2d'), site, rig, ['scan', 'odom'],
                                         robot=sc.motion.robot), STREAMS[n]))
        elif n == 'flm+eskf':
            from flm_core.model.replay import ScenarioReplay  # noqa: PLC0415
            out.append((PipelineBaseline(n, localizer, site, ScenarioReplay(sc).rig,
                                         ['scan', 'points', 'depth', 'uwb', 'imu', 'odom'], robot=sc.motion.robot),
                        STREAMS[n]))
    return out


def scenario_for(seed: int, family: str, duration: float, kidnap: bool, depth: bool) -> Any:
    cfg = ScenarioConfig(duration=duration)
    cfg.building.families = (family,)
    if not kidnap:
        cfg.motion.kidnap_prob = 0.0
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.depth.enabled = depth
    return generate_scenario(cfg, seed)


def pooled(rows: list[dict[str, Any]]) -> dict[str, float]:
    ex = np.concatenate([r['err_xy'] for r in rows])
    ey = np.concatenate([r['err_yaw'] for r in rows])
    nv = np.concatenate([r['nees'] for r in rows])
    ok = np.isfinite(ex)
    upd = np.concatenate([r['update_ms'] for r in rows]) if rows else np.zeros(0)
    cpu = sum(r['cpu_s'] for r in rows) / max(sum(r['duration'] for r in rows), 1e-9)
    fin = nv[np.isfinite(nv)]
    return {'ate_rmse': float(np.sqrt(np.mean(ex[ok] ** 2))) if ok.any() else float('nan'),
            'yaw_rmse_deg': float(np.degrees(np.sqrt(np.mean(ey[ok] ** 2)))) if ok.any() else float('nan'),
            'fail': float(np.mean(~ok | (np.nan_to_num(ex, nan=np.inf) > 1.0))),
            'anees': float(np.mean(fin)) if len(fin) else float('nan'),
            'nees_median': float(np.median(fin)) if len(fin) else float('nan'),
            'update_ms': float(np.mean(upd)) if len(upd) else float('nan'),
            'update_ms_p95': float(np.percentile(upd, 95)) if len(upd) else float('nan'),
            'cpu_ms_per_s': 1e3 * cpu, 'scenarios': len(rows)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument('--seeds', type=int, default=5, help='number of held-out evaluation scenarios (default 5)')
    ap.add_argument('--offset', type=int, default=100,
                    help='offset into the reserved evaluation seeds (default 100, as bench/cross_scenario.py)')
    ap.add_argument('--duration', type=float, default=60.0, help='seconds per scenario (default 60)')
    ap.add_argument('--families', default=','.join(FAMILIES),
                    help=f'building families, rotated over the seeds (default {",".join(FAMILIES)})')
    ap.add_argument('--methods', default=','.join(ALL), help=f'methods to run (default all: {",".join(ALL)})')
    ap.add_argument('--kidnap', action='store_true', help="keep datagen's default kidnap probability")
    ap.add_argument('--per-scenario', action='store_true', help='also print one line per scenario and method')
    ap.add_argument('--out', default=None, help='write the table and per-scenario figures as JSON to this file')
    ns = ap.parse_args(argv)

    families = [f.strip() for f in ns.families.split(',') if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad or not families:
        ap.error(f'--families: unknown {bad}; choose from {",".join(FAMILIES)}')
    methods = [m.strip() for m in ns.methods.split(',') if m.strip()]
    bad = [m for m in methods if m not in ALL]
    if bad:
        ap.error(f'--methods: unknown {bad}; choose from {",".join(ALL)}')
    if ns.seeds < 1 or ns.duration <= 2.0:
        ap.error('--seeds must be >= 1 and --duration > 2 s')
    notes: list[str] = []
    if any(m.startswith('amcl-beam') for m in methods):
        from bench.amcl_beam import amcl_available  # noqa: PLC0415
        if not amcl_available():
            notes.append('amcl-beam rows skipped: the optional package "amcl" (GPL-3.0, benchmark-only) is not '
                         'installed (pip install -r requirements/bench.txt)')
            methods = [m for m in methods if not m.startswith('amcl-beam')]
        else:
            notes.append('amcl-beam = PyPI "amcl" (nav2_amcl bindings): beam laser model, its compiled-in KLD '
                         'constants; nav2 node logic re-implemented (flm_core.estimation.mcl.node)')
    if any(m.startswith('amcl-lf') for m in methods):
        notes.append('amcl-lf = nav2_amcl\'s likelihood-field model, motion models and KLD sampling in numpy '
                     '(flm_core.estimation.mcl)')
    localizer = None
    if 'flm+eskf' in methods:
        cls, why = model_status()
        if cls is None:
            notes.append(f'model rows skipped: {why}; baselines only')
            methods = [m for m in methods if m != 'flm+eskf']
        else:
            localizer = cls.load()
    seeds = list(evaluation_seeds(ns.seeds, offset=ns.offset))
    print(f'# {len(seeds)} held-out scenarios (evaluation seeds {seeds[0]}..{seeds[-1]}), {ns.duration:.0f} s each, '
          f'families {",".join(families)}, kidnapping {"on" if ns.kidnap else "off"}', flush=True)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    per_scenario: list[dict[str, Any]] = []
    for k, seed in enumerate(seeds):
        fam = families[k % len(families)]
        t0 = time.perf_counter()
        sc = scenario_for(seed, fam, ns.duration, ns.kidnap, depth='flm+eskf' in methods)
        eval_t = np.arange(0.5, ns.duration, 0.1)
        gt = sc.trajectory.sample(eval_t).pose
        start_pose, start_cov = perturbed_start(sc.trajectory.sample(np.array([0.0])).pose[0],
                                                np.random.default_rng(seed))
        gen_s = time.perf_counter() - t0
        for b, streams in make_methods(sc, methods, localizer):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    r = run_baseline(b, scenario_messages(sc, streams), eval_t, (0.0, start_pose, start_cov))
            except Exception as e:  # noqa: BLE001 - one broken method must not kill the table; reported
                print(f'  {b.name} failed on {sc.name}: {type(e).__name__}: {e}', file=sys.stderr)
                continue
            ex = np.hypot(r.pose[:, 0] - gt[:, 0], r.pose[:, 1] - gt[:, 1])
            ey = np.angle(np.exp(1j * (r.pose[:, 2] - gt[:, 2])))
            row = {'err_xy': ex, 'err_yaw': ey, 'nees': pose_nees(r.pose, r.cov, gt), 'update_ms': r.update_ms,
                   'cpu_s': r.cpu_s, 'duration': r.duration}
            results[b.name].append(row)
            one = pooled([row])
            per_scenario.append({'scenario': sc.name, 'seed': seed, 'family': fam, 'robot': sc.motion.robot,
                                 'method': b.name, **one, 'diagnostics': _jsonable(r.diagnostics)})
            if ns.per_scenario:
                print(f'  {sc.name:20s} {b.name:16s} ATE {one["ate_rmse"]:.3f} m  yaw {one["yaw_rmse_deg"]:.2f} deg  '
                      f'fail {100 * one["fail"]:.1f} %  ANEES {one["anees"]:.1f}  update {one["update_ms"]:.1f} ms',
                      flush=True)
        print(f'# {k + 1}/{len(seeds)} {sc.name} ({sc.motion.robot}, {len(sc.anchors.ids)} anchors) done in '
              f'{time.perf_counter() - t0:.0f} s (generation {gen_s:.1f} s)', file=sys.stderr, flush=True)

    table = {m: pooled(rows) for m, rows in results.items() if rows}
    print()
    hdr = (f'{"method":17s} {"inputs":18s} {"ATE RMSE m":>10s} {"yaw RMSE deg":>12s} {"fail>1m %":>9s} '
           f'{"ANEES":>8s} {"NEES med":>8s} {"update ms":>9s} {"p95 ms":>7s} {"cpu ms/s":>8s}')
    print(hdr)
    print('-' * len(hdr))
    for m, v in table.items():
        print(f'{m:17s} {INPUTS[m]:18s} {v["ate_rmse"]:10.3f} {v["yaw_rmse_deg"]:12.2f} {100 * v["fail"]:9.1f} '
              f'{v["anees"]:8.1f} {v["nees_median"]:8.2f} {v["update_ms"]:9.1f} {v["update_ms_p95"]:7.1f} '
              f'{v["cpu_ms_per_s"]:8.1f}')
    for n in notes:
        print(f'note: {n}')
    if ns.out:
        out = Path(ns.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({'seeds': seeds, 'duration': ns.duration, 'families': families,
                                   'kidnap': ns.kidnap, 'table': table, 'per_scenario': per_scenario,
                                   'notes': notes}, indent=1))
        print(f'wrote {out}')
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


if __name__ == '__main__':
    sys.exit(main())
