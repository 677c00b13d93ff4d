"""Training shards: one ``.npz`` per scenario, written atomically, plus a streaming ``manifest.json``.

Shard layout (numpy arrays; strings as fixed-width unicode; nothing pickled)::

    meta                      uint8 JSON (sorted keys): format, seed, name, duration, window, stride, drawn params
    site/grid                 (H, W) int8 occupancy (row 0 = lowest y; 100 occupied, 0 free, -1 outside)
    site/resolution, site/origin (3,), site/anchor_ids (A,), site/anchor_pos (A, 3), site/anchor_bias (A,) known bias
    gt/t (N,), gt/pose (N, 3) x y yaw in map, gt/vel_body (N, 2), gt/yaw_rate (N,), gt/win (K, 2)
    gt/anchor_bias (A,) true biases, gt/kidnap_t (J,) teleport times
    windows/t0, windows/t1    (K,) window bounds, s (on the sensors' header stamps and the ground-truth time)
    <sensor>/t, /stamp, /arrival (M,)  true time, header stamp, receive time, sorted by stamp
    <sensor>/win              (K, 2) int64 [start, end) rows of each window (by stamp)
    lidar2d/ranges (M, B) float32, lidar2d/angles (B,), lidar2d/info [range_min, range_max, time_increment, scan_time]
    lidar3d/ranges (M, R*B) float32 (NaN none), lidar3d/directions (R*B, 3), lidar3d/ring, lidar3d/time
    depth/depth (M, H, W) float32 (NaN invalid), depth/K (3, 3)
    uwb/anchor (M,) int16 index into site/anchor_ids, uwb/range (M,), labels uwb/los, uwb/n_crossings,
    uwb/nlos_bias, uwb/multipath, uwb/person, uwb/epoch; uwb_epoch/t (E,), uwb_epoch/crlb (E, 2, 2), uwb_epoch/win
    imu/gyro, imu/accel (M, 3), imu/gyro_bias, imu/accel_bias (M, 3) true biases
    odom/pose (M, 3) x y yaw in odom, odom/twist (M, 3) vx vy wz
    meta.mounts               per stream [x, y, z, yaw, roll, pitch] as really mounted (e.g. a z-down IMU: roll pi)

Where realism applies (scenario.py) ``site/grid`` is the mapped map, and also::

    site/point_map (P, 3)     the mapped 3D map (with a 3D lidar)
    world/grid (H, W)         the exact occupancy of the world the sensors saw (label)
    gt/roll_pitch (N, 2)      roll and pitch of base_link (tilted platform)
    uwb/tag (M, 3)            true tag position in the map (tilted platform or a tag moving up and down)

Determinism: the zip entries carry a fixed date, arrays are written in a fixed order, JSON with sorted keys, so the
same config and seed give byte-identical shards. A shard is written to ``.<name>.tmp`` and renamed when complete;
the manifest is rewritten (also atomically) after every shard, with ``complete``/``status`` telling whether the run
finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .scenario import Scenario
from .seeds import EVAL_SEED_MAX, EVAL_SEED_MIN

FORMAT = 'flm-datagen-shard'
VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write arrays as a deterministic ``.npz`` (fixed zip dates, given order), atomically (tmp + rename)."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.tmp')
    comp = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(tmp, 'w', compression=comp, allowZip64=True) as zf:
        for k, a in arrays.items():
            zi = zipfile.ZipInfo(k + '.npy', date_time=_ZIP_DATE)
            zi.compress_type = comp
            zi.external_attr = 0o644 << 16
            with zf.open(zi, 'w', force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a), allow_pickle=False)
    os.replace(tmp, path)


def _json_bytes(d: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(d, sort_keys=True, separators=(',', ':')).encode(), dtype=np.uint8)


def _windows(duration: float, window: float, stride: float) -> tuple[np.ndarray, np.ndarray]:
    t0 = np.arange(0.0, max(duration - window, 0.0) + 1e-9, stride)
    if len(t0) == 0:
        t0 = np.zeros(1)
    return t0, np.minimum(t0 + window, duration)


def _win(t: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    return np.stack([np.searchsorted(t, t0, 'left'), np.searchsorted(t, t1, 'left')], -1).astype(np.int64)


def scenario_arrays(sc: Scenario) -> dict[str, np.ndarray]:
    """All arrays of a scenario's shard (see the module docstring), in write order."""
    cfg = sc.config
    t0, t1 = _windows(cfg.duration, cfg.window, cfg.stride)
    out: dict[str, np.ndarray] = {}
    meta = {'format': FORMAT, 'version': VERSION, 'seed': sc.seed, 'name': sc.name, 'duration': cfg.duration,
            'window': cfg.window, 'stride': cfg.stride, 'streams': sorted(sc.streams), 'params': sc.params,
            'frames': {k: getattr(cfg.sensors, k).frame_id for k in sc.streams}, 'robot': sc.motion.robot,
            'mounts': {k: [float(getattr(getattr(cfg.sensors, k).mount, f)) for f in
                           ('x', 'y', 'z', 'yaw', 'roll', 'pitch')] for k in sc.streams if k != 'odom'}}
    out['meta'] = _json_bytes(meta)
    site = sc.site()
    out['site/grid'] = site.map.grid
    out['site/resolution'] = np.float64(site.map.resolution)
    out['site/origin'] = np.asarray(site.map.origin, dtype=np.float64)
    out['site/anchor_ids'] = np.array(sc.anchors.ids, dtype='<U16')
    out['site/anchor_pos'] = sc.anchors.positions
    out['site/anchor_bias'] = np.array([a.bias for a in site.anchors], dtype=np.float64)
    if site.point_map is not None:
        out['site/point_map'] = np.asarray(site.point_map, dtype=np.float32)
    if sc.mapped is not None:
        out['world/grid'] = sc.building.map.grid
    gt = sc.ground_truth
    out['gt/t'] = gt.t
    out['gt/pose'] = gt.pose
    out['gt/vel_body'] = gt.body_velocity()
    out['gt/yaw_rate'] = gt.yaw_rate
    out['gt/win'] = _win(gt.t, t0, t1)
    out['gt/anchor_bias'] = sc.anchors.bias
    out['gt/kidnap_t'] = np.asarray(sc.trajectory.kidnaps, dtype=np.float64)
    if sc.habits is not None and sc.habits.tilt is not None:
        out['gt/roll_pitch'] = np.column_stack(sc.habits.tilt.angles(gt.t))
    out['windows/t0'] = t0
    out['windows/t1'] = t1
    for name in sorted(sc.streams):
        st = sc.streams[name]
        order = np.argsort(st.timing.stamp, kind='stable')
        stamp = st.timing.stamp[order]
        out[f'{name}/t'] = st.timing.t[order]
        out[f'{name}/stamp'] = stamp
        out[f'{name}/arrival'] = st.timing.arrival[order]
        out[f'{name}/win'] = _win(stamp, t0, t1)
        if name == 'lidar2d':
            out['lidar2d/ranges'] = st.ranges[order]
            out['lidar2d/angles'] = st.angles
            out['lidar2d/info'] = np.array([st.range_min, st.range_max, st.time_increment, st.scan_time])
        elif name == 'lidar3d':
            out['lidar3d/ranges'] = st.ranges[order]
            out['lidar3d/directions'] = st.directions
            out['lidar3d/ring'] = st.ring
            out['lidar3d/time'] = st.time
        elif name == 'depth':
            out['depth/depth'] = st.depth[order]
            out['depth/K'] = st.intrinsics.K
        elif name == 'uwb':
            for f in ('anchor', 'range', 'los', 'n_crossings', 'nlos_bias', 'multipath', 'person', 'epoch'):
                out[f'uwb/{f}'] = getattr(st, f)[order]
            out['uwb_epoch/t'] = st.epoch_t
            out['uwb_epoch/crlb'] = st.crlb
            out['uwb_epoch/win'] = _win(st.epoch_t, t0, t1)
            if st.tag is not None:
                out['uwb/tag'] = st.tag[order]
        elif name == 'imu':
            for f in ('gyro', 'accel', 'gyro_bias', 'accel_bias'):
                out[f'imu/{f}'] = getattr(st, f)[order]
        elif name == 'odom':
            out['odom/pose'] = st.pose[order]
            out['odom/twist'] = st.twist[order]
    return out


