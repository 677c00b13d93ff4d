"""Evaluation outputs: metrics of an estimated trajectory against ground truth, PNG plots and a markdown report.

:func:`evaluate` matches each estimate with the ground truth interpolated at its stamp (across ground-truth gaps of
at most ``gt_max_gap`` s) and computes evo-style APE and RPE statistics, yaw error, failure segments (error >
threshold), NEES (pose, 3 dof, and position, 2 dof), the fraction of position errors inside the estimate's 1- and
2-sigma ellipses, the time it was confidently wrong (error > 0.5 m and > 3 of its own sigmas) and coverage;
:func:`unmatched_problem` says why none could be matched. :func:`write_report` writes TUM files,
``metrics.json``, ``trajectory.png`` (the path over the map with anchors, coloured by error, ground truth on top,
start and end marked), ``errors.png`` (position and yaw error over time on linear axes, the failure threshold, the
estimate's 3-sigma band and the localization events) and ``report.md`` linking them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flm_core.evaluation.metrics import (
    CONSISTENT_WITHIN, confidently_wrong, pose_nees, position_nees, position_sigma, within_sigma)
from flm_core.evaluation.trajectory import (
    Trajectory, ape_stats, failure_segments, interpolate, largest_gap, rpe_stats, write_tum, yaw_stats)
from flm_core.site import Site

#: An estimate is confidently wrong while its position error exceeds this many metres and this many of its sigmas.
WRONG_MIN_ERROR = 0.5
WRONG_N_SIGMA = 3.0

@dataclass
class Evaluation:
    name: str
    est: Trajectory
    gt_at_est: np.ndarray            # (N, 3) ground truth at the estimate stamps (NaN where unknown)
    matched: np.ndarray              # (N,) bool
    metrics: dict[str, Any] = field(default_factory=dict)


def evaluate(name: str, est: Trajectory, gt: Trajectory, *, threshold: float = 1.0, gt_max_gap: float = 0.5,
             duration: float | None = None, extra: dict[str, Any] | None = None) -> Evaluation:
    """Metrics of ``est`` against ``gt`` (see the module docstring). ``duration``: s of data, for coverage."""
    gt_at, ok = interpolate(gt, est.t, max_gap=gt_max_gap) if len(est) else (np.zeros((0, 3)), np.zeros(0, bool))
    e, g = est.poses[ok], gt_at[ok]
    err = np.hypot(e[:, 0] - g[:, 0], e[:, 1] - g[:, 1])
    m: dict[str, Any] = {
        'estimates': int(len(est)), 'matched': int(ok.sum()), 'gt_max_gap_s': gt_max_gap,
        'ape_m': ape_stats(e, g), 'rpe_m': rpe_stats(e, g, delta=1),
        'yaw_error_deg': {k: float(np.degrees(v)) for k, v in yaw_stats(e, g).items()},
        'failure_threshold_m': threshold,
        'failure_rate': float(np.mean(err > threshold)) if len(err) else float('nan'),
        'failure_segments': failure_segments(est.t[ok], err, threshold),
    }
    if est.cov is not None and ok.any():
        cov = est.cov[ok]
        v = pose_nees(e, cov, g)
        m['nees_mean'] = float(np.nanmean(v)) if np.isfinite(v).any() else float('nan')
        m['nees_dof'] = 3
        v2 = position_nees(e, cov, g)
        m['nees_position_mean'] = float(np.nanmean(v2)) if np.isfinite(v2).any() else float('nan')
        m['nees_position_dof'] = 2
        m['position_within_1sigma'] = within_sigma(v2, 1)
        m['position_within_2sigma'] = within_sigma(v2, 2)
        m['position_within_consistent'] = {f'{k}sigma': v for k, v in CONSISTENT_WITHIN.items()}
        w = confidently_wrong(est.t[ok], err, position_sigma(cov), WRONG_MIN_ERROR, WRONG_N_SIGMA)
        m['confidently_wrong_s'] = w.total_s
        m['confidently_wrong_longest_s'] = w.longest_s
        m['confidently_wrong_longest'] = list(w.longest) if w.longest else None
        m['confidently_wrong_rule'] = {'min_error_m': WRONG_MIN_ERROR, 'n_sigma': WRONG_N_SIGMA,
                                       'sigma': 'largest position std of the estimate'}
    if duration:
        m['first_estimate_s'] = float(est.t[0] - gt.t[0]) if len(est) and len(gt) else float('nan')
    m.update(extra or {})
    return Evaluation(name=name, est=est, gt_at_est=gt_at, matched=ok, metrics=m)


def unmatched_problem(ev: Evaluation, gt: Trajectory) -> str | None:
    """Why ``ev`` cannot be scored, when none of its estimates could be matched to ground truth (or it has none);
    None when some were."""
    n, gap = ev.metrics['estimates'], ev.metrics['gt_max_gap_s']
    if ev.metrics['matched'] > 0:
        return None
    if n == 0:
        return f'{ev.name}: no estimate at all, nothing to score'
    if len(gt) == 0:
        return f'{ev.name}: none of the {n} estimates could be matched: the ground truth is empty'
    big, at = largest_gap(gt)
    return (f'{ev.name}: none of the {n} estimates (stamps {ev.est.t[0]:.3f} to {ev.est.t[-1]:.3f} s) could be '
            f'matched to the ground truth ({len(gt)} poses from {gt.t[0]:.3f} to {gt.t[-1]:.3f} s, largest gap '
            f'{big:.3f} s at {at:.3f} s): an estimate is matched only inside the ground truth\'s time range and across '
            f'gaps of at most --gt-max-gap {gap:g} s; check that both use the same clock, or raise --gt-max-gap if the '
            'ground truth is sparse')


def _plot_map(ax, site: Site | None) -> None:
    """The site's occupancy map (if it has one) and its UWB anchors."""
    if site is None:
        return
    if site.map is not None:
        m = site.map
        h, w = m.grid.shape
        x0, y0 = m.origin[0], m.origin[1]
        img = np.where(m.grid < 0, 0.8, 1.0 - m.grid / 100.0)
        ax.imshow(img, cmap='gray', vmin=0, vmax=1, origin='lower',
                  extent=(x0, x0 + w * m.resolution, y0, y0 + h * m.resolution))
    if site.anchors:
        a = site.anchor_positions()
        ax.scatter(a[:, 0], a[:, 1], marker='^', c='tab:purple', s=40, label='UWB anchors', zorder=3)


