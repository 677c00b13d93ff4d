"""Evaluation outputs: metrics of an estimated trajectory against ground truth, PNG plots and a markdown report.

:func:`evaluate` matches each estimate with the ground truth interpolated at its stamp and computes evo-style APE
and RPE statistics, yaw error, failure segments (error > threshold), NEES and coverage. :func:`write_report`
writes TUM files, ``metrics.json``, ``trajectory.png`` (the path over the map with anchors, coloured by error),
``errors.png`` (error and 3-sigma bound over time) and ``report.md`` linking them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flm_core.evaluation.metrics import pose_nees
from flm_core.evaluation.trajectory import (
    Trajectory, ape_stats, failure_segments, interpolate, rpe_stats, write_tum, yaw_stats)
from flm_core.site import Site


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
        'estimates': int(len(est)), 'matched': int(ok.sum()),
        'ape_m': ape_stats(e, g), 'rpe_m': rpe_stats(e, g, delta=1),
        'yaw_error_deg': {k: float(np.degrees(v)) for k, v in yaw_stats(e, g).items()},
        'failure_threshold_m': threshold,
        'failure_rate': float(np.mean(err > threshold)) if len(err) else float('nan'),
        'failure_segments': failure_segments(est.t[ok], err, threshold),
    }
    if est.cov is not None and ok.any():
        v = pose_nees(e, est.cov[ok], g)
        m['nees_mean'] = float(np.nanmean(v)) if np.isfinite(v).any() else float('nan')
        m['nees_dof'] = 3
    if duration:
        m['first_estimate_s'] = float(est.t[0] - gt.t[0]) if len(est) and len(gt) else float('nan')
    m.update(extra or {})
    return Evaluation(name=name, est=est, gt_at_est=gt_at, matched=ok, metrics=m)


def _plot_map(ax, site: Site | None) -> None:
    if site is None or site.map is None:
        return
    m = site.map
    h, w = m.grid.shape
    x0, y0 = m.origin[0], m.origin[1]
    img = np.where(m.grid < 0, 0.8, 1.0 - m.grid / 100.0)
    ax.imshow(img, cmap='gray', vmin=0, vmax=1, origin='lower',
              extent=(x0, x0 + w * m.resolution, y0, y0 + h * m.resolution))
    if site.anchors:
        a = site.anchor_positions()
        ax.scatter(a[:, 0], a[:, 1], marker='^', c='tab:purple', s=40, label='UWB anchors', zorder=3)


def plot_trajectory(path: Path, evals: list[Evaluation], gt: Trajectory, site: Site | None) -> Path:
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(9, 7))
    _plot_map(ax, site)
    ax.plot(gt.poses[:, 0], gt.poses[:, 1], 'k--', lw=1, label='ground truth')
    main = evals[0]
    e = main.est.poses
    err = np.hypot(*(e[:, :2] - main.gt_at_est[:, :2]).T)
    sc = ax.scatter(e[:, 0], e[:, 1], c=np.nan_to_num(err, nan=0), cmap='viridis', s=6, vmin=0,
                    vmax=max(0.5, float(np.nanpercentile(err, 95)) if np.isfinite(err).any() else 0.5),
                    label=f'{main.name} (colour: error)', zorder=4)
    fig.colorbar(sc, ax=ax, label='position error [m]', shrink=0.7)
    for ev in evals[1:]:
        ax.plot(ev.est.poses[:, 0], ev.est.poses[:, 1], lw=1, label=ev.name)
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    ax.legend(loc='best', fontsize=8, framealpha=0.6)
    ax.set_title('trajectory in the map frame')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_errors(path: Path, evals: list[Evaluation]) -> Path:
    import matplotlib  # noqa: PLC0415
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t0 = min(ev.est.t[0] for ev in evals if len(ev.est)) if any(len(ev.est) for ev in evals) else 0.0
    for ev in evals:
        e = ev.est.poses
        err = np.hypot(*(e[:, :2] - ev.gt_at_est[:, :2]).T)
        a1.plot(ev.est.t - t0, err, lw=1, label=ev.name)
        yaw = np.degrees(np.abs(np.angle(np.exp(1j * (e[:, 2] - ev.gt_at_est[:, 2])))))
        a2.plot(ev.est.t - t0, yaw, lw=1, label=ev.name)
    main = evals[0]
    if main.est.cov is not None and len(main.est):
        sig = 3 * np.sqrt(np.maximum(np.linalg.eigvalsh(main.est.cov[:, :2, :2])[:, -1], 0))
        a1.plot(main.est.t - t0, sig, 'k:', lw=1, label=f'{main.name} 3-sigma (largest axis)')
        a2.plot(main.est.t - t0, np.degrees(3 * np.sqrt(np.maximum(main.est.cov[:, 2, 2], 0))), 'k:', lw=1)
    a1.set_ylabel('position error [m]')
    a2.set_ylabel('yaw error [deg]')
    a2.set_xlabel('time [s]')
    a1.legend(fontsize=8)
    a1.set_yscale('symlog', linthresh=0.1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metrics_table(evals: list[Evaluation]) -> str:
    """A markdown table: one row per method."""
    rows = ['| method | APE RMSE [m] | APE median [m] | APE max [m] | RPE RMSE [m] | yaw RMSE [deg] | fail (>'
            f'{evals[0].metrics.get("failure_threshold_m", 1.0):g} m) | NEES | estimates |',
            '|---|---|---|---|---|---|---|---|---|']
    for ev in evals:
        m = ev.metrics
        rows.append(f'| {ev.name} | {m["ape_m"]["rmse"]:.3f} | {m["ape_m"]["median"]:.3f} | {m["ape_m"]["max"]:.3f}'
                    f' | {m["rpe_m"]["rmse"]:.3f} | {m["yaw_error_deg"]["rmse"]:.2f} | {100 * m["failure_rate"]:.1f} %'
                    f' | {m.get("nees_mean", float("nan")):.2f} | {m["matched"]}/{m["estimates"]} |')
    return '\n'.join(rows)


def write_report(out: Path, evals: list[Evaluation], gt: Trajectory, site: Site | None, header: dict[str, Any],
                 problems: list[str]) -> Path:
    """Write everything to ``out`` (created); returns the path of report.md."""
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
        figs = [plot_trajectory(out / 'trajectory.png', evals, gt, site).name,
                plot_errors(out / 'errors.png', evals).name]
    lines = [f'# flm-eval: {header.get("bag", "")}', '']
    if partial:
        lines += ['**Partial results.** Problems:', ''] + [f'- {p}' for p in problems] + ['']
    lines += [f'- mode: {header.get("mode")}', f'- site: {header.get("site")}',
              f'- ground truth: {header.get("ground_truth")}', f'- data: {header.get("duration_s", 0):.1f} s', '']
    if 'realtime_factor' in header:
        lines += [f'- replay speed: {header["realtime_factor"]:.1f}x real time', '']
    lines += [metrics_table(evals), '']
    for ev in evals:
        segs = ev.metrics.get('failure_segments', [])
        ev_lines = ev.metrics.get('events', [])
        if segs or ev_lines:
            lines.append(f'**{ev.name}**: {len(segs)} failure segment(s)'
                         + (f'; events: {"; ".join(ev_lines[:10])}' if ev_lines else ''))
    lines += ['', *[f'![{f}]({f})' for f in figs], '',
              'Files: ' + ', '.join(['metrics.json', 'groundtruth.tum (as recorded)']
                                    + [f'{ev.name}.tum, groundtruth_{ev.name}.tum' for ev in evals]),
              '', f'Check with evo: `evo_ape tum groundtruth_{evals[0].name}.tum {evals[0].name}.tum` (same numbers).']
    (out / 'report.md').write_text('\n'.join(lines) + '\n')
    return out / 'report.md'
