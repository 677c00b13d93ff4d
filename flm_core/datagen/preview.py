"""PNG preview of a scenario: occupancy map, furniture heights, anchors, robot trajectory, kidnaps, people; where the
site map comes from a mapping run (realism), its occupied cells in red over the world the sensors see."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .scenario import Scenario


def write_preview(sc: Scenario, path: str | Path, dpi: int = 110) -> Path:
    import matplotlib  # noqa: PLC0415

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    b = sc.building
    m = b.map
    H, W = m.shape
    ext = [m.origin[0], m.origin[0] + W * m.resolution, m.origin[1], m.origin[1] + H * m.resolution]
    img = np.full((H, W), 1.0)
    img[m.grid < 0] = 0.85
    solid = b.solid()
    img[solid] = np.clip(1.0 - (b.zhi[solid] - np.maximum(b.zlo[solid], 0)) / max(b.ceiling, 1e-3), 0.0, 0.7)
    sx, sy = b.size
    fig, ax = plt.subplots(figsize=(min(14, 3 + sx / 5), min(11, 2 + sy / 5)))
    ax.imshow(img, origin='lower', extent=ext, cmap='gray', vmin=0, vmax=1, interpolation='nearest')
    if sc.mapped is not None:
        occ = np.ma.masked_where(sc.mapped.map.grid != 100, np.ones((H, W)))
        ax.imshow(occ, origin='lower', extent=ext, cmap='autumn', alpha=0.6, interpolation='nearest')
        ax.plot([], [], 's', color='red', alpha=0.6, label='site map (mapping run)')
    gt = sc.ground_truth
    jump = np.r_[False, np.hypot(*np.diff(gt.pose[:, :2], axis=0).T) > 0.5]
    xs, ys = gt.pose[:, 0].copy(), gt.pose[:, 1].copy()
    xs[jump], ys[jump] = np.nan, np.nan
    ax.plot(xs, ys, '-', color='tab:blue', lw=1.2, label=f'robot ({sc.motion.robot})')
    ax.plot(gt.pose[0, 0], gt.pose[0, 1], 'o', color='tab:green', label='start')
    for k in sc.trajectory.kidnaps:
        p = sc.trajectory.sample(np.array([k + 0.5])).pose[0]
        ax.plot(p[0], p[1], 'X', color='tab:red', ms=9, label='kidnap' if k == sc.trajectory.kidnaps[0] else None)
    for i, tr in enumerate(sc.people.trajectories):
        pp = tr.sample(gt.t).pose
        ax.plot(pp[:, 0], pp[:, 1], ':', color='tab:orange', lw=0.8, label='people' if i == 0 else None)
    a = sc.anchors.positions
    ax.scatter(a[:, 0], a[:, 1], marker='^', s=60, c='tab:purple', zorder=5,
               label=f'UWB anchors ({sc.anchors.layout})')
    for i, aid in enumerate(sc.anchors.ids):
        ax.annotate(aid[-2:], (a[i, 0], a[i, 1]), fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_title(f'{sc.name}: {b.family} {sx:.1f} x {sy:.1f} m, {sc.config.duration:.0f} s')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    ax.set_aspect('equal')
    ax.legend(loc='upper right', fontsize=7, framealpha=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
