"""Tokenizer: a sensor window + a Site + a reference pose -> fixed-width token arrays (numpy only, no torch).

This is the only preprocessing the runtime needs next to the TorchScript file. Two stages:

1. :func:`prepare` (once per update, independent of any pose hypothesis): every measurement of the window is put
   in the robot frame at ``t_ref`` (``base_link`` at the reference time). Sensor mounts come from a :class:`Rig`;
   motion between a measurement's stamp and ``t_ref`` is compensated with wheel odometry when the window has it
   (otherwise the model only sees the time offset). Output: a :class:`SensorFrame`.
2. :func:`tokenize` (per hypothesis, vectorised over K hypotheses): a hypothesis is a pose ``ref`` (x, y, yaw) of
   base_link at ``t_ref`` in the map frame. Every token is expressed **in the hypothesis frame**: the map is looked
   up around the hypothesis, anchors are moved into it, sensor points already are in it. A rigid motion of the
   whole world (map origin, anchors, prior, truth) therefore leaves the tokens unchanged, and the output correction,
   expressed in the hypothesis frame, moves with the world (this is how the model is equivariant).

Token format (all SI units, REP-103, hypothesis frame ``H`` = base_link at ``t_ref`` if the hypothesis is right):

``feats`` (K, N, 12) float32, ``dt`` (K, N) float32 s (stamp - t_ref, <= 0), ``types`` (K, N) int64 (index into
:data:`TOKEN_TYPES`), ``mask`` (K, N) bool (True = real token, False = padding). Per type the 12 features are:

=========  ==================  =======================  ======================  ========  ==========  ==========
type       0:3 p (m)           3:6 o                    6:9 s                   9         10          11
=========  ==================  =======================  ======================  ========  ==========  ==========
scan       beam endpoint       offset to nearest map    sensor origin (m)       range m   |offset| m  lever (*)
points     point (3D lidar)    obstacle from p (m,      "                       "         "           "
depth      point (depth cam)   clipped to offset_clip)  "                       "         "           "
uwb        anchor position     unit vector tag->anchor  tag position (m)        range m   range -     0
                                                                                          predicted m
imu        0                   accel x, y (m/s^2),      0                       0         0           0
                               yaw rate (rad/s)
odom       past robot position dyaw (rad), 0, 0         twist vx, vy (m/s),     0         0           0
           (m, from odometry)                           wz (rad/s)
map        obstacle sample     0                        0                       distance  0           0
                                                                                to H m
prior      0                   sigma x, y (m), yaw      correlations xy, x-yaw, global    0           0
                               (rad)                    y-yaw                   flag
=========  ==================  =======================  ======================  ========  ==========  ==========

(*) lever = (p_x o_y - p_y o_x) / (p_x^2 + p_y^2 + 1): the yaw a point-to-map offset asks for.

Token order: prior, map, scan, points, depth, uwb, imu, odom; then padding. Permuting points, beams or anchors in the
input does not change the token set (points are selected by a permutation-free rule: sorted by azimuth then evenly
strided; UWB by stamp).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..mapindex import MapIndex
from ..measurements import CameraIntrinsics, Image, ImuSample, LaserScan2D, OdometrySample, PointCloud, RangeSample
from ..site import Site

#: Sensor modalities, in the order of the health vector; also the stream names of ``TimeBuffer.window``.
MODALITIES: tuple[str, ...] = ('scan', 'points', 'depth', 'uwb', 'imu', 'odom')
#: All token types (index = the ``types`` value).
TOKEN_TYPES: tuple[str, ...] = MODALITIES + ('map', 'prior')
TYPE_ID: dict[str, int] = {n: i for i, n in enumerate(TOKEN_TYPES)}
N_FEAT = 12
N_TYPES = len(TOKEN_TYPES)
#: Per type, the scale each feature is divided by inside the network (SI units -> O(1)).
FEATURE_SCALE = np.array([
    # p x,y,z          o x,y,z            s x,y,z          9     10    11
    [8, 8, 2,          0.5, 0.5, 0.5,     0.5, 0.5, 1,     8,    0.5,  0.5],   # scan
    [8, 8, 2,          0.5, 0.5, 0.5,     0.5, 0.5, 1,     8,    0.5,  0.5],   # points
    [8, 8, 2,          0.5, 0.5, 0.5,     0.5, 0.5, 1,     8,    0.5,  0.5],   # depth
    [8, 8, 2,          1, 1, 1,           0.5, 0.5, 1,     8,    0.5,  1],     # uwb
    [1, 1, 1,          1, 1, 0.5,         1, 1, 1,         1,    1,    1],     # imu
    [0.5, 0.5, 1,      0.2, 1, 1,         0.5, 0.5, 0.5,   1,    1,    1],     # odom
    [8, 8, 2,          1, 1, 1,           1, 1, 1,         8,    1,    1],     # map
    [1, 1, 1,          0.5, 0.5, 0.2,     1, 1, 1,         1,    1,    1],     # prior
], dtype=np.float32)
#: sigmas of the prior token in global mode (no prior): x, y (m), yaw (rad).
GLOBAL_SIGMA = (3.0, 3.0, math.pi)


@dataclass(frozen=True)
class TokenConfig:
    """Caps and preprocessing constants. window: s of UWB/IMU/odometry history used (the latest scan/cloud of each
    sensor frame and the latest image are used whatever their age within the window handed in); offset_clip: m,
    point-to-map offsets are clipped to it."""

    max_beams: int = 64
    max_points: int = 64
    max_depth: int = 48
    max_uwb: int = 32
    imu_bins: int = 10
    odom_samples: int = 10
    max_map: int = 24
    map_radius: float = 12.0
    map_voxel: float = 0.5
    offset_clip: float = 1.0
    window: float = 1.0
    min_point_z: float = 0.15
    max_point_range: float = 30.0
    depth_stride: int = 4
    max_odom_extrapolation: float = 0.2

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Rig:
    """Where the sensors sit on the robot. mounts: frame_id -> (x, y, z, yaw) of the sensor body in base_link
    (m, rad; frames ending in ``_optical_frame`` use REP-103 camera axes, z forward); uwb_frame: the frame of the
    primary UWB tag (the tag of a RangeSample whose ``tag_frame`` is ''); tag_frames: every UWB tag frame of the
    robot (the primary one included; empty: only uwb_frame); depth_intrinsics: the depth camera's CameraInfo (depth
    images are ignored without it). Unknown frames are taken at base_link."""

    mounts: Mapping[str, tuple[float, float, float, float]] = field(default_factory=dict)
    uwb_frame: str = 'uwb_tag'
    depth_intrinsics: CameraIntrinsics | None = None
    tag_frames: tuple[str, ...] = ()

    def mount(self, frame_id: str) -> np.ndarray:
        """(4,) x, y, z, yaw of ``frame_id`` in base_link."""
        m = self.mounts.get(frame_id)
        return np.zeros(4) if m is None else np.asarray(m, dtype=np.float64)

    def tag_frame(self, tag_frame: str) -> str:
        """The frame of the UWB tag a range names ('' = the primary tag, :attr:`uwb_frame`)."""
        return tag_frame or self.uwb_frame

    def tag_mount(self, tag_frame: str) -> np.ndarray:
        """(4,) x, y, z, yaw in base_link of the UWB tag a range names ('' = the primary tag)."""
        return self.mount(self.tag_frame(tag_frame))


# ------------------------------------------------------------------------------------------------- frame prep
@dataclass
class SensorFrame:
    """A window's measurements in base_link at t_ref (hypothesis-independent).

    pts (P, 3) endpoints, org (P, 3) sensor origins, rng (P,) ranges m, pdt (P,) s, ptype (P,) type ids;
    uwb_anchor (U, 3) anchor positions in the MAP frame, uwb_tag (U, 3) tag positions, uwb_range (U,) m (bias
    removed), udt (U,), uwb_tag_id (U,) which tag measured each range (0, 1, ... in order of appearance; one id per
    tag frame); fixed (F, 12) hypothesis-free tokens (imu, odom) with fdt (F,) and ftype (F,);
    present: modality name -> whether it contributed tokens."""

    t_ref: float
    pts: np.ndarray
    org: np.ndarray
    rng: np.ndarray
    pdt: np.ndarray
    ptype: np.ndarray
    uwb_anchor: np.ndarray
    uwb_tag: np.ndarray
    uwb_range: np.ndarray
    udt: np.ndarray
    fixed: np.ndarray
    fdt: np.ndarray
    ftype: np.ndarray
    present: dict[str, bool]
    uwb_tag_id: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class _OdomTrack:
    """Relative motion base_link(t_ref) <- base_link(t) from the odometry samples of the window."""

    def __init__(self, samples: Sequence[tuple[float, OdometrySample]], t_ref: float, max_extra: float) -> None:
        from ..geometry import quat_to_yaw  # noqa: PLC0415

        self.ok = len(samples) > 0
        if not self.ok:
            return
        self.t = np.array([s for s, _ in samples], dtype=np.float64)
        pose = np.empty((len(samples), 3))
        pose[:, :2] = [o.position[:2] for _, o in samples]
        pose[:, 2] = np.unwrap(quat_to_yaw(np.array([o.orientation for _, o in samples])))
        self.pose = pose
        self.twist = np.array([[o.linear_velocity[0], o.linear_velocity[1], o.angular_velocity[2]]
                               for _, o in samples])
        self.max_extra = max_extra
        self.ref = self.at(np.array([t_ref]))[0]

    def at(self, t: np.ndarray) -> np.ndarray:
        """(n,) stamps -> (n, 3) odom-frame poses (interpolated; extrapolated with the end twists, bounded)."""
        t = np.asarray(t, dtype=np.float64)
        out = np.stack([np.interp(t, self.t, self.pose[:, k]) for k in range(3)], axis=-1)
        for end, sgn in ((-1, 1.0), (0, -1.0)):
            dtx = np.clip(sgn * (t - self.t[end]), 0.0, self.max_extra) * sgn
            if np.any(dtx != 0):
                v = self.twist[end]
                yaw = self.pose[end, 2] + v[2] * dtx
                c, s = np.cos(self.pose[end, 2]), np.sin(self.pose[end, 2])
                out = np.where((dtx != 0)[:, None], np.stack([
                    self.pose[end, 0] + (c * v[0] - s * v[1]) * dtx,
                    self.pose[end, 1] + (s * v[0] + c * v[1]) * dtx, yaw], -1), out)
        return out

    def relative(self, t: np.ndarray) -> np.ndarray:
        """(n,) stamps -> (n, 3) pose of base_link(t) in base_link(t_ref)."""
        if not self.ok:
            return np.zeros((len(np.atleast_1d(t)), 3))
        p = self.at(t)
        c, s = math.cos(self.ref[2]), math.sin(self.ref[2])
        dx, dy = p[:, 0] - self.ref[0], p[:, 1] - self.ref[1]
        return np.stack([c * dx + s * dy, -s * dx + c * dy, p[:, 2] - self.ref[2]], -1)


def _apply2(rel: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """rel (3,) planar pose, pts (n, 3) -> (n, 3) rel (+) pts (z unchanged)."""
    c, s = math.cos(rel[2]), math.sin(rel[2])
    return np.stack([rel[0] + c * pts[:, 0] - s * pts[:, 1], rel[1] + s * pts[:, 0] + c * pts[:, 1], pts[:, 2]], -1)


def _mount_points(mount: np.ndarray, pts: np.ndarray, optical: bool = False) -> np.ndarray:
    """Sensor-frame points (n, 3) -> base_link with mount (x, y, z, yaw)."""
    if optical:  # REP-103 optical (z fwd, x right, y down) -> body (x fwd, y left, z up)
        pts = np.stack([pts[:, 2], -pts[:, 0], -pts[:, 1]], -1)
    c, s = math.cos(mount[3]), math.sin(mount[3])
    return np.stack([mount[0] + c * pts[:, 0] - s * pts[:, 1], mount[1] + s * pts[:, 0] + c * pts[:, 1],
                     mount[2] + pts[:, 2]], -1)


def _stride_by_azimuth(pts: np.ndarray, n: int) -> np.ndarray:
    """Indices of at most n points: sorted by azimuth (then range), evenly strided. Permutation-free."""
    if len(pts) <= n:
        az = np.arctan2(pts[:, 1], pts[:, 0])
        return np.lexsort((np.hypot(pts[:, 0], pts[:, 1]), az))
    az = np.arctan2(pts[:, 1], pts[:, 0])
    order = np.lexsort((np.hypot(pts[:, 0], pts[:, 1]), az))
    pick = np.floor(np.arange(n) * (len(pts) / n)).astype(np.int64)
    return order[pick]


def newest_per_frame(items: Sequence[tuple[float, Any]]) -> list[tuple[float, Any]]:
    """The newest (stamp, measurement) of each ``frame_id`` (each lidar of a robot) in a stamp-sorted list, oldest
    first."""
    seen: dict[str, tuple[float, Any]] = {}
    for e in reversed(items):
        seen.setdefault(e[1].frame_id, e)
    return sorted(seen.values(), key=_stamp)


def _until(items: Sequence[tuple[float, Any]], t: float) -> Sequence[tuple[float, Any]]:
    """The (stamp, item) pairs of a stamp-sorted list with stamp <= t."""
    return items[:bisect.bisect_right(items, t, key=_stamp)]


def _since(items: Sequence[tuple[float, Any]], t: float) -> Sequence[tuple[float, Any]]:
    """The (stamp, item) pairs of a stamp-sorted list with stamp >= t."""
    return items[bisect.bisect_left(items, t, key=_stamp):]


def _stamp(e: tuple[float, Any]) -> float:
    return e[0]


def _empty3() -> np.ndarray:
    return np.zeros((0, 3))


def prepare(window: Mapping[str, Sequence[tuple[float, Any]]], site: Site, t_ref: float, rig: Rig | None = None,
            cfg: TokenConfig | None = None, index: MapIndex | None = None) -> SensorFrame:
    """Put a window (``TimeBuffer.window`` output: stream -> [(stamp, measurement)], streams named as in
    :data:`MODALITIES`, each oldest first) into base_link at ``t_ref``. Streams with other names are ignored;
    missing or empty streams are simply absent (their modality gets no tokens). Measurements stamped after t_ref
    are ignored. Scans and clouds: the newest of each sensor frame (several lidars share the kind's token cap);
    depth: the newest image; UWB: each range at the lever arm of the tag that measured it (``Rig.tag_mount``)."""
    cfg = cfg or TokenConfig()
    rig = rig or Rig()
    index = index or MapIndex(site, cfg.map_voxel)
    w = {k: _until(window.get(k) or [], t_ref + 1e-9) for k in MODALITIES}
    odom = _OdomTrack(_since(w['odom'], t_ref - cfg.window - 0.5), t_ref, cfg.max_odom_extrapolation)
    P_pts, P_org, P_rng, P_dt, P_type = [], [], [], [], []
    present = {k: False for k in MODALITIES}

    def add_clouds(kind: str, parts: list[tuple[float, np.ndarray, np.ndarray]], cap: int) -> None:
        """Points of one or several sensors of a kind, each part (stamp, mount (4,), xyz (n, 3) in base_link), the
        ``cap`` shared: selected by azimuth about the mean of the sensor origins (one sensor: its own origin),
        each point keeping its own sensor's origin, range and stamp."""
        xs, orgs, ds, ks = [], [], [], []
        for k, (stamp, mount, xyz_base) in enumerate(parts):
            org_b = mount[:3]
            d = np.linalg.norm(xyz_base - org_b, axis=1)
            keep = (xyz_base[:, 2] >= cfg.min_point_z) & (d <= cfg.max_point_range) if kind != 'scan' else \
                np.ones(len(xyz_base), dtype=bool)
            if keep.any():
                xs.append(xyz_base[keep])
                ds.append(d[keep])
                orgs.append(org_b)
                ks.append(np.full(int(keep.sum()), k))
        if not xs:
            return
        xyz_base, d, part = np.concatenate(xs), np.concatenate(ds), np.concatenate(ks)
        centre = orgs[0] if len(orgs) == 1 else np.mean(orgs, axis=0)
        sel = _stride_by_azimuth(xyz_base - centre, cap)
        xyz_sel, part_sel = xyz_base[sel], part[sel]
        p, o, dt = np.empty((len(sel), 3)), np.empty((len(sel), 3)), np.empty(len(sel))
        for k in np.unique(part_sel):
            stamp, mount, _ = parts[k]
            rel = odom.relative(np.array([stamp]))[0]
            m = part_sel == k
            p[m] = _apply2(rel, xyz_sel[m])
            o[m] = _apply2(rel, mount[None, :3])
            dt[m] = stamp - t_ref
        P_pts.append(p)
        P_org.append(o)
        P_rng.append(d[sel])
        P_dt.append(dt)
        P_type.append(np.full(len(p), TYPE_ID[kind]))
        present[kind] = True

    scans = []
    for stamp, scan in newest_per_frame(w['scan']):    # every lidar's newest scan
        assert isinstance(scan, LaserScan2D)
        ok = scan.valid()
        r, a = scan.ranges[ok].astype(np.float64), scan.angles[ok].astype(np.float64)
        xyz = np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(r)], -1)
        m = rig.mount(scan.frame_id)
        scans.append((stamp, m, _mount_points(m, xyz)))
    add_clouds('scan', scans, cfg.max_beams)
    clouds = []
    for stamp, pc in newest_per_frame(w['points']):    # every 3D lidar's newest cloud
        assert isinstance(pc, PointCloud)
        xyz = pc.xyz[pc.finite()].astype(np.float64)
        m = rig.mount(pc.frame_id)
        clouds.append((stamp, m, _mount_points(m, xyz)))
    add_clouds('points', clouds, cfg.max_points)
    if w['depth'] and rig.depth_intrinsics is not None:
        stamp, img = w['depth'][-1]
        assert isinstance(img, Image)
        K = rig.depth_intrinsics
        z = img.depth_m()[::cfg.depth_stride, ::cfg.depth_stride]
        rays = K.rays()[::cfg.depth_stride, ::cfg.depth_stride]
        ok = np.isfinite(z)
        xyz = (rays[ok] * z[ok][:, None]).astype(np.float64)
        m = rig.mount(img.frame_id)
        add_clouds('depth', [(stamp, m, _mount_points(m, xyz, optical=True))], cfg.max_depth)

    # UWB: latest max_uwb valid ranges to known anchors within the window, each at its own tag's lever arm
    ua, ut, ur, ud = [], [], [], []
    tag_ids: dict[str, int] = {}
    for stamp, rs in reversed(w['uwb']):
        if stamp < t_ref - cfg.window or len(ua) >= cfg.max_uwb:
            break
        assert isinstance(rs, RangeSample)
        anc = index.anchors.get(rs.anchor_id)
        if anc is None or not rs.valid():
            continue
        ua.append(anc[0])
        ur.append(rs.range - anc[1])
        ud.append(stamp - t_ref)
        ut.append(tag_ids.setdefault(rs.tag_frame or rig.uwb_frame, len(tag_ids)))   # '': the primary tag
    if ua:
        rel = odom.relative(np.array(ud) + t_ref)
        tag_m = np.stack([rig.mount(f) for f in tag_ids])[np.array(ut)]     # (U, 4) each range's tag
        c, s = np.cos(rel[:, 2]), np.sin(rel[:, 2])
        ut_arr = np.stack([rel[:, 0] + c * tag_m[:, 0] - s * tag_m[:, 1], rel[:, 1] + s * tag_m[:, 0]
                           + c * tag_m[:, 1], tag_m[:, 2]], -1)
        present['uwb'] = True
    else:
        ut_arr = _empty3()

    fixed, fdt, ftype = [], [], []
    imu = _since(w['imu'], t_ref - cfg.window)
    if imu:
        yawm = rig.mount(imu[0][1].frame_id)[3]
        rows = np.array([(s, m.linear_acceleration[0], m.linear_acceleration[1], m.angular_velocity[2])
                         for s, m in imu], dtype=np.float64)                  # (n, 4) stamp, accel x y, gyro z
        st = rows[:, 0].copy()
        rows[:, 0] -= t_ref                             # relative stamps: epoch seconds would lose ~1e-7 s in sums
        c, s = math.cos(yawm), math.sin(yawm)
        edges = np.linspace(t_ref - cfg.window, t_ref, cfg.imu_bins + 1)
        b = np.clip(np.searchsorted(edges, st, side='right') - 1, 0, cfg.imu_bins - 1)
        cnt = np.bincount(b, minlength=cfg.imu_bins)
        used = np.nonzero(cnt)[0]
        mean = np.stack([np.bincount(b, rows[:, j], cfg.imu_bins)[used] for j in range(4)], -1) / cnt[used, None]
        f = np.zeros((len(used), N_FEAT))
        f[:, 3] = c * mean[:, 1] - s * mean[:, 2]       # the mean accel turned from the IMU mount into base_link
        f[:, 4] = s * mean[:, 1] + c * mean[:, 2]
        f[:, 5] = mean[:, 3]
        fixed.extend(f)
        fdt.extend(mean[:, 0])
        ftype.extend([TYPE_ID['imu']] * len(used))
        present['imu'] = True
    od = _since(w['odom'], t_ref - cfg.window)
    if od and odom.ok:
        st = np.array([s for s, _ in od])
        pick = np.unique(np.floor(np.linspace(0, len(od) - 1, min(cfg.odom_samples, len(od)))).astype(int))
        rel = odom.relative(st[pick])
        for j, k in enumerate(pick):
            o = od[k][1]
            f = np.zeros(N_FEAT)
            f[0:2] = rel[j, :2]
            f[3] = rel[j, 2]
            f[6:9] = [o.linear_velocity[0], o.linear_velocity[1], o.angular_velocity[2]]
            fixed.append(f)
            fdt.append(st[k] - t_ref)
            ftype.append(TYPE_ID['odom'])
        present['odom'] = True

    def cat(xs: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros(shape)

    return SensorFrame(
        t_ref=float(t_ref), pts=cat(P_pts, (0, 3)), org=cat(P_org, (0, 3)), rng=cat(P_rng, (0,)),
        pdt=cat(P_dt, (0,)), ptype=cat(P_type, (0,)).astype(np.int64),
        uwb_anchor=np.array(ua).reshape(-1, 3), uwb_tag=ut_arr, uwb_range=np.array(ur, dtype=np.float64),
        udt=np.array(ud, dtype=np.float64), uwb_tag_id=np.array(ut, dtype=np.int64),
        fixed=np.array(fixed).reshape(-1, N_FEAT),
        fdt=np.array(fdt, dtype=np.float64), ftype=np.array(ftype, dtype=np.int64), present=present)


# ------------------------------------------------------------------------------------------------- tokens
@dataclass
class Tokens:
    """Token arrays for K hypotheses (see the module docstring): feats (K, N, 12) float32, dt (K, N) float32,
    types (K, N) int64, mask (K, N) bool; refs (K, 3) float64 hypothesis poses in the map frame."""

    feats: np.ndarray
    dt: np.ndarray
    types: np.ndarray
    mask: np.ndarray
    refs: np.ndarray

    @property
    def n(self) -> int:
        return int(self.feats.shape[1])


def prior_features(cov: np.ndarray | None, ref_yaw: np.ndarray) -> np.ndarray:
    """Prior token features (K, 12) from a map-frame covariance (3, 3) or (K, 3, 3) rotated into each hypothesis
    frame; ``None`` = global mode (GLOBAL_SIGMA, flag 1)."""
    K = len(ref_yaw)
    f = np.zeros((K, N_FEAT))
    if cov is None:
        f[:, 3:6] = GLOBAL_SIGMA
        f[:, 9] = 1.0
        return f
    cov = np.broadcast_to(np.asarray(cov, dtype=np.float64), (K, 3, 3))
    c, s = np.cos(ref_yaw), np.sin(ref_yaw)
    R = np.zeros((K, 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    C = np.einsum('kji,kjl,klm->kim', R, cov, R)  # R^T cov R
    sd = np.sqrt(np.clip(np.diagonal(C, axis1=1, axis2=2), 1e-8, None))
    f[:, 3:6] = sd
    f[:, 6] = C[:, 0, 1] / (sd[:, 0] * sd[:, 1])
    f[:, 7] = C[:, 0, 2] / (sd[:, 0] * sd[:, 2])
    f[:, 8] = C[:, 1, 2] / (sd[:, 1] * sd[:, 2])
    return f


def tokenize(frame: SensorFrame, index: MapIndex, refs: np.ndarray, prior_cov: np.ndarray | None = None,
             cfg: TokenConfig | None = None) -> Tokens:
    """Tokens of K hypotheses ``refs`` (K, 3) (or one (3,)) for one prepared frame. ``prior_cov`` (3, 3) / (K, 3, 3)
    map-frame covariance of the prior (tracking) or None (global)."""
    cfg = cfg or TokenConfig()
    refs = np.atleast_2d(np.asarray(refs, dtype=np.float64))
    K = refs.shape[0]
    c, s = np.cos(refs[:, 2])[:, None], np.sin(refs[:, 2])[:, None]
    parts_f: list[np.ndarray] = []
    parts_dt: list[np.ndarray] = []
    parts_t: list[np.ndarray] = []
    parts_m: list[np.ndarray] = []

    def push(f: np.ndarray, dt: np.ndarray, t: np.ndarray, m: np.ndarray | None = None) -> None:
        n = f.shape[1]
        parts_f.append(f)
        parts_dt.append(np.broadcast_to(dt, (K, n)))
        parts_t.append(np.broadcast_to(t, (K, n)))
        parts_m.append(np.ones((K, n), dtype=bool) if m is None else m)

    push(prior_features(prior_cov, refs[:, 2])[:, None, :], np.zeros(1), np.array([TYPE_ID['prior']]))
    if index.has_map and cfg.max_map > 0:
        mp, ok = index.map_samples(refs[:, :2], cfg.max_map, cfg.map_radius)
        dx, dy = mp[..., 0] - refs[:, 0:1], mp[..., 1] - refs[:, 1:2]
        f = np.zeros((K, cfg.max_map, N_FEAT))
        f[..., 0] = c * dx + s * dy
        f[..., 1] = -s * dx + c * dy
        f[..., 2] = mp[..., 2]
        f[..., 9] = np.hypot(dx, dy)
        f[~ok] = 0.0
        push(f, np.zeros(cfg.max_map), np.full(cfg.max_map, TYPE_ID['map']), ok)
    P = len(frame.pts)
    if P:
        p = frame.pts
        f = np.zeros((K, P, N_FEAT))
        f[..., 0:3] = p[None]
        f[..., 6:9] = frame.org[None]
        f[..., 9] = frame.rng[None]
        if index.has_map:
            pm = np.stack([refs[:, 0:1] + c * p[None, :, 0] - s * p[None, :, 1],
                           refs[:, 1:2] + s * p[None, :, 0] + c * p[None, :, 1],
                           np.broadcast_to(p[None, :, 2], (K, P))], -1)
            q = index.nearest(pm)
            om = q - pm
            o = np.stack([c * om[..., 0] + s * om[..., 1], -s * om[..., 0] + c * om[..., 1], om[..., 2]], -1)
            n = np.linalg.norm(o, axis=-1, keepdims=True)
            o = o * np.minimum(1.0, cfg.offset_clip / np.maximum(n, 1e-9))
            f[..., 3:6] = o
            f[..., 10] = np.minimum(n[..., 0], cfg.offset_clip)
            f[..., 11] = (p[None, :, 0] * o[..., 1] - p[None, :, 1] * o[..., 0]) / (p[None, :, 0] ** 2
                                                                                   + p[None, :, 1] ** 2 + 1.0)
        else:
            f[..., 10] = cfg.offset_clip
        push(f, frame.pdt, frame.ptype)
    U = len(frame.uwb_range)
    if U:
        a = frame.uwb_anchor
        dx, dy = a[None, :, 0] - refs[:, 0:1], a[None, :, 1] - refs[:, 1:2]
        ar = np.stack([c * dx + s * dy, -s * dx + c * dy, np.broadcast_to(a[None, :, 2], (K, U))], -1)
        v = ar - frame.uwb_tag[None]
        pred = np.maximum(np.linalg.norm(v, axis=-1), 1e-6)
        f = np.zeros((K, U, N_FEAT))
        f[..., 0:3] = ar
        f[..., 3:6] = v / pred[..., None]
        f[..., 6:9] = frame.uwb_tag[None]
        f[..., 9] = frame.uwb_range[None]
        f[..., 10] = np.clip(frame.uwb_range[None] - pred, -3.0, 3.0)
        push(f, frame.udt, np.full(U, TYPE_ID['uwb']))
    if len(frame.fixed):
        push(np.broadcast_to(frame.fixed[None], (K,) + frame.fixed.shape), frame.fdt, frame.ftype)
    feats = np.concatenate(parts_f, axis=1).astype(np.float32)
    dt = np.concatenate(parts_dt, axis=1).astype(np.float32)
    types = np.concatenate(parts_t, axis=1).astype(np.int64)
    mask = np.concatenate(parts_m, axis=1)
    return Tokens(feats=feats, dt=dt, types=types, mask=mask, refs=refs)


def collate(items: Sequence[Tokens]) -> Tokens:
    """Stack token sets of different lengths into one batch, padding with masked zeros."""
    N = max(t.n for t in items)
    B = sum(t.feats.shape[0] for t in items)
    feats = np.zeros((B, N, N_FEAT), dtype=np.float32)
    dt = np.zeros((B, N), dtype=np.float32)
    types = np.full((B, N), TYPE_ID['map'], dtype=np.int64)
    mask = np.zeros((B, N), dtype=bool)
    refs = np.zeros((B, 3))
    i = 0
    for t in items:
        k, n = t.feats.shape[:2]
        feats[i:i + k, :n], dt[i:i + k, :n], types[i:i + k, :n], mask[i:i + k, :n] = t.feats, t.dt, t.types, t.mask
        refs[i:i + k] = t.refs
        i += k
    return Tokens(feats=feats, dt=dt, types=types, mask=mask, refs=refs)


def compose_correction(refs: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """refs (K, 3) hypotheses (+) corr (K, 3) corrections expressed in each hypothesis frame -> (K, 3) map poses."""
    c, s = np.cos(refs[:, 2]), np.sin(refs[:, 2])
    yaw = refs[:, 2] + corr[:, 2]
    return np.stack([refs[:, 0] + c * corr[:, 0] - s * corr[:, 1], refs[:, 1] + s * corr[:, 0] + c * corr[:, 1],
                     (yaw + np.pi) % (2 * np.pi) - np.pi], -1)


def rotate_cov(cov: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(K, 3, 3) covariances in hypothesis axes -> map axes (R cov R^T with R the yaw rotation)."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros((len(yaw), 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    return np.einsum('kij,kjl,kml->kim', R, cov, R)
