"""Cross-scenario benchmark of the FLM against the classical baselines, Nav2 AMCL and the UWB Cramer-Rao bound.

Buildings (all generated on the fly, same sensors for everyone):

- ``train``: buildings the model saw in training (seeds logged by flm-train, e.g. the model card's list), for the
  unseen/seen ratio;
- ``unseen``: evaluation seeds (reserved range, never trained on) of the training families;
- ``holdout``: evaluation seeds of the building family held out of training entirely.

Per building and sensor subset (2D lidar+odom; 3D lidar+IMU; depth+odom; UWB+IMU; UWB only; all):

- tracking: every method starts from the same perturbed initial pose (0.3 m, 10 deg; Nav2's initial covariance)
  and receives the subset's messages in arrival order; the FLM runs as the node runs it (the localizer pipeline
  with the default configuration: its front end, filter and relocalization, updates at the node's update_rate;
  told, as a user configures them, the robot's kinematics (``robot_model``) and, where the scenario's UWB tag is
  hand-held and moves up and down, to estimate the tag's height: ``refine.uwb_height_std`` 0.3 m),
  once as shipped (``FLM``: the network's pose solved against the measurements) and once with the network alone
  (``FLM network``, ``model.refine: false``); every method is evaluated at the same instants (its online estimate
  at that time); ATE RMSE, yaw RMSE, failure rate (share of instants > 1 m off), and for the FLM rows NEES (3-DOF,
  ideal 3; position-only, ideal 2, for the subsets without heading), 1/2-sigma coverage of the 2D position (ideal
  39 % / 86 %) and the time confidently wrong (error > 0.5 m and > 3 sigma);
- global: the FLM rows' pose source without prior on 2 s of data at random instants; success = within 0.5 m and 15 deg (the yaw
  condition is dropped for subsets that cannot observe heading from one window: UWB+IMU, UWB only);
- UWB CRLB: RMS over epochs of sqrt(trace(CRLB)) from the anchors that answered (flm_core.datagen.crlb).

Baselines (flm_core.estimation): Nav2's AMCL with its defaults in both laser models - 'amcl-lf' (likelihood
field, Nav2's default model, flm_core.estimation.mcl) and 'amcl-beam' (beam model through the GPL ``amcl`` bindings,
bench/amcl_beam.py; skipped when that package is not installed) - and 'icp2d-eskf' on 2D lidar+odom, 'icp3d-eskf'
on 3D lidar+IMU, 'uwb-eskf' on UWB+IMU and UWB only, 'dead-reckoning' (IMU+odom).
No classical baseline uses the depth camera.

Maps (``--maps``): every building is run twice. The main table uses **mapped maps** (flm_core.datagen realism,
config.RealismConfig): the site map comes from a simulated mapping run (SLAM drift, blur, unknown cells), the world
changed since (furniture moved/removed/added, doors), people who are not in the map, see-through glass, and the
sensor habits (shared UWB frame stamps, anchor biases of both signs, coplanar anchors, a tilted platform, a tag
moving up and down); a z-down IMU only with ``--z-down-imu`` (the harness's and the model's rig take mounts as
x, y, z, yaw). The second table uses the **exact** geometry as the map (what the benchmark reported before: there
scan-to-map ICP reaches millimetres). Same seeds, same trajectories in both.

    .venv/bin/python bench/cross_scenario.py --per-group 3 --duration 20 --reloc 2 --out bench/results  # 13 min
    .venv/bin/python bench/cross_scenario.py --per-group 1 --duration 8 --reloc 1 --maps mapped --out /tmp/xs

Every FLM run and every relocalization trial draws from one random stream in order: runs with different flags
(``--no-network-row``, ``--reloc``) start from different poses and are not comparable row by row.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flm_core.datagen import ScenarioConfig, evaluation_seeds, generate_scenario  # noqa: E402
from flm_core.datagen.config import FAMILIES  # noqa: E402
from flm_core.datagen.crlb import crlb_rmse  # noqa: E402
from flm_core.evaluation.metrics import confidently_wrong, pose_nees, position_nees, position_sigma  # noqa: E402
from flm_core.evaluation.report import WRONG_MIN_ERROR, WRONG_N_SIGMA  # noqa: E402
from flm_core.model.inference import DEFAULT_MODEL  # noqa: E402
from flm_core.model.replay import STREAM_NAMES, ScenarioReplay  # noqa: E402
from flm_core.train import BENCH_SUBSETS, training_families  # noqa: E402

SUBSET_ORDER = list(BENCH_SUBSETS)
NO_HEADING = {'uwb+imu', 'uwb'}


def wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _p50_p99(seconds: list[float]) -> str:
    """'p50 X / p99 Y ms' of update times in s (NaN left out; '-' with none)."""
    ms = np.asarray(seconds, np.float64) * 1e3
    ms = ms[np.isfinite(ms)]
    if not len(ms):
        return '-'
    return f'p50 {np.percentile(ms, 50):.1f} / p99 {np.percentile(ms, 99):.1f} ms'


def errors(poses: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position error (E,) m and wrapped heading error (E,) rad of poses (E, 3) against truth (E, 3)."""
    return np.hypot(*(poses[:, :2] - truth[:, :2]).T), wrap(poses[:, 2] - truth[:, 2])