def write_shard(sc: Scenario, path: str | Path, compress: bool = False) -> dict[str, Any]:
    """Write one scenario's shard atomically; returns its manifest record."""
    path = Path(path)
    arrays = scenario_arrays(sc)
    write_npz(path, arrays, compress)
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return {'file': path.name, 'seed': sc.seed, 'name': sc.name, 'family': sc.building.family,
            'duration': sc.config.duration, 'windows': int(len(arrays['windows/t0'])),
            'messages': {k: int(len(v.timing.t)) for k, v in sorted(sc.streams.items())},
            'bytes': path.stat().st_size, 'sha256': h.hexdigest()}


def load_shard(path: str | Path) -> dict[str, Any]:
    """Load a shard into a dict of arrays, with ``meta`` decoded."""
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d['meta'] = json.loads(bytes(d['meta']).decode())
    return d


def iter_windows(shard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield per-window dicts ``{'t0', 't1', '<stream>/<field>': rows of that window, 'gt/...': ...}``."""
    t0, t1 = shard['windows/t0'], shard['windows/t1']
    per_row: dict[str, list[str]] = {}
    for k, v in shard.items():
        if not isinstance(v, np.ndarray) or '/' not in k or k.endswith('/win'):
            continue
        grp = k.split('/')[0]
        if f'{grp}/win' in shard and v.ndim >= 1 and len(v) == len(shard.get(f'{grp}/t', shard.get(f'{grp}/stamp', []))):
            per_row.setdefault(grp, []).append(k)
    for w in range(len(t0)):
        out: dict[str, Any] = {'t0': float(t0[w]), 't1': float(t1[w])}
        for grp, keys in per_row.items():
            a, b = shard[f'{grp}/win'][w]
            for k in keys:
                out[k] = shard[k][a:b]
        yield out


class Manifest:
    """The manifest of a shard directory, rewritten atomically after every change."""

    def __init__(self, directory: str | Path, config: dict, seeds: list[int], evaluation: bool,
                 extra: dict | None = None) -> None:
        self.path = Path(directory) / 'manifest.json'
        self.data: dict[str, Any] = {
            'format': 'flm-datagen-manifest', 'version': VERSION, 'generator': 'flm_core.datagen',
            'seeds': list(seeds), 'count': len(seeds), 'evaluation': bool(evaluation),
            'reserved_evaluation_seeds': [EVAL_SEED_MIN, EVAL_SEED_MAX], 'config': config, 'shards': [],
            'complete': False, 'status': 'running', **(extra or {})}
        self.write()

    def add(self, record: dict) -> None:
        self.data['shards'].append(record)
        self.data['shards'].sort(key=lambda r: r['index'])
        self.write()

    def finish(self, status: str, error: str | None = None) -> None:
        self.data['status'] = status
        self.data['complete'] = status == 'complete'
        if error:
            self.data['error'] = error
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name('.manifest.json.tmp')
        tmp.write_text(json.dumps(self.data, sort_keys=True, indent=1) + '\n')
        os.replace(tmp, self.path)
