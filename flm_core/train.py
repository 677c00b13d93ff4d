"""Training of the FLM on procedurally generated scenarios, streamed (nothing has to fit in memory).

Data: :class:`ScenarioStream` (a torch ``IterableDataset``) draws scenario seeds from the TRAINING range only
(``flm_core.datagen.seeds``; the held-out building family is never generated), turns each scenario into
``samples_per_scenario`` training samples (random time, random sensor subset = modality dropout, optional corruption
of one modality, a perturbed prior or a global-mode hypothesis) through exactly the runtime path
(:class:`~flm_core.model.replay.ScenarioReplay` -> ``tokens.prepare`` -> ``tokens.tokenize``), and mixes samples of
several scenarios in a shuffle buffer. A curriculum (:class:`Curriculum`) widens prior perturbations, sensor noise,
people and the share of global hypotheses with training progress.

Loop: AdamW + cosine schedule, gradient clipping, CSV log (+ TensorBoard if installed and asked for), tqdm bar,
checkpoints (``weights_only``-loadable dicts, see checkpoint.py) and exact step-count resume; DistributedDataParallel
when started by ``torchrun`` (gloo on CPU, nccl on CUDA), each rank with its own data seeds.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .datagen import EVAL_SEED_MIN, ScenarioConfig, generate_scenario
from .datagen.config import FAMILIES
from .mapindex import MapIndex
from .model.checkpoint import load_training_checkpoint, save_training_checkpoint
from .model.loss import flm_loss
from .model.net import FLM, FLMConfig, count_parameters
from .model.replay import ScenarioReplay
from .model.tokens import MODALITIES, Tokens, TokenConfig, collate, prepare, tokenize

#: Sensor subsets the benches evaluate; training draws them often (the rest of the time a random subset).
BENCH_SUBSETS: dict[str, tuple[str, ...]] = {
    'lidar2d+odom': ('scan', 'odom'),
    'lidar3d+imu': ('points', 'imu'),
    'depth+odom': ('depth', 'odom'),
    'uwb+imu': ('uwb', 'imu'),
    'uwb': ('uwb',),
    'all': MODALITIES,
}
EXTEROCEPTIVE = ('scan', 'points', 'depth', 'uwb')


@dataclass
class Curriculum:
    """Each ``(start, end)`` is interpolated linearly over training progress in [0, 1]."""

    prior_sigma_xy: tuple[float, float] = (0.3, 1.2)     # m, max prior std (log-uniform from 0.03)
    prior_sigma_yaw: tuple[float, float] = (0.1, 0.5)    # rad
    global_frac: tuple[float, float] = (0.15, 0.3)       # share of global-mode hypotheses
    noise_scale: tuple[float, float] = (0.5, 1.5)        # multiplies lidar/depth/UWB noise ranges
    people_max: tuple[float, float] = (0.0, 4.0)
    corrupt_prob: tuple[float, float] = (0.0, 0.15)      # one modality replaced by wrong data

    def at(self, progress: float) -> dict[str, float]:
        p = min(max(progress, 0.0), 1.0)
        return {f.name: getattr(self, f.name)[0] + p * (getattr(self, f.name)[1] - getattr(self, f.name)[0])
                for f in dataclasses.fields(self)}


@dataclass
class TrainConfig:
    out: str = 'runs/flm'
    steps: int = 4000
    batch: int = 32
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 1
    holdout_family: str = 'cluttered'
    realism_share: float = 0.0            # share of scenarios generated with the realism dimensions (mapped maps,
                                          # biased anchors, shared UWB stamps, tilt, ...); 0 draws nothing (v1 data)
    scenario_duration: float = 24.0
    samples_per_scenario: int = 160
    shuffle_buffer: int = 384
    p_bench_subset: float = 0.6
    log_every: int = 10
    ckpt_every: int = 250
    threads: int = 0                      # torch intra-op threads (0 = leave torch's default)
    tensorboard: bool = False
    model: FLMConfig = field(default_factory=FLMConfig)
    tokens: TokenConfig = field(default_factory=TokenConfig)
    curriculum: Curriculum = field(default_factory=Curriculum)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d['tokens'] = self.tokens.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        model = FLMConfig(**d.pop('model', {}))
        tokens = TokenConfig(**d.pop('tokens', {}))
        cur = {k: tuple(v) for k, v in d.pop('curriculum', {}).items()}
        return cls(**d, model=model, tokens=tokens, curriculum=Curriculum(**cur))


# --------------------------------------------------------------------------------------------- data
def training_families(holdout: str) -> tuple[str, ...]:
    fams = tuple(f for f in FAMILIES if f != holdout)
    if not fams:
        raise ValueError(f'holdout_family {holdout!r} leaves no family to train on')
    return fams


def scenario_config(rng: np.random.Generator, families: tuple[str, ...], duration: float, cur: dict[str, float]
                    ) -> ScenarioConfig:
    """One draw of the generation dimensions the curriculum controls (sensors on/off, beams, noise, people)."""
    cfg = ScenarioConfig(duration=duration)
    cfg.building.families = families
    cfg.motion.kidnap_prob = 0.0
    ns = cur['noise_scale']
    s = cfg.sensors
    # ray casting dominates the cost of a sample: beams/rings/rates are drawn on the cheap side (the model keeps
    # <= 64 points per cloud anyway); lower rates also teach it older clouds
    s.lidar2d.beams = int(rng.choice([90, 180, 360, 360, 720, 1080, 2048], p=[.15, .2, .3, .15, .1, .05, .05]))
    s.lidar2d.range_noise = (0.005 * ns, 0.02 * ns)
    s.lidar3d.enabled = bool(rng.random() < 0.45)
    s.lidar3d.rings = int(rng.choice([8, 16]))
    s.lidar3d.beams = int(rng.choice([90, 180]))
    s.lidar3d.rate = float(rng.choice([5.0, 10.0]))
    s.lidar3d.range_noise = (0.01 * ns, 0.03 * ns)
    s.depth.enabled = bool(rng.random() < 0.45)
    s.depth.rate = float(rng.choice([5.0, 10.0]))
    s.depth.noise_coeff = (0.001 * ns, 0.003 * ns)
    s.uwb.los_sigma = (0.03 * ns, 0.1 * ns)
    cfg.anchors.count = (3, 16) if rng.random() < 0.3 else (4, 8)
    cfg.dynamics.people = (0, int(round(cur['people_max'])))
    return cfg


def _corrupt(window: dict[str, list], name: str, rp: ScenarioReplay, t: float, rng: np.random.Generator) -> None:
    """Replace modality ``name`` of the window by wrong data (its health target becomes 0)."""
    from .measurements import RangeSample  # noqa: PLC0415

    if name == 'uwb':
        out = []
        for st, m in window['uwb']:
            bias = rng.uniform(1.0, 4.0) if rng.random() < 0.6 else 0.0
            out.append((st, RangeSample(stamp=m.stamp, anchor_id=m.anchor_id, range=m.range + bias,
                                        min_range=m.min_range, max_range=m.max_range, tag_frame=m.tag_frame)))
        window['uwb'] = out
        return
    st, _ = window[name][-1]
    t_other = t + rng.choice([-1.0, 1.0]) * rng.uniform(4.0, 10.0)
    t_other = float(np.clip(t_other, 0.1, rp.duration - 0.1))
    if abs(t_other - t) < 2.0:
        t_other = float(np.clip(t - 4.0, 0.1, rp.duration)) if t > 5.0 else float(min(t + 4.0, rp.duration - 0.1))
    window[name][-1] = (st, rp.measurement_near(name, t_other))


def make_sample(rp: ScenarioReplay, index: MapIndex, free_xy: np.ndarray, rng: np.random.Generator,
                cur: dict[str, float], tcfg: TokenConfig, p_bench: float) -> dict[str, np.ndarray] | None:
    """One training sample from a replay (None if the drawn sensor subset has nothing in the window)."""
    t = float(rng.uniform(tcfg.window + 0.5, rp.duration - 0.05))
    available = [m for m in MODALITIES if m in rp.streams]
    if rng.random() < p_bench:
        subset = [m for m in BENCH_SUBSETS[list(BENCH_SUBSETS)[int(rng.integers(len(BENCH_SUBSETS)))]]
                  if m in available]
    else:
        subset = [m for m in available if rng.random() < 0.6]
    if not any(m in EXTEROCEPTIVE for m in subset):
        ext = [m for m in EXTEROCEPTIVE if m in available]
        subset.append(ext[int(rng.integers(len(ext)))])
    window = rp.window(t, tcfg.window + 0.2, subset)
    if not any(window[m] for m in subset if m in EXTEROCEPTIVE):
        return None
    health_t = np.ones(len(MODALITIES), dtype=np.float32)
    if rng.random() < cur['corrupt_prob']:
        cands = [m for m in subset if m in EXTEROCEPTIVE and window[m]]
        if len(cands) >= 1 and (len([m for m in subset if m in EXTEROCEPTIVE]) > 1 or rng.random() < 0.3):
            name = cands[int(rng.integers(len(cands)))]
            _corrupt(window, name, rp, t, rng)
            health_t[MODALITIES.index(name)] = 0.0
    frame = prepare(window, rp.site, t, rp.rig, tcfg, index)
    truth = rp.truth(t)
    if rng.random() < cur['global_frac'] and len(free_xy):
        if rng.random() < 0.5:
            xy = free_xy[int(rng.integers(len(free_xy)))]
        else:
            xy = truth[:2] + rng.normal(0.0, 1.0, 2)
        ref = np.array([xy[0], xy[1], rng.uniform(-math.pi, math.pi)])
        prior_cov = None
    else:
        sxy = math.exp(rng.uniform(math.log(0.03), math.log(cur['prior_sigma_xy'])))
        syaw = math.exp(rng.uniform(math.log(0.01), math.log(cur['prior_sigma_yaw'])))
        k = rng.uniform(0.5, 1.5)  # the prior's claimed sigma is only roughly right
        ref = truth + rng.normal(0.0, 1.0, 3) * np.array([sxy, sxy, syaw]) * k
        prior_cov = np.diag([sxy ** 2, sxy ** 2, syaw ** 2])
    tok = tokenize(frame, index, ref, prior_cov, tcfg)
    c, s = math.cos(ref[2]), math.sin(ref[2])
    d = truth[:2] - ref[:2]
    dyaw = (truth[2] - ref[2] + math.pi) % (2 * math.pi) - math.pi
    target = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], dyaw], dtype=np.float32)
    exy = float(np.hypot(target[0], target[1]))
    pose_w = float(exy < 2.5 and abs(dyaw) < 0.8)
    score_t = float(math.exp(-0.5 * (exy ** 2 / 0.5 ** 2 + dyaw ** 2 / 0.25 ** 2)))
    present = np.array([frame.present[m] for m in MODALITIES], dtype=np.float32)
    return {'tokens': tok, 'target': target, 'pose_w': np.float32(pose_w), 'score_t': np.float32(score_t),
            'health_t': health_t, 'health_w': present}


class ScenarioStream(torch.utils.data.IterableDataset):
    """Endless stream of training samples (see the module docstring). Worker/rank-specific seeds are derived from
    ``seed``; scenario seeds are drawn from [0, EVAL_SEED_MIN) (never evaluation seeds). ``start_sample`` (per
    stream) positions the curriculum when resuming; ``total_samples`` is what progress 1.0 means; ``seed_log``: a
    directory where each worker appends the scenario seeds and families it generated."""

    def __init__(self, cfg: TrainConfig, rank: int = 0, start_sample: int = 0, total_samples: int = 1,
                 seed_log: str | None = None) -> None:
        super().__init__()
        self.seed_log = seed_log
        self.cfg = cfg
        self.rank = rank
        self.start_sample = start_sample
        self.total_samples = max(total_samples, 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, wid, self.start_sample])
        fams = training_families(cfg.holdout_family)
        produced = self.start_sample
        buf: list[dict[str, Any]] = []
        while True:
            cur = cfg.curriculum.at(produced / self.total_samples)
            seed = int(rng.integers(0, EVAL_SEED_MIN))
            sc_cfg = scenario_config(rng, fams, cfg.scenario_duration, cur)
            if cfg.realism_share > 0 and rng.random() < cfg.realism_share:
                sc_cfg.realism.apply = 'always'
            sc = generate_scenario(sc_cfg, seed)
            if self.seed_log is not None:  # the buildings actually seen (the bench's "training buildings")
                Path(self.seed_log).mkdir(parents=True, exist_ok=True)
                with open(Path(self.seed_log) / f'seeds_r{self.rank}_w{wid}.txt', 'a') as fh:
                    fh.write(f'{seed} {sc.building.family}\n')
            rp = ScenarioReplay(sc)
            index = MapIndex(rp.site, cfg.tokens.map_voxel)
            free_xy = rp.free_positions(0.3)
            for _ in range(cfg.samples_per_scenario):
                s = make_sample(rp, index, free_xy, rng, cur, cfg.tokens, cfg.p_bench_subset)
                if s is None:
                    continue
                buf.append(s)
                if len(buf) >= cfg.shuffle_buffer:
                    yield buf.pop(int(rng.integers(len(buf))))
                    produced += nw


def collate_samples(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    tok: Tokens = collate([it['tokens'] for it in items])
    return {'feats': torch.from_numpy(tok.feats), 'dt': torch.from_numpy(tok.dt),
            'types': torch.from_numpy(tok.types), 'mask': torch.from_numpy(tok.mask),
            'target': torch.from_numpy(np.stack([it['target'] for it in items])),
            'pose_w': torch.tensor([it['pose_w'] for it in items]),
            'score_t': torch.tensor([it['score_t'] for it in items]),
            'health_t': torch.from_numpy(np.stack([it['health_t'] for it in items])),
            'health_w': torch.from_numpy(np.stack([it['health_w'] for it in items]))}


# --------------------------------------------------------------------------------------------- loop
def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0))))


def _dist() -> tuple[int, int, bool]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world > 1:
        import torch.distributed as dist  # noqa: PLC0415

        if not dist.is_initialized():
            dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        return dist.get_rank(), world, True
    return 0, 1, False


def train(cfg: TrainConfig, resume: str | None = None, device: str = 'cpu', progress: bool = True,
          max_seconds: float | None = None) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict. Writes ``cfg.out``/{last.pt, log.csv, config.json}."""
    if not 0.0 <= cfg.realism_share <= 1.0:
        raise ValueError(f'realism_share must be in [0, 1], got {cfg.realism_share}')
    rank, world, distributed = _dist()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    start_step = 0
    state = None
    if resume:
        state = load_training_checkpoint(resume)
        cfg = dataclasses.replace(TrainConfig.from_dict(state['train_cfg']), out=cfg.out, steps=cfg.steps,
                                  workers=cfg.workers, threads=cfg.threads, log_every=cfg.log_every,
                                  ckpt_every=cfg.ckpt_every)
        start_step = int(state['step'])
    model = FLM(cfg.model).to(device)
    if state is not None:
        model.load_state_dict(state['model'])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}], lr=cfg.lr, betas=(0.9, 0.98))
    if state is not None and 'optim' in state:
        opt.load_state_dict(state['optim'])
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=None if device == 'cpu' else [device])
    per_stream = cfg.batch // max(cfg.workers, 1)
    ds = ScenarioStream(cfg, rank=rank, start_sample=start_step * cfg.batch,
                        total_samples=cfg.steps * cfg.batch, seed_log=str(out))
    del per_stream
    dl = torch.utils.data.DataLoader(ds, batch_size=cfg.batch, num_workers=cfg.workers,
                                     collate_fn=collate_samples, persistent_workers=cfg.workers > 0,
                                     prefetch_factor=4 if cfg.workers > 0 else None)
    log_path = out / 'log.csv'
    fields = ['step', 'time_s', 'lr', 'loss', 'nll', 'huber', 'score_bce', 'health_bce', 'err_xy', 'err_yaw',
              'err0_xy', 'samples_per_s']
    writer = None
    tb = None
    if rank == 0:
        (out / 'config.json').write_text(json.dumps(cfg.to_dict(), indent=2))
        new = not log_path.exists() or start_step == 0
        fh = open(log_path, 'w' if new else 'a', newline='')
        writer = csv.DictWriter(fh, fieldnames=fields)
        if new:
            writer.writeheader()
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

                tb = SummaryWriter(str(out / 'tb'))
            except ImportError:
                tb = None
    bar = None
    if rank == 0 and progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=cfg.steps, initial=start_step, desc='flm-train', unit='step', dynamic_ncols=True)
    t0 = time.time()
    step = start_step
    acc: dict[str, float] = {}
    n_acc = 0
    last_t = time.time()
    it = iter(dl)
    model.train()
    stopped_early = False
    while step < cfg.steps:
        batch = next(it)
        batch = {k: v.to(device) for k, v in batch.items()}
        for g in opt.param_groups:
            g['lr'] = lr_at(step, cfg)
        outp = net(batch['feats'], batch['dt'], batch['types'], batch['mask'])
        loss, parts = flm_loss(outp, batch['target'], batch['pose_w'], batch['score_t'], batch['health_t'],
                               batch['health_w'], huber_w=1.0 if step < cfg.steps // 2 else 0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        parts['loss'] = float(loss.detach())
        for k, v in parts.items():
            acc[k] = acc.get(k, 0.0) + v
        n_acc += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f'{float(loss):.3f}', xy=f'{parts["err_xy"]:.3f}')
        if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
            now = time.time()
            row = {k: acc[k] / n_acc for k in acc}
            row.update(step=step, time_s=round(now - t0, 2), lr=lr_at(step - 1, cfg),
                       samples_per_s=round(n_acc * cfg.batch * world / max(now - last_t, 1e-9), 1))
            assert writer is not None
            writer.writerow({k: row.get(k, '') for k in fields})
            fh.flush()
            if tb is not None:
                for k, v in row.items():
                    tb.add_scalar(k, v, step)
            acc, n_acc, last_t = {}, 0, now
        if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            save_training_checkpoint(out / 'last.pt', model, opt, step, cfg.to_dict())
        if max_seconds is not None and time.time() - t0 > max_seconds:
            stopped_early = True
            if rank == 0:
                save_training_checkpoint(out / 'last.pt', model, opt, step, cfg.to_dict())
            break
    if bar is not None:
        bar.close()
    if rank == 0 and writer is not None:
        fh.close()
    if distributed:
        import torch.distributed as dist  # noqa: PLC0415

        dist.barrier()
        dist.destroy_process_group()
    return {'step': step, 'seconds': time.time() - t0, 'params': count_parameters(model), 'rank': rank,
            'world': world, 'stopped_early': stopped_early, 'out': str(out)}
