"""UWB two-way ranging to every anchor, round-robin within each epoch.

Range model for anchor i at true time t (tag = the robot's uwb mount):
    r = ||tag - anchor_i|| + bias_i + N(0, sigma_los^2)
        + [NLOS]       nlos_bias_scale * sum_k material_k.uwb_bias * (0.5 + Exp(1)) + N(0, nlos_sigma^2)
        + [person]     U(person_bias)
        + [multipath]  U(multipath_bias) with probability multipath_prob
NLOS is exactly "the 3D anchor-tag segment crosses a wall (below its height) or a box"; every crossing adds its
own positive bias, so the bias grows with the walls crossed. A link is blocked (no message) when the summed
attenuation of the crossings exceeds ``attenuation_budget`` dB, the distance exceeds ``max_range``, a person on the
line of sight blocks it (probability ``person_block_prob``), or it drops out. Each epoch also gets the Cramer-Rao
bound of the 2D position from the anchors that answered (crlb.py: the Gaussian noise and the random, exponential
part of the NLOS delay; its fixed part as a known bias).

Real-driver habits (config.HabitsConfig, applied by scenario.py): with ``shared_stamp`` all ranges of one ranging
frame carry one header stamp, the time the frame's last range was taken (the driver publishes the frame when it is
complete), and arrive together; each range is still measured at its own slot time. The tag may sit on a tilted
platform (``tilt``) and move up and down (``tag_height``: its height in base_link over time)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...measurements import RangeSample
from ..anchors import AnchorSet
from ..buildings import MATERIALS, Building
from ..config import UwbConfig
from ..crlb import range_crlb
from ..dynamics import People
from ..motion import Trajectory
from ..raycast import segments_cross, segments_hit_boxes
from ..platform import Tilt, Wave
from .common import SensorTiming, draw, mount_pose, mount_position

_BIAS = np.array([m.uwb_bias for m in MATERIALS])
_ATT = np.array([m.attenuation_db for m in MATERIALS])


@dataclass
class UwbStream:
    """Per message (N,): anchor index, range (m), and labels (los, n_crossings, nlos_bias, multipath,
    person); per epoch (E,): t_epoch, crlb (E, 2, 2), tag (E, 3)."""

    timing: SensorTiming
    anchor_ids: tuple[str, ...]
    anchor: np.ndarray
    range: np.ndarray
    los: np.ndarray
    n_crossings: np.ndarray
    nlos_bias: np.ndarray
    multipath: np.ndarray
    person: np.ndarray
    epoch: np.ndarray
    epoch_t: np.ndarray
    crlb: np.ndarray
    max_range: float
    params: dict
    tag: np.ndarray | None = None     # (N, 3) true tag position in the map (when it is not a fixed mount)

    def measurements(self) -> Iterator[RangeSample]:
        for i in range(len(self.timing.t)):
            yield RangeSample(stamp=float(self.timing.stamp[i]), anchor_id=self.anchor_ids[int(self.anchor[i])],
                              range=float(self.range[i]), min_range=0.0, max_range=self.max_range)


def link_crossings(b: Building, tag: np.ndarray, anc: np.ndarray, chunk: int = 4096
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For N links tag (N, 3) -> anc (N, 3): (count (N,) int, bias_sum (N,) m of material biases, att (N,) dB)."""
    n = tag.shape[0]
    cnt = np.zeros(n, dtype=np.int64)
    bsum = np.zeros(n)
    att = np.zeros(n)
    for a in range(0, n, chunk):
        s = slice(a, min(n, a + chunk))
        p, q = tag[s], anc[s]
        if len(b.walls):
            cr, f = segments_cross(p[:, :2], q[:, :2], b.walls[:, :2], b.walls[:, 2:4])
            z = p[:, 2:3] + f * (q[:, 2:3] - p[:, 2:3])
            cr &= (z <= b.wall_height[None, :]) & (z >= 0)
            cnt[s] += cr.sum(1)
            bsum[s] += cr @ _BIAS[b.wall_material]
            att[s] += cr @ _ATT[b.wall_material]
        if len(b.boxes):
            hit, _ = segments_hit_boxes(p, q, b.boxes)
            cnt[s] += hit.sum(1)
            bsum[s] += hit @ _BIAS[b.box_material]
            att[s] += hit @ _ATT[b.box_material]
    return cnt, bsum, att


