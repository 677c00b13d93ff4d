"""Runtime API the ROS node calls: :class:`Localizer` (model file + numpy preprocessing, no model code).

::

    loc = Localizer.load()                          # the shipped model, CPU (torch if installed, else ONNX Runtime)
    loc = Localizer.load(backend='onnx')            # the shipped model's ONNX twin (flm_v1.onnx), no torch needed
    est = loc.localize(buffer.window(t), site, t, prior_pose=p, prior_cov=P, rig=rig)   # tracking
    est = loc.localize(buffer.window(t), site, t, rig=rig)                                # global (no prior)
    est.pose, est.cov, est.health, est.mode, est.latency

Tracking: the prior is the reference frame; the model predicts a correction and a covariance, and the update is
repeated ``iterations`` times (default 2) from the corrected pose. Global: hypotheses on a lattice of free space x
yaw are pre-ranked by a cheap vectorised likelihood (distance-field lookups of a few sensor points, UWB range
residuals), the best ``global_candidates`` are scored and corrected by the model in one batch, the best few are
refined in tracking mode, and the one the model scores highest wins.

The network runs on one of two back ends (backends.py): torch (the TorchScript file; CPU or CUDA, fp32 or fp16)
or ONNX Runtime (its ONNX twin; CPU or CUDA execution provider). Nothing here imports torch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..mapindex import MapIndex
from ..site import Site
from .backends import Backend, OnnxBackend, TorchBackend, open_backend
from .tokens import MODALITIES, Rig, SensorFrame, TokenConfig, Tokens, compose_correction, prepare, rotate_cov, tokenize

#: The shipped model (TorchScript with its flm_meta.json record; its ONNX twin flm_v1.onnx lies beside it).
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / 'checkpoints' / 'flm_v1.pt'


@dataclass
class Estimate:
    """pose (3,) x, y (m), yaw (rad) of base_link in the map frame at ``stamp``; cov (3, 3) its covariance (map
    axes, order x, y, yaw); health: modality -> [0, 1] (1 = consistent with the others and the map; 0.0 for
    modalities with no data in the window, see ``present``); mode 'tracking' or 'global'; latency s of wall time
    spent in localize(); score in [0, 1] the model's belief that the pose is within ~0.5 m / 15 deg;
    alternatives (global mode): the other refined hypotheses, poses (K, 3), covs (K, 3, 3), scores (K,), best first
    (a symmetric building can look the same from several places); floor (3,) std (m, m, rad) of the error that
    consecutive results share and no filter averages away (how well the map agrees with the world), None where
    the source does not know it (the network alone)."""

    pose: np.ndarray
    cov: np.ndarray
    health: dict[str, float]
    mode: str
    latency: float
    score: float = 0.0
    stamp: float = 0.0
    present: dict[str, bool] = field(default_factory=dict)
    hypotheses: int = 1
    alternatives: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    floor: np.ndarray | None = None


@dataclass(frozen=True)
class PassOptions:
    """How many network passes a step runs (the defaults of :class:`Localizer` and of the ``model.*`` parameters,
    flm_core.config): see :meth:`Localizer.__init__`."""

    iterations: int = 2
    converge: float = 1.0
    global_candidates: int = 128
    global_refine: int = 16


_PASSES = PassOptions()


class Localizer:
    """A loaded FLM model plus the numpy preprocessing around it (see the module docstring)."""

    def __init__(self, module: Any, meta: dict[str, Any], device: str = 'cpu', fp16: bool = False,
                 iterations: int = _PASSES.iterations, global_candidates: int = _PASSES.global_candidates,
                 global_refine: int = _PASSES.global_refine, converge: float = _PASSES.converge) -> None:
        """module: a loaded back end (what :meth:`load` passes) or a torch module (TorchScript or eager, run on
        ``device``, in half precision with ``fp16``); meta: the model's record (``tokens`` at least); iterations:
        most model passes per tracking update (each from the previous pass's pose); converge: stop before that once
        every hypothesis's correction is within ``converge`` standard deviations of the model's own covariance
        (Mahalanobis distance; a further pass could not move the pose by more than the model can tell apart; 0 =
        always run every pass); global_candidates: pre-ranked hypotheses the model scores in global mode;
        global_refine: the best of them refined further (with at least 2 passes)."""
        self.backend: Backend = module if isinstance(module, (TorchBackend, OnnxBackend)) \
            else TorchBackend(module, device, fp16)
        self.module = module
        self.meta = meta
        self.device = self.backend.device
        self.fp16 = self.backend.fp16
        self.iterations = int(iterations)
        self.global_candidates = int(global_candidates)
        self.global_refine = int(global_refine)
        self.converge = float(converge)
        self.tokens_cfg = TokenConfig(**meta['tokens'])
        self._index: tuple[Site, MapIndex] | None = None

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = 'cpu', fp16: bool = False, backend: str = 'auto',
             threads: int | None = None, **options: float) -> Localizer:
        """Load a model written by flm-export (default: the shipped one). backend: 'auto' (torch where installed,
        else ONNX Runtime; ONNX Runtime for an ``.onnx`` path), 'torch' or 'onnx'; NAME.pt and NAME.onnx are found
        beside each other (see backends.py). device: 'cpu', 'cuda' or 'auto'; fp16 (torch on CUDA only) runs the
        network in half precision; threads: the back end's intra-op threads (None: its default); options:
        ``iterations``, ``converge``, ``global_candidates``, ``global_refine`` (see the constructor). Raises
        ModelFileError for anything that is not an FLM model file of a supported version, ValueError for a device
        or precision the back end cannot run, ImportError when the back end's library is not installed."""
        impl, meta = open_backend(path or DEFAULT_MODEL, backend, device, fp16, threads)
        return cls(impl, meta, impl.device, impl.fp16, **options)

    # ------------------------------------------------------------------ helpers
    def map_index(self, site: Site) -> MapIndex:
        """The (cached) map index of ``site``; rebuilt when a different Site object is passed."""
        if self._index is None or self._index[0] is not site:
            self._index = (site, MapIndex(site, self.tokens_cfg.map_voxel))
        return self._index[1]

    def forward(self, tok: Tokens, chunk: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the network on a token batch -> corr (K, 3), cov (K, 3, 3) in hypothesis axes, health (K, 6) in
        [0, 1], score (K,) in [0, 1]. Hypotheses go through ``chunk`` at a time: attention memory grows with the
        batch (128 global candidates at once held ~0.3 GB that the allocator then kept)."""
        run = self.backend.run
        parts = [run(tok.feats[a:a + chunk], tok.dt[a:a + chunk], tok.types[a:a + chunk], tok.mask[a:a + chunk])
                 for a in range(0, max(len(tok.feats), 1), chunk)]
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]

    def _refine(self, frame: SensorFrame, index: MapIndex, poses: np.ndarray, covs: np.ndarray | None,
                iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Tracking-mode iterations for K poses at once -> poses (K, 3), covs (K, 3, 3) map axes, health, score.
        Stops early once every correction is within ``self.converge`` standard deviations (see the constructor)."""
        cov = covs
        health = score = np.zeros(0)
        for i in range(max(1, iterations)):
            tok = tokenize(frame, index, poses, cov, self.tokens_cfg)
            corr, c, health, score = self.forward(tok)
            new = compose_correction(poses, corr)
            cov = rotate_cov(c, poses[:, 2])
            poses = new
            if i + 1 < iterations and self.converge > 0 and bool(np.all(_mahalanobis(corr, c) <= self.converge)):
                break
        assert cov is not None
        return poses, cov, health, score

    # ------------------------------------------------------------------ API
    def localize(self, window: Mapping[str, Sequence[tuple[float, Any]]], site: Site, t: float,
                 prior_pose: np.ndarray | None = None, prior_cov: np.ndarray | None = None,
                 rig: Rig | None = None, iterations: int | None = None, global_candidates: int | None = None,
                 global_refine: int | None = None) -> Estimate:
        """Localize base_link at time ``t`` from a window (``TimeBuffer.window`` output, streams named 'scan',
        'points', 'depth', 'uwb', 'imu', 'odom'; any may be missing). With ``prior_pose`` (3,) (and ``prior_cov``
        (3, 3), default 0.25 m / 0.1 rad std) the tracking mode is used, else the global mode. The other arguments
        default to the instance's settings."""
        t0 = time.perf_counter()
        iterations = self.iterations if iterations is None else iterations
        global_candidates = self.global_candidates if global_candidates is None else global_candidates
        global_refine = self.global_refine if global_refine is None else global_refine
        index = self.map_index(site)
        frame = prepare(window, site, t, rig, self.tokens_cfg, index)
        if prior_pose is not None:
            pose0 = np.asarray(prior_pose, dtype=np.float64).reshape(1, 3)
            cov0 = np.diag([0.25 ** 2, 0.25 ** 2, 0.1 ** 2]) if prior_cov is None else np.asarray(prior_cov, float)
            poses, covs, health, score = self._refine(frame, index, pose0, cov0[None], iterations)
            k, mode, nh = 0, 'tracking', 1
        else:
            poses, covs, health, score, nh = self._global(frame, index, iterations, global_candidates,
                                                          global_refine)
            k, mode = int(np.argmax(score)), 'global'
        h = {m: (float(health[k, i]) if frame.present[m] else 0.0) for i, m in enumerate(MODALITIES)}
        alt = None
        if mode == 'global' and len(poses) > 1:
            rest = [i for i in np.argsort(-score) if i != k]
            alt = (poses[rest].copy(), 0.5 * (covs[rest] + covs[rest].transpose(0, 2, 1)), score[rest].copy())
        return Estimate(pose=poses[k].copy(), cov=0.5 * (covs[k] + covs[k].T), health=h, mode=mode,
                        latency=time.perf_counter() - t0, score=float(score[k]), stamp=float(t),
                        present=dict(frame.present), hypotheses=nh, alternatives=alt)

    def track_many(self, window: Mapping[str, Sequence[tuple[float, Any]]], site: Site, t: float,
                   poses: np.ndarray, covs: np.ndarray, rig: Rig | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tracking mode for K priors (poses (K, 3), covs (K, 3, 3)) in one batch -> poses (K, 3), covs (K, 3, 3)
        map axes, scores (K,) in [0, 1] (how the pipeline weighs rival hypotheses after an ambiguous global
        result)."""
        index = self.map_index(site)
        frame = prepare(window, site, t, rig, self.tokens_cfg, index)
        out, covs, _, score = self._refine(frame, index, np.asarray(poses, float).reshape(-1, 3),
                                           np.asarray(covs, float).reshape(-1, 3, 3), self.iterations)
        return out, 0.5 * (covs + covs.transpose(0, 2, 1)), score

    # ------------------------------------------------------------------ global mode
    def proposals(self, frame: SensorFrame, index: MapIndex, max_positions: int = 6000, n_yaw: int = 36,
                  keep: int = 64) -> np.ndarray:
        """Pre-ranked global hypotheses (keep, 3): free-space lattice x yaw bins (fixed to the map's axes) scored
        with a cheap likelihood (a log-likelihood field over the occupancy grid for <= 32 sensor points, robust UWB
        range residuals), non-maximum suppressed (0.75 m / 0.4 rad)."""
        spacing = 0.5
        xy = index.free_positions(0.2, spacing)
        while len(xy) > max_positions:
            spacing *= 1.25
            xy = index.free_positions(0.2, spacing)
        if len(xy) == 0:
            lo = frame.uwb_anchor[:, :2].min(0) if len(frame.uwb_anchor) else np.zeros(2)
            hi = frame.uwb_anchor[:, :2].max(0) if len(frame.uwb_anchor) else np.zeros(2)
            gx, gy = np.meshgrid(np.arange(lo[0], hi[0] + 1e-6, 0.5), np.arange(lo[1], hi[1] + 1e-6, 0.5))
            xy = np.stack([gx.ravel(), gy.ravel()], -1)
        has_pts = len(frame.pts) > 0 and index.has_map
        ny = n_yaw if has_pts else 8
        yaw0 = float(index.site.map.origin[2]) if index.site.map is not None else 0.0  # bins fixed to the map
        yaws = (yaw0 + np.arange(ny) * (2 * math.pi / ny) + math.pi) % (2 * math.pi) - math.pi
        logp = np.zeros((len(xy), ny), dtype=np.float32)
        if has_pts:
            p = frame.pts[np.linspace(0, len(frame.pts) - 1, min(32, len(frame.pts))).astype(int), :2]
            if index.kind == 'grid':
                logp += self._field_scores(index, xy, yaws, p)
            else:
                c, s = np.cos(yaws), np.sin(yaws)
                rx = c[:, None] * p[None, :, 0] - s[:, None] * p[None, :, 1]
                ry = s[:, None] * p[None, :, 0] + c[:, None] * p[None, :, 1]
                for a in range(0, len(xy), 256):
                    q = np.stack([xy[a:a + 256, None, None, 0] + rx[None], xy[a:a + 256, None, None, 1] + ry[None]],
                                 -1)
                    d = index.distance(q)
                    logp[a:a + 256] += np.log(0.05 + np.exp(-0.5 * (d / 0.25) ** 2)).mean(-1)
        tag_id = frame.uwb_tag_id if len(frame.uwb_tag_id) == len(frame.uwb_range) else \
            np.zeros(len(frame.uwb_range), dtype=np.int64)
        pairs = sum(len(np.unique(frame.uwb_anchor[tag_id == k], axis=0)) for k in np.unique(tag_id))
        for k in np.unique(tag_id):   # each tag at its own lever arm: its mean position, its mean range per anchor
            mine = tag_id == k
            tag_xy = frame.uwb_tag[mine, :2].mean(0)
            ids, inv = np.unique(frame.uwb_anchor[mine], axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            r = np.bincount(inv, frame.uwb_range[mine]) / np.bincount(inv)
            dz2 = (ids[:, 2] - frame.uwb_tag[mine, 2].mean()) ** 2
            for j, yw in enumerate(yaws):  # the tag's lever arm turns with the yaw
                c, s = math.cos(yw), math.sin(yw)
                txy = xy + np.array([c * tag_xy[0] - s * tag_xy[1], s * tag_xy[0] + c * tag_xy[1]])
                pred = np.sqrt(((txy[:, None, :] - ids[None, :, :2]) ** 2).sum(-1) + dz2[None])
                # the mean over every (tag, anchor) pair
                logp[:, j] += 3.0 * np.log(0.05 + np.exp(-0.5 * ((r[None] - pred) / 0.4) ** 2)).sum(-1) / pairs
        order = np.argsort(-logp, axis=None, kind='stable')[:50 * keep]
        cand = np.stack([xy[order // ny, 0], xy[order // ny, 1], yaws[order % ny]], -1)
        picked = np.zeros((0, 3))
        for h in cand:
            if len(picked):
                near = (np.hypot(picked[:, 0] - h[0], picked[:, 1] - h[1]) <= 0.75) & \
                    (np.abs((picked[:, 2] - h[2] + math.pi) % (2 * math.pi) - math.pi) <= 0.4)
                if near.any():
                    continue
            picked = np.vstack([picked, h])
            if len(picked) >= keep:
                break
        return picked

    @staticmethod
    def _field_scores(index: MapIndex, xy: np.ndarray, yaws: np.ndarray, p: np.ndarray) -> np.ndarray:
        """(M, Y) mean log-likelihood-field value of points p (P, 2) (base frame) for every position x yaw, computed
        in the grid's cell coordinates (float32 gathers from a precomputed field)."""
        m = index.site.map
        assert m is not None and index.dist is not None
        field = index.cache.get('loglik_field')
        if field is None:
            field = np.log(0.05 + np.exp(-0.5 * (index.dist / 0.25) ** 2)).astype(np.float32)
            index.cache['loglik_field'] = field
        H, W = field.shape
        co, so = math.cos(m.origin[2]), math.sin(m.origin[2])
        dx, dy = xy[:, 0] - m.origin[0], xy[:, 1] - m.origin[1]
        pu = ((co * dx + so * dy) / m.resolution).astype(np.float32)           # (M,) cell coordinates
        pv = ((-so * dx + co * dy) / m.resolution).astype(np.float32)
        rel = yaws - m.origin[2]
        c, s = np.cos(rel), np.sin(rel)
        ru = ((c[:, None] * p[None, :, 0] - s[:, None] * p[None, :, 1]) / m.resolution).astype(np.float32)
        rv = ((s[:, None] * p[None, :, 0] + c[:, None] * p[None, :, 1]) / m.resolution).astype(np.float32)
        flat = field.ravel()
        out = np.empty((len(xy), len(yaws)), dtype=np.float32)
        for a in range(0, len(xy), 256):
            iu = np.clip(np.floor(pu[a:a + 256, None, None] + ru[None]), 0, W - 1).astype(np.int32)
            iv = np.clip(np.floor(pv[a:a + 256, None, None] + rv[None]), 0, H - 1).astype(np.int32)
            out[a:a + 256] = flat[iv * W + iu].mean(-1)
        return out

    def _global(self, frame: SensorFrame, index: MapIndex, iterations: int, n_cand: int, n_refine: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        hyps = self.proposals(frame, index, keep=n_cand)
        if len(hyps) == 0:
            hyps = np.zeros((1, 3))
        tok = tokenize(frame, index, hyps, None, self.tokens_cfg)
        corr, c, _, score = self.forward(tok)
        refined = compose_correction(hyps, corr)
        covs = rotate_cov(c, hyps[:, 2])
        top = np.argsort(-score)[:n_refine]
        poses, covs2, health, score2 = self._refine(frame, index, refined[top], covs[top], max(2, iterations))
        return poses, covs2, health, score2, len(hyps)


def _mahalanobis(corr: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """(K,) Mahalanobis lengths of corrections corr (K, 3) under covariances cov (K, 3, 3) (same axes)."""
    try:
        d2 = np.einsum('ki,ki->k', corr, np.linalg.solve(cov, corr[..., None])[..., 0])
    except np.linalg.LinAlgError:
        return np.full(len(corr), np.inf)
    return np.sqrt(np.maximum(d2, 0.0))