HANDHELD_TAG_STD = 0.3     # m: refine.uwb_height_std for a scenario whose UWB tag moves up and down


def refine_for(refine: Any, sc: Any) -> Any:
    """The solve's settings for scenario ``sc``: where its UWB tag moves up and down (the realism habit of a
    hand-held or flying tag, whose height TF does not know) the tag's height is estimated
    (``refine.uwb_height_std``), as a user of such a tag configures it; else ``refine`` as it is."""
    habits = getattr(sc, 'habits', None)
    if habits is None or habits.tag_height is None:
        return refine
    return dataclasses.replace(refine, uwb_height_std=HANDHELD_TAG_STD)


def flm_pipeline(source: Any, sc: Any, rp: ScenarioReplay, subset: tuple[str, ...], eval_t: np.ndarray,
                 start: tuple[float, np.ndarray, np.ndarray], period: float) -> Any:
    """The FLM as the node runs it (the localizer pipeline with the default configuration, ``subset`` the only
    streams on, told the robot's kinematics as the AMCL rows are; ``source``: its pose source) fed the scenario's
    messages in arrival order -> :class:`flm_core.estimation.harness.RunResult` (the filter's online pose and
    covariance at ``eval_t``)."""
    from bench.baselines import PipelineBaseline  # noqa: PLC0415
    from flm_core.estimation.harness import run_baseline, scenario_messages  # noqa: PLC0415

    datagen = tuple(dg for dg, rt in STREAM_NAMES.items() if rt in subset)
    b = PipelineBaseline('FLM', source, rp.site, rp.rig, list(subset), period=period, robot=sc.motion.robot)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return run_baseline(b, scenario_messages(sc, datagen), eval_t, start)