def _pyplot():
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def _position_errors(ev: Evaluation) -> np.ndarray:
    """(N,) m, NaN where the estimate has no ground truth."""
    return np.hypot(*(ev.est.poses[:, :2] - ev.gt_at_est[:, :2]).T) if len(ev.est) else np.zeros(0)


def _extent(evals: list[Evaluation], gt: Trajectory, site: Site | None) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) m: the ground truth, every estimate and the UWB anchors, with a margin of 10 % (at least
    2 m)."""
    anchors = site.anchor_positions()[:, :2] if site is not None and site.anchors else np.zeros((0, 2))
    xy = np.concatenate([gt.poses[:, :2], anchors] + [ev.est.poses[:, :2] for ev in evals])
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if not len(xy):
        return -1.0, 1.0, -1.0, 1.0
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = max(2.0, 0.1 * float(np.max(hi - lo)))
    return lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad


def plot_trajectory(path: Path, evals: list[Evaluation], gt: Trajectory, site: Site | None) -> Path:
    """The map and anchors around the trajectories, the first method's estimates as dots coloured by their error,
    the other methods as lines, the ground truth drawn on top with its start and end marked; the legend below."""
    plt = _pyplot()
    x0, x1, y0, y1 = _extent(evals, gt, site)
    ratio = (y1 - y0) / (x1 - x0)
    width = min(9.0, 8.0 / ratio)                          # inches of map: at most 9 wide, 8 high
    fig, ax = plt.subplots(figsize=(max(width, 4.5) + 1.6, max(width * ratio, 3.0) + 2.0), layout='constrained')
    _plot_map(ax, site)
    main = evals[0]
    e = main.est.poses
    err = _position_errors(main)
    if len(e):
        sc = ax.scatter(e[:, 0], e[:, 1], c=np.nan_to_num(err, nan=0), cmap='viridis', s=7, vmin=0,
                        vmax=max(0.5, float(np.nanpercentile(err, 95)) if np.isfinite(err).any() else 0.5),
                        label=f'{main.name} (colour: position error)', zorder=3)
        fig.colorbar(sc, ax=ax, label=f'{main.name} position error [m]', shrink=0.9, pad=0.01)
        ax.plot(*e[0, :2], 'o', ms=10, mfc='none', mec='tab:green', mew=2, zorder=6,
                label=f'{main.name} first estimate')
    for k, ev in enumerate(evals[1:]):
        ax.plot(ev.est.poses[:, 0], ev.est.poses[:, 1], lw=1, color=f'C{k + 1}', label=ev.name, zorder=4)
    if len(gt):
        g = gt.poses
        ax.plot(g[:, 0], g[:, 1], '-', color='white', lw=2.6, zorder=5)
        ax.plot(g[:, 0], g[:, 1], '-', color='black', lw=1.1, zorder=5, label='ground truth')
        ax.plot(*g[0, :2], 'o', ms=9, color='tab:green', mec='black', zorder=7, label='start (ground truth)')
        ax.plot(*g[-1, :2], 's', ms=9, color='tab:red', mec='black', zorder=7, label='end (ground truth)')
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    ax.set_title('trajectory in the map frame')
    fig.legend(loc='outside lower center', ncol=4 if width > 7 else 2, fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: Localization events marked on the error plot: the start of the event text -> colour. Others are not drawn.
EVENT_COLOURS = {'global localization': 'tab:green', 'relocalized': 'tab:blue', 'lost': 'tab:red',
                 'ambiguous': 'tab:orange', 'ambiguity resolved': 'tab:purple', 'switched to a rival': 'tab:pink',
                 'initial pose': 'tab:gray', 'time jumped back': 'tab:brown', 'blackout': 'tab:olive'}
_EVENT = re.compile(r'^\s*(-?[0-9.]+) s: (.*)$')


def parse_events(events: list[str]) -> list[tuple[float, str]]:
    """('T s: text' strings, T in s since the bag's start) -> [(T, text)] of the kinds in :data:`EVENT_COLOURS`."""
    out = []
    for line in events:
        m = _EVENT.match(line)
        if m and any(m.group(2).startswith(k) for k in EVENT_COLOURS):
            out.append((float(m.group(1)), m.group(2)))
    return out


def _event_kind(text: str) -> str:
    return max((k for k in EVENT_COLOURS if text.startswith(k)), key=len)  # the most specific kind


def plot_errors(path: Path, evals: list[Evaluation], threshold: float = 1.0, t0: float | None = None) -> Path:
    """Position and yaw error over time (s since ``t0``, default the first estimate) on linear axes scaled to the
    first method's errors (and the failure threshold): the threshold, the first method's 3-sigma band (largest
    position std; yaw std) and its localization events (the 'T s: text' strings of its metrics' ``events``, T in s
    since the bag's start = ``t0``; not drawn without ``t0``). Errors above the axis are drawn as triangles on its
    top edge."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    since_start = t0 is not None
    if t0 is None:
        t0 = min((ev.est.t[0] for ev in evals if len(ev.est)), default=0.0)
    errs = [_position_errors(ev) for ev in evals]
    main = evals[0]
    ok = np.isfinite(errs[0]) if errs else np.zeros(0, bool)
    top = max(1.25 * threshold, 1.15 * float(np.percentile(errs[0][ok], 99)) if ok.any() else 0.0)
    if main.est.cov is not None and len(main.est):
        tm = main.est.t - t0
        a1.fill_between(tm, 0, np.minimum(3 * position_sigma(main.est.cov), 10 * top), color='0.8', alpha=0.6, lw=0,
                        label=f'{main.name} 3-sigma (largest position std)')
        a2.fill_between(tm, 0, np.degrees(3 * np.sqrt(np.maximum(main.est.cov[:, 2, 2], 0))), color='0.8',
                        alpha=0.6, lw=0, label=f'{main.name} 3-sigma')
    ymax_yaw = 0.0
    for k, (ev, err) in enumerate(zip(evals, errs)):
        t = ev.est.t - t0
        a1.plot(t, np.minimum(err, top), lw=1, color=f'C{k}', label=ev.name)
        off = err > top
        if off.any():
            a1.plot(t[off], np.full(off.sum(), top), '^', ms=4, color=f'C{k}', clip_on=False,
                    label=f'{ev.name} off scale (max {np.nanmax(err):.1f} m)')
        yaw = np.degrees(np.abs(np.angle(np.exp(1j * (ev.est.poses[:, 2] - ev.gt_at_est[:, 2])))))
        a2.plot(t, yaw, lw=1, color=f'C{k}', label=ev.name)
        if np.isfinite(yaw).any():
            ymax_yaw = max(ymax_yaw, float(np.nanpercentile(yaw, 99)))
    a1.axhline(threshold, color='tab:red', ls='--', lw=1, label=f'failure threshold {threshold:g} m')
    kinds: set[str] = set()
    for ts, text in parse_events(main.metrics.get('events', []) if since_start else []):
        kind = _event_kind(text)
        for ax in (a1, a2):
            ax.axvline(ts, color=EVENT_COLOURS[kind], ls=':', lw=1.2,
                       label=None if kind in kinds or ax is a2 else f'{main.name}: {kind}')
        kinds.add(kind)
    a1.set_ylim(0, top)
    a2.set_ylim(0, max(10.0, 1.15 * ymax_yaw))
    a1.set_ylabel('position error [m]')
    a2.set_ylabel('yaw error [deg]')
    a2.set_xlabel('time since the start of the bag [s]' if since_start else 'time since the first estimate [s]')
    a1.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    a1.grid(alpha=0.3)
    a2.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)
    return path


def _speed(m: dict[str, Any]) -> str:
    """A method's speed column: the real-time factor of an offline replay, or the playback rate of a live run."""
    if m.get('playback_rate') is not None:
        return f'live {m["playback_rate"]:g}x'
    rtf = m.get('realtime_factor')
    return f'{rtf:.1f}x' if rtf is not None and np.isfinite(rtf) else '-'


def run_summary(header: dict[str, Any]) -> str:
    """One line on how the data was run: offline, how fast; live, at which playback rate and how long it took."""
    dur, wall = header.get('duration_s', 0.0), header.get('wall_s', float('nan'))
    if header.get('mode') == 'live':
        return (f'live: the bag played at {header.get("playback_rate", 1.0):g}x over DDS, {dur:.1f} s of data in '
                f'{header.get("playback_wall_s", float("nan")):.1f} s of playback ({wall:.1f} s wall in all, '
                'with starting and stopping the graph)')
    return (f'offline replay: {dur:.1f} s of data in {wall:.1f} s wall '
            f'({header.get("realtime_factor", float("nan")):.1f}x real time)')


def metrics_table(evals: list[Evaluation]) -> str:
    """A markdown table: one row per method."""
    rows = ['| method | APE RMSE [m] | APE median [m] | APE max [m] | RPE RMSE [m] | yaw RMSE [deg] | fail (>'
            f'{evals[0].metrics.get("failure_threshold_m", 1.0):g} m) | NEES | estimates | wall [s] | speed |',
            '|---|---|---|---|---|---|---|---|---|---|---|']
    for ev in evals:
        m = ev.metrics
        rows.append(f'| {ev.name} | {m["ape_m"]["rmse"]:.3f} | {m["ape_m"]["median"]:.3f} | {m["ape_m"]["max"]:.3f}'
                    f' | {m["rpe_m"]["rmse"]:.3f} | {m["yaw_error_deg"]["rmse"]:.2f} | {100 * m["failure_rate"]:.1f} %'
                    f' | {m.get("nees_mean", float("nan")):.2f} | {m["matched"]}/{m["estimates"]}'
                    f' | {m.get("wall_s", float("nan")):.1f} | {_speed(m)} |')
    return '\n'.join(rows)


def _consistency(m: dict[str, Any]) -> str:
    """The covariance figures of one method, in words (empty without a covariance)."""
    if 'nees_position_mean' not in m:
        return ''
    c = m['position_within_consistent']
    return (f'NEES {m["nees_mean"]:.2f} (3 dof, ideal 3), position NEES {m["nees_position_mean"]:.2f} (2 dof, ideal '
            f'2); position error inside the 1-sigma ellipse {100 * m["position_within_1sigma"]:.0f} % (ideal '
            f'{100 * c["1sigma"]:.0f} %), inside 2 sigma {100 * m["position_within_2sigma"]:.0f} % (ideal '
            f'{100 * c["2sigma"]:.0f} %); confidently wrong (error > {m["confidently_wrong_rule"]["min_error_m"]:g} m '
            f'and > {m["confidently_wrong_rule"]["n_sigma"]:g} sigma) {m["confidently_wrong_s"]:.1f} s, longest '
            f'{m["confidently_wrong_longest_s"]:.1f} s')


#: How a method started (its metrics' initialisation.kind), in words.
STARTS = {'global': 'nothing (global localization)', 'given': 'the given initial pose',
          'ground_truth': 'the ground truth'}


def write_report(out: Path, evals: list[Evaluation], gt: Trajectory, site: Site | None, header: dict[str, Any],
                 problems: list[str]) -> Path:
    """Write everything to ``out`` (created); returns the path of report.md. ``header['bag_start_s']`` (the bag's
    first receive time, s) is the time origin of errors.png and of the events."""
    out.mkdir(parents=True, exist_ok=True)
    write_tum(out / 'groundtruth.tum', gt)
    for ev in evals:
        write_tum(out / f'{ev.name}.tum', ev.est)
        # ground truth interpolated at this method's stamps: what the metrics compare it with, so that
        # `evo_ape tum groundtruth_<name>.tum <name>.tum` reproduces metrics.json exactly
        write_tum(out / f'groundtruth_{ev.name}.tum',
                  Trajectory(ev.est.t[ev.matched], ev.gt_at_est[ev.matched]))
    partial = bool(problems)
    doc = {**header, 'partial': partial, 'problems': problems, 'methods': {ev.name: ev.metrics for ev in evals}}
    (out / 'metrics.json').write_text(json.dumps(doc, indent=2, default=float))
    figs = []
    if any(len(ev.est) for ev in evals):
        threshold = evals[0].metrics.get('failure_threshold_m', 1.0)
        figs = [plot_trajectory(out / 'trajectory.png', evals, gt, site).name,
                plot_errors(out / 'errors.png', evals, threshold, header.get('bag_start_s')).name]
    lines = [f'# flm-eval: {header.get("bag", "")}', '']
    if partial:
        lines += ['**Partial results.** Problems:', ''] + [f'- {p}' for p in problems] + ['']
    if header.get('notes'):
        lines += ['Warnings:', ''] + [f'- {n}' for n in header['notes']] + ['']
    lines += [f'- mode: {header.get("mode")}', f'- site: {header.get("site")}',
              f'- ground truth: {header.get("ground_truth")}', f'- data: {header.get("duration_s", 0):.1f} s',
              f'- {run_summary(header)}']
    if header.get('model'):
        lines.append(f'- model: {header["model"]["path"]} (sha256 {header["model"]["sha256"]})')
    lines += ['', metrics_table(evals), '']
    for ev in evals:
        init = ev.metrics.get('initialisation', {})
        segs = ev.metrics.get('failure_segments', [])
        ev_lines = ev.metrics.get('events', [])
        lines.append(f'**{ev.name}**: started from {STARTS.get(init.get("kind"), "?")}'
                     + (f' {np.round(init["pose"], 3).tolist()}' if init.get('pose') is not None else '')
                     + f'; {len(segs)} failure segment(s)'
                     + (f'; {_consistency(ev.metrics)}' if _consistency(ev.metrics) else '')
                     + (f'; events: {"; ".join(ev_lines[:10])}' if ev_lines else ''))
        lines.append('')
    files = ['metrics.json', 'groundtruth.tum (as recorded)'] + [f'{ev.name}.tum, groundtruth_{ev.name}.tum'
                                                                 for ev in evals]
    if (out / 'params.yaml').is_file():
        files.append('params.yaml (the parameters the localizer ran with)')
    lines += ['', *[f'![{f}]({f})' for f in figs], '', 'Files: ' + ', '.join(files),
              '', f'Check with evo: `evo_ape tum groundtruth_{evals[0].name}.tum {evals[0].name}.tum` (same numbers).']
    (out / 'report.md').write_text('\n'.join(lines) + '\n')
    return out / 'report.md'