def _person_on_link(people: People | None, t: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    if people is None or people.count == 0:
        return np.zeros(len(t), dtype=bool)
    c = people.positions(t)  # (N, P, 2)
    d = (q - p)[:, None, :2]
    f = c - p[:, None, :2]
    L2 = np.maximum((d * d).sum(-1), 1e-12)
    s = np.clip((f * d).sum(-1) / L2, 0.0, 1.0)
    close = np.linalg.norm(f - s[..., None] * d, axis=-1) < people.radius
    z = p[:, None, 2] + s * (q[:, None, 2] - p[:, None, 2])
    return np.any(close & (z <= people.height), axis=1)


def simulate_uwb(cfg: UwbConfig, traj: Trajectory, b: Building, anchors: AnchorSet, people: People | None,
                 duration: float, rng: np.random.Generator, tilt: Tilt | None = None, tag_height: Wave | None = None,
                 shared_stamp: bool = False) -> UwbStream:
    A = len(anchors.ids)
    phase = float(rng.uniform(0.0, 1.0 / cfg.rate))
    t_ep = phase + np.arange(int(np.ceil(duration * cfg.rate)) + 1) / cfg.rate
    t_ep = t_ep[t_ep < duration]
    offset = float(rng.normal(0.0, cfg.clock_offset_sigma)) if cfg.clock_offset_sigma > 0 else 0.0
    latency = float(rng.uniform(cfg.latency[0], cfg.latency[1]))
    E = len(t_ep)
    sigma = draw(cfg.los_sigma, rng)
    slot = 1.0 / (cfg.rate * max(A, 1))
    t = (t_ep[:, None] + slot * np.arange(A)[None, :]).ravel()          # (E*A,)
    ai = np.tile(np.arange(A), E)
    gt = traj.sample(t)
    moving_tag = tilt is not None or tag_height is not None
    if moving_tag:
        tag = mount_position(gt, cfg.mount, tilt, None if tag_height is None else tag_height.value(t))
    else:
        tag = mount_pose(gt, cfg.mount)[:, :3]
    anc = anchors.positions[ai]
    dist = np.linalg.norm(tag - anc, axis=1)
    cnt, bsum, att = link_crossings(b, tag, anc)
    nlos = cnt > 0
    person = _person_on_link(people, t, tag, anc)
    n = len(t)
    nlos_bias = np.where(nlos, cfg.nlos_bias_scale * bsum * (0.5 + rng.exponential(1.0, n)), 0.0)
    nlos_noise = np.where(nlos, rng.normal(0.0, cfg.nlos_sigma, n) if cfg.nlos_sigma > 0 else 0.0, 0.0)
    pbias = np.where(person, rng.uniform(cfg.person_bias[0], cfg.person_bias[1], n), 0.0)
    mp = rng.random(n) < cfg.multipath_prob
    mpb = np.where(mp, rng.uniform(cfg.multipath_bias[0], cfg.multipath_bias[1], n), 0.0)
    r = dist + anchors.bias[ai] + rng.normal(0.0, sigma, n) + nlos_bias + nlos_noise + pbias + mpb
    r = np.maximum(r, 0.0)
    blocked = (att > cfg.attenuation_budget) | (dist > cfg.max_range) \
        | (person & (rng.random(n) < cfg.person_block_prob)) | (rng.random(n) < cfg.dropout)
    keep = ~blocked
    # CRLB per epoch from the anchors that answered, each with its LOS/NLOS Gaussian noise std and NLOS delay scale
    sig = np.where(nlos, np.hypot(sigma, cfg.nlos_sigma), sigma).reshape(E, A)
    tau = np.where(nlos, cfg.nlos_bias_scale * bsum, 0.0).reshape(E, A)
    crlb = range_crlb(tag.reshape(E, A, 3)[:, 0, :], anchors.positions, sig, keep.reshape(E, A), tau)
    tk = t[keep]
    if shared_stamp:  # one stamp and one arrival per frame: when its last range was taken
        frame_end = t_ep + (A - 1) * slot
        ek = np.repeat(np.arange(E), A)[keep]
        stamp = (frame_end + offset + (rng.normal(0.0, cfg.stamp_jitter, E) if cfg.stamp_jitter > 0 else 0.0))[ek]
        arrival = (frame_end + latency + (np.abs(rng.normal(0.0, cfg.latency_jitter, E))
                                          if cfg.latency_jitter > 0 else 0.0))[ek]
    else:
        stamp = tk + offset + (rng.normal(0.0, cfg.stamp_jitter, len(tk)) if cfg.stamp_jitter > 0 else 0.0)
        arrival = tk + latency + (np.abs(rng.normal(0.0, cfg.latency_jitter, len(tk)))
                                  if cfg.latency_jitter > 0 else 0.0)
    timing = SensorTiming(t=tk, stamp=stamp, arrival=arrival, clock_offset=offset, latency=latency)
    return UwbStream(timing=timing, anchor_ids=anchors.ids, anchor=ai[keep].astype(np.int16), range=r[keep],
                     los=~(nlos | person)[keep], n_crossings=cnt[keep].astype(np.int16), nlos_bias=nlos_bias[keep],
                     multipath=mp[keep], person=person[keep], epoch=np.repeat(np.arange(E), A)[keep],
                     epoch_t=t_ep, crlb=crlb, max_range=float(cfg.max_range),
                     params={'los_sigma': sigma, 'blocked_fraction': float(blocked.mean()) if n else 0.0,
                             'shared_stamp': bool(shared_stamp), **timing.to_dict()},
                     tag=tag[keep] if moving_tag else None)