def run_baselines(sc: Any, subset_name: str, eval_t: np.ndarray, start: tuple[float, np.ndarray, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Baseline name -> poses (E, 3) (NaN where none) for the subset; missing packages are skipped."""
    from flm_core.estimation.baselines import DeadReckoningBaseline, IcpBaseline, UwbBaseline  # noqa: PLC0415
    from flm_core.estimation.harness import (run_baseline, scenario_extrinsics, scenario_messages,  # noqa: PLC0415
                                             scenario_point_map)

    ext = scenario_extrinsics(sc)
    jobs: list[tuple[Any, tuple[str, ...]]] = []
    if subset_name == 'lidar2d+odom':
        from bench.amcl_beam import AmclBeamBaseline, amcl_available  # noqa: PLC0415 (GPL bindings inside)
        from flm_core.estimation.mcl import LikelihoodFieldMcl  # noqa: PLC0415

        occ = sc.site().map
        jobs.append((LikelihoodFieldMcl(occ, ext, robot=sc.motion.robot, seed=sc.seed), ('odom', 'lidar2d')))
        if amcl_available():
            jobs.append((AmclBeamBaseline(occ, ext, robot=sc.motion.robot), ('odom', 'lidar2d')))
        jobs.append((IcpBaseline(scenario_point_map(sc, 2), ext, use_odom=True), ('odom', 'lidar2d')))
        jobs[-1][0].use_imu = False
    elif subset_name == 'lidar3d+imu':
        jobs.append((IcpBaseline(scenario_point_map(sc, 3), ext, use_odom=False), ('imu', 'lidar3d')))
    elif subset_name == 'uwb+imu':
        jobs.append((UwbBaseline(sc.site(), ext, use_odom=False), ('imu', 'uwb')))
        jobs.append((DeadReckoningBaseline(ext), ('imu', 'odom')))
    elif subset_name == 'uwb':
        b = UwbBaseline(sc.site(), ext, use_odom=False)
        b.use_imu = False
        jobs.append((b, ('uwb',)))
    out: dict[str, np.ndarray] = {}
    for b, streams in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                r = run_baseline(b, scenario_messages(sc, streams), eval_t, start)
            out[b.name if b.name != 'dead-reckoning' else 'dead-reckoning (imu+odom)'] = r.pose
        except Exception as e:  # noqa: BLE001 - a broken baseline must not kill the bench; reported
            print(f'  baseline {b.name} failed on {sc.name}: {type(e).__name__}: {e}', file=sys.stderr)
    return out


MAPS = ('mapped', 'exact')


def scenario_for(seed: int, family: str | tuple[str, ...], duration: float, maps: str = 'mapped',
                 z_down_imu: bool = False) -> Any:
    """All sensors on. ``family`` may be the tuple of families the seed was drawn with in training: the family draw
    is part of the building's random stream, so only the same tuple reproduces the building the model saw.
    ``maps``: 'mapped' (realism on, also for training seeds) or 'exact' (realism off)."""
    cfg = ScenarioConfig(duration=duration)
    cfg.realism.apply = 'always' if maps == 'mapped' else 'never'
    cfg.realism.habits.imu_z_down_prob = cfg.realism.habits.imu_z_down_prob if z_down_imu else 0.0
    cfg.building.families = family if isinstance(family, tuple) else (family,)
    cfg.motion.kidnap_prob = 0.0
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.depth.enabled = True
    return generate_scenario(cfg, seed)


def pick_buildings(per_group: int, holdout: str, train_seeds: list[tuple[int, str]]) -> list[tuple[str, int, str]]:
    fams = [f for f in FAMILIES if f != holdout]
    out: list[tuple[str, int, str]] = []
    seen_fams: dict[str, int] = defaultdict(int)
    for seed, fam in train_seeds:  # training buildings, spread over families
        if len([b for b in out if b[0] == 'train']) >= per_group:
            break
        if seen_fams[fam] <= min(seen_fams.get(f, 0) for f in fams) and fam in fams:
            out.append(('train', seed, fam))
            seen_fams[fam] += 1
    ev = iter(evaluation_seeds(10 * per_group + 10, offset=100))
    for k in range(per_group):
        out.append(('unseen', next(ev), fams[k % len(fams)]))
    for _ in range(per_group):
        out.append(('holdout', next(ev), holdout))
    return out


def read_train_seeds(path: str | None) -> list[tuple[int, str]]:
    if not path:
        return []
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob('seeds_*.txt'))
    out: list[tuple[int, str]] = []
    for f in files:
        if f.suffix == '.json':
            out += [(int(s), str(fm)) for s, fm in json.loads(f.read_text())['seeds']]
        else:
            out += [(int(a), b) for a, b in (ln.split() for ln in f.read_text().splitlines() if ln.strip())]
    return out


def metrics(err_xy: np.ndarray, err_yaw: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(err_xy)
    if not ok.any():
        return {'ate': math.nan, 'yaw': math.nan, 'fail': math.nan, 'n': 0}
    e, y = err_xy[ok], err_yaw[ok]
    # an instant with no estimate at all counts as a failure
    return {'ate': float(np.sqrt(np.mean(e ** 2))), 'yaw': float(np.degrees(np.sqrt(np.mean(y ** 2)))),
            'fail': float(np.mean(np.where(ok, err_xy > 1.0, True) if len(err_xy) else 0.0)), 'n': int(ok.sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=str(DEFAULT_MODEL), help='TorchScript model (default: the shipped one)')
    ap.add_argument('--per-group', type=int, default=3, help='buildings per group (train / unseen / holdout)')
    ap.add_argument('--duration', type=float, default=30.0, help='s of data per building')
    ap.add_argument('--holdout', default=None, help='held-out family (default: from the model record)')
    ap.add_argument('--train-seeds', default=None, help='file/dir with training seeds (default: model card json)')
    ap.add_argument('--reloc', type=int, default=3, help='global relocalization trials per building and subset')
    ap.add_argument('--no-baselines', action='store_true', help='FLM only')
    ap.add_argument('--threads', type=int, default=2, help='inference threads')
    ap.add_argument('--no-network-row', action='store_true',
                    help="skip 'FLM network' (the model's poses as they are, model.refine: false)")
    ap.add_argument('--out', default='bench/results', help='output directory for cross_scenario.md/.png/.json')
    ap.add_argument('--maps', default=','.join(MAPS),
                    help='comma-separated map kinds, main table first: mapped (realistic) and/or exact')
    ap.add_argument('--z-down-imu', action='store_true', help='mapped runs: some IMUs mounted z-down')
    ap.add_argument('--subsets', default=','.join(SUBSET_ORDER),
                    help='comma-separated sensor subsets to run (default: all: %(default)s)')
    ap.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                    help='a core parameter (config/flm.yaml) for the FLM rows, e.g. refine.points_voxel=0.3; '
                         'repeatable')
    a = ap.parse_args(argv)
    params: dict[str, Any] = {}
    for kv in a.param:
        name, sep, value = kv.partition('=')
        if not sep:
            ap.error(f'--param: expected NAME=VALUE, got {kv!r}')
        params[name.strip()] = yaml.safe_load(value)
    subsets = [x.strip() for x in a.subsets.split(',') if x.strip()]
    if not subsets or any(x not in BENCH_SUBSETS for x in subsets):
        ap.error(f'--subsets: expected some of {",".join(SUBSET_ORDER)}, got {a.subsets!r}')
    kinds = [k.strip() for k in a.maps.split(',') if k.strip()]
    if not kinds or any(k not in MAPS for k in kinds):
        ap.error(f'--maps: expected some of {",".join(MAPS)}, got {a.maps!r}')
    from flm_core import config as C  # noqa: PLC0415
    from flm_core.estimation.harness import perturbed_start  # noqa: PLC0415
    from flm_core.estimation.refine import Refined  # noqa: PLC0415
    from flm_ros.params import LOCALIZER  # noqa: PLC0415

    try:
        cfg = C.load_config(overrides={**params, 'model_path': a.model, 'inference_threads': a.threads})
    except C.ConfigError as e:
        ap.error(f'--param: {e}')
    network = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, refine=False))
    loc = C.load_pose_source(network)                       # the network, shared by both rows
    period = 1.0 / float(next(q.default for q in LOCALIZER if q.name == 'update_rate'))
    # the FLM rows: name -> a fresh pose source for a scenario (per run: the solve learns per site and run)
    sources: dict[str, Any] = {'FLM': (lambda sc: Refined(loc, refine_for(cfg.refine, sc))) if cfg.model.refine
                               else (lambda sc: loc)}
    if not a.no_network_row and cfg.model.refine:
        sources['FLM network'] = lambda sc: loc
    holdout = a.holdout or loc.meta.get('holdout_family') or 'cluttered'
    seeds_src = a.train_seeds or str(Path(a.model).with_name(Path(a.model).stem + '_train_seeds.json'))
    train_seeds = read_train_seeds(seeds_src if Path(seeds_src).exists() else None)
    buildings = pick_buildings(a.per_group, holdout, train_seeds)
    rng = np.random.default_rng(0)
    # per map kind: errors pooled per (group, subset, method) (E), and per (group, subset, method) the FLM rows'
    # NEES, 1/2-sigma coverage, confidently wrong s, global relocalizations; the CRLB per group
    accs = {k: (defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list),
                defaultdict(list)) for k in kinds}
    E: dict[tuple[str, str, str], list[np.ndarray]]
    nees: dict[tuple[str, str, str], list[float]]
    cover: dict[tuple[str, str, str], list[tuple[bool, bool]]]
    wrong: dict[tuple[str, str, str], list[float]]
    reloc: dict[tuple[str, str, str], list[tuple[bool, float]]]
    crlb: dict[str, list[float]]
    lat: dict[str, list[float]] = defaultdict(list)
    track_lat: dict[tuple[str, str], list[float]] = defaultdict(list)   # (method, subset) -> s, while tracking
    per_building: list[dict[str, Any]] = []      # the FLM rows' figures per building and subset
    from tqdm import tqdm  # noqa: PLC0415

    t_start = time.time()
    train_fams = training_families(holdout)
    runs = [(k, *b) for k in kinds for b in buildings]
    for kind, group, seed, fam in tqdm(runs, desc='buildings x maps', unit='bldg'):
        E, nees, cover, wrong, reloc, crlb = accs[kind]
        sc = scenario_for(seed, train_fams if group == 'train' else fam, a.duration, kind, a.z_down_imu)
        assert sc.building.family == fam, (seed, fam, sc.building.family)
        rp = ScenarioReplay(sc)
        loc.map_index(rp.site)  # per-site preprocessing once, outside the timed updates
        u = sc.streams['uwb']
        cr = crlb_rmse(u.crlb)
        crlb[group].extend(cr[np.isfinite(cr)].tolist())
        t0 = 1.5
        eval_t = np.arange(t0, a.duration - 0.05, 0.2)
        truth = rp.truth(eval_t)
        keep = eval_t >= t0 + 2.0
        for sname in subsets:
            subset = BENCH_SUBSETS[sname]
            p0, c0 = perturbed_start(rp.truth(t0), rng)
            start = (t0, p0, c0)
            for method, make in sources.items():
                r = flm_pipeline(make(sc), sc, rp, subset, eval_t, start, period)
                lat[method].extend((r.update_ms / 1e3).tolist())
                track_lat[(method, sname)].extend((r.tracking_ms / 1e3).tolist())
                P, Cv = r.pose, r.cov
                e, ey = errors(P, truth)
                key = (group, sname, method)
                E[key].append(np.stack([e[keep], ey[keep]]))
                wrong[key].append(confidently_wrong(eval_t[keep], e[keep], position_sigma(Cv[keep]),
                                                    WRONG_MIN_ERROR, WRONG_N_SIGMA).total_s)
                per_building.append({'maps': kind, 'group': group, 'seed': int(seed), 'family': fam,
                                     'subset': sname, 'method': method, **metrics(e[keep], ey[keep]),
                                     'wrong_s': wrong[key][-1]})
                tqdm.write(f'{kind} {group} {seed} {fam}: {sname} {method} ATE {per_building[-1]["ate"]:.3f} m, '
                           f'confidently wrong {wrong[key][-1]:.1f} s')
                pn = position_nees(P[keep], Cv[keep], truth[keep])    # 2 dof
                nees[key].extend((pn if sname in NO_HEADING else pose_nees(P[keep], Cv[keep], truth[keep])).tolist())
                cover[key].extend(zip((pn <= 1.0).tolist(), (pn <= 4.0).tolist()))
                per_building[-1].update(nees_pos=float(np.nanmean(pn)), cov1=float(np.mean(pn <= 1.0)),
                                        cov2=float(np.mean(pn <= 4.0)))
                for tr in rng.uniform(3.0, a.duration - 0.1, a.reloc):
                    w = rp.window(float(tr), 2.0, list(subset))
                    t1 = time.perf_counter()
                    est = make(sc).localize(w, rp.site, float(tr), rig=rp.rig)
                    dt = time.perf_counter() - t1
                    tt = rp.truth(float(tr))
                    ok = est is not None and np.hypot(*(est.pose[:2] - tt[:2])) < 0.5 and (
                        sname in NO_HEADING or abs(wrap(est.pose[2] - tt[2])) < math.radians(15))
                    reloc[key].append((bool(ok), dt))
            if not a.no_baselines:
                for name, BP in run_baselines(sc, sname, eval_t, start).items():
                    eb, eyb = errors(BP, truth)
                    E[(group, sname, name)].append(np.stack([eb[keep], eyb[keep]]))
    elapsed = time.time() - t_start

    # ------------------------------------------------------------------ table
    def pooled(group: str | None, sname: str, method: str) -> dict[str, float]:
        arrs = [x for (g, s, m), v in E.items() if (group is None or g == group) and s == sname and m == method
                for x in v]
        if not arrs:
            return {'ate': math.nan, 'yaw': math.nan, 'fail': math.nan, 'n': 0}
        z = np.concatenate(arrs, axis=1)
        return metrics(z[0], z[1])

    unseen_groups = ('unseen', 'holdout')

    def make_rows() -> list[dict[str, Any]]:  # of the map kind bound to E, nees, cover, wrong, reloc, crlb
        methods_by_subset: dict[str, list[str]] = defaultdict(list)
        for (_, s, m) in E:
            if m not in methods_by_subset[s]:
                methods_by_subset[s].append(m)
        rows = []
        crlb_unseen = float(np.sqrt(np.mean(np.square(crlb['unseen'] + crlb['holdout'])))) if crlb else math.nan
        for sname in SUBSET_ORDER:
            for m in methods_by_subset[sname]:
                arrs = [x for (g, s, mm), v in E.items() if g in unseen_groups and s == sname and mm == m for x in v]
                z = np.concatenate(arrs, axis=1)
                mu = metrics(z[0], z[1])
                seen = pooled('train', sname, m)
                ho = pooled('holdout', sname, m)
                row = {'subset': sname, 'method': m, 'ate_unseen': mu['ate'], 'yaw_unseen_deg': mu['yaw'],
                       'fail_unseen': mu['fail'], 'ate_holdout': ho['ate'], 'ate_train': seen['ate'],
                       'ratio_unseen_train': mu['ate'] / seen['ate'] if seen['ate'] and seen['ate'] > 0 else math.nan}
                if m in sources:
                    def unseen(acc: dict) -> list:
                        return [x for g in unseen_groups for x in acc[(g, sname, m)]]

                    nz, cv, rl = unseen(nees), unseen(cover), unseen(reloc)
                    nz = [x for x in nz if math.isfinite(x)]
                    row.update(nees_unseen=float(np.mean(nz)) if nz else math.nan,
                               nees_dof=2 if sname in NO_HEADING else 3,
                               cov1=float(np.mean([c[0] for c in cv])) if cv else math.nan,
                               cov2=float(np.mean([c[1] for c in cv])) if cv else math.nan,
                               wrong_s=float(np.sum(unseen(wrong) + wrong[('train', sname, m)])),
                               reloc_unseen=float(np.mean([r[0] for r in rl])) if rl else math.nan,
                               reloc_s=float(np.median([r[1] for r in rl])) if rl else math.nan)
                    if sname in ('uwb+imu', 'uwb'):
                        row['crlb_rmse'] = crlb_unseen
                        row['ate_over_crlb'] = mu['ate'] / crlb_unseen
                rows.append(row)
        return rows

    def f(x: Any, fmt: str) -> str:
        return '-' if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)

    n_b = {g: sum(1 for b in buildings if b[0] == g) for g in ('train', 'unseen', 'holdout')}
    head = (f'Cross-scenario benchmark: model {Path(a.model).name}, run as the node runs it (the localizer pipeline, '
            + ('default configuration' if not params else
               'default configuration but ' + ', '.join(f'{k} {v}' for k, v in params.items()))
            + f', {1 / period:.0f} Hz updates); held-out family {holdout!r}; '
            f'{n_b["train"]} training buildings, {n_b["unseen"]} unseen buildings of training families and '
            f'{n_b["holdout"]} of the held-out family (evaluation seeds), {a.duration:.0f} s each, evaluated at 5 Hz; '
            f'"unseen" columns pool unseen + held-out; each building with {" and ".join(kinds)} maps. '
            f'Run time {elapsed / 60:.1f} min.')
    tables: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        E, nees, cover, wrong, reloc, crlb = accs[kind]
        tables[kind] = make_rows()
    rows = tables[kinds[0]]  # the main table (plot, 'rows' in the json)
    titles = {'mapped': 'Mapped maps (the site map from a simulated mapping run of the world as it was, which changed '
                        'since; people not in the map; sensor habits):',
              'exact': 'Exact maps (the site map is the geometry the sensors see):'}
    lines = [head]
    for kind in kinds:
        lines += ['', titles[kind], '',
                  '| subset | method | ATE unseen m | yaw RMSE unseen deg | fail >1 m | ATE held-out family m | '
                  'ATE training bldgs m | unseen/train | NEES | 1σ/2σ cover (39/86 %) | conf. wrong s | global reloc '
                  '| reloc s | UWB CRLB m | ATE/CRLB |',
                  '|' + '---|' * 15]
        for r in tables[kind]:
            dof = {2: ' (2)', 3: ''}.get(r.get('nees_dof'), '')
            lines.append(
                f'| {r["subset"]} | {r["method"]} | {f(r["ate_unseen"], ".3f")} | {f(r["yaw_unseen_deg"], ".2f")} | '
                f'{f(r["fail_unseen"] * 100, ".1f")} % | {f(r["ate_holdout"], ".3f")} | {f(r["ate_train"], ".3f")} | '
                f'{f(r["ratio_unseen_train"], ".2f")} | {f(r.get("nees_unseen"), ".2f")}{dof} | '
                f'{f(r.get("cov1", math.nan) * 100, ".0f")}/{f(r.get("cov2", math.nan) * 100, ".0f")} % | '
                f'{f(r.get("wrong_s"), ".1f")} | '
                f'{f(r.get("reloc_unseen", math.nan) * 100, ".0f")} % | {f(r.get("reloc_s"), ".2f")} | '
                f'{f(r.get("crlb_rmse"), ".3f")} | {f(r.get("ate_over_crlb"), ".2f")} |')
    lines += ['', 'NEES: 3-dof pose (ideal 3); (2): position only (ideal 2), where one UWB tag does not observe the '
              'heading. conf. wrong: s with error > 0.5 m and > 3 sigma, all buildings of the subset.']
    for method, v in lat.items():
        lines.append(f'{method} update time in this run (pipeline step: model + solve + filter; all subsets, '
                     f'{a.threads} inference threads, shared machine): {_p50_p99(v)}; '
                     f'while tracking (no global search), with all sensors '
                     f'{_p50_p99(track_lat[(method, "all")])}, over all subsets '
                     f'{_p50_p99([x for (m, _), v in track_lat.items() if m == method for x in v])}.')
    text = '\n'.join(lines)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'cross_scenario.md').write_text(text + '\n')
    (out / 'cross_scenario.json').write_text(json.dumps({'header': head, 'rows': rows, 'maps': kinds,
                                                         'tables': tables, 'buildings': buildings,
                                                         'per_building': per_building},
                                                        indent=1, default=float))
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use('Agg')
        import matplotlib.pyplot as plt  # noqa: PLC0415

        fig, ax = plt.subplots(figsize=(11, 4.5))
        labels, vals, vals_t, colors = [], [], [], []
        for r in rows:
            labels.append(f'{r["subset"]}\n{r["method"]}')
            vals.append(r['ate_unseen'])
            vals_t.append(r['ate_train'])
            colors.append({'FLM': 'tab:blue', 'FLM network': 'tab:cyan'}.get(r['method'], 'tab:gray'))
        x = np.arange(len(rows))
        ax.bar(x - 0.2, vals, 0.4, color=colors, label='unseen buildings')
        ax.bar(x + 0.2, vals_t, 0.4, color=colors, alpha=0.45, label='training buildings')
        for r, xi in zip(rows, x):
            if r.get('crlb_rmse') is not None and math.isfinite(r.get('crlb_rmse', math.nan)):
                ax.hlines(r['crlb_rmse'], xi - 0.4, xi + 0.4, colors='tab:red', linestyles='--')
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=6, rotation=60, ha='right')
        ax.set_ylabel('ATE RMSE (m)')
        ax.set_yscale('log')
        ax.set_title(f'{kinds[0]} maps: FLM (blue; the network alone: cyan) vs baselines (grey); light = training; '
                     f'red dashes = UWB CRLB')
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / 'cross_scenario.png', dpi=120)
    except Exception as e:  # noqa: BLE001
        print(f'plot skipped: {e}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
