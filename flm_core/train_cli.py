"""``flm-train``: train the FLM on streamed procedural scenarios (see flm_core/train.py).

Examples::

    flm-train --out runs/flm --steps 4000                 # CPU, CSV log + progress bar, checkpoint runs/flm/last.pt
    flm-train --out runs/flm --steps 3000 --export-to export --export-name flm   # train, then flm-export
    flm-train --out runs/flm --steps 6000 --resume runs/flm/last.pt   # continue (step count and curriculum resume)
    torchrun --nproc_per_node 2 -m flm_core.train_cli --out runs/ddp --steps 100   # DistributedDataParallel (gloo)
"""
from __future__ import annotations

import argparse
import json
import sys

from .train import TrainConfig, train


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(
        prog='flm-train', description='Train the Foundation Localization Model on procedurally generated '
        'buildings, streamed (no dataset on disk). Writes OUT/last.pt (training checkpoint), OUT/log.csv and '
        'OUT/config.json. Export the result with flm-export. Works under torchrun (DDP, gloo on CPU).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument('--out', default=d.out, help='output directory')
    ap.add_argument('--steps', type=int, default=d.steps, help='total optimizer steps (also on resume)')
    ap.add_argument('--batch', type=int, default=d.batch, help='samples per step per process')
    ap.add_argument('--lr', type=float, default=d.lr, help='peak learning rate (cosine schedule)')
    ap.add_argument('--warmup', type=int, default=d.warmup, help='linear warm-up steps')
    ap.add_argument('--seed', type=int, default=d.seed, help='training seed (data and init)')
    ap.add_argument('--workers', type=int, default=d.workers, help='data-generation worker processes (0 = inline)')
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
    ap.add_argument('--holdout-family', default=d.holdout_family,
                    help='building family never generated for training (kept for the cross-scenario bench)')
    ap.add_argument('--realism-share', type=float, default=d.realism_share,
                    help='share of training scenarios generated with the realism dimensions (a map from a simulated '
                    'mapping run, biased anchors, shared UWB stamps, tilted platforms, keyframe scans); 0 = v1 data')
    ap.add_argument('--samples-per-scenario', type=int, default=d.samples_per_scenario,
                    help='training samples drawn from each generated scenario')
    ap.add_argument('--scenario-duration', type=float, default=d.scenario_duration, help='s per scenario')
    ap.add_argument('--shuffle-buffer', type=int, default=d.shuffle_buffer, help='samples mixed across scenarios')
    ap.add_argument('--d-model', type=int, default=d.model.d_model, help='transformer width')
    ap.add_argument('--layers', type=int, default=d.model.n_layers, help='transformer blocks')
    ap.add_argument('--heads', type=int, default=d.model.n_heads, help='attention heads')
    ap.add_argument('--log-every', type=int, default=d.log_every, help='steps between CSV rows')
    ap.add_argument('--ckpt-every', type=int, default=d.ckpt_every, help='steps between checkpoints')
    ap.add_argument('--max-minutes', type=float, default=None, help='stop (with a checkpoint) after this wall time')
    ap.add_argument('--resume', default=None, help='training checkpoint to continue from')
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    ap.add_argument('--tensorboard', action='store_true', help='also log to OUT/tb (needs tensorboard installed)')
    ap.add_argument('--no-progress', action='store_true', help='no progress bar')
    ap.add_argument('--export-to', default=None, metavar='DIR',
                    help='after training, export OUT/last.pt with flm-export into DIR (TorchScript + ONNX + json)')
    ap.add_argument('--export-name', default='flm', help='file stem for --export-to')
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    cfg = TrainConfig(out=a.out, steps=a.steps, batch=a.batch, lr=a.lr, warmup=a.warmup, seed=a.seed, workers=a.workers,
                      threads=a.threads, holdout_family=a.holdout_family, realism_share=a.realism_share,
                      samples_per_scenario=a.samples_per_scenario,
                      scenario_duration=a.scenario_duration, shuffle_buffer=a.shuffle_buffer, log_every=a.log_every,
                      ckpt_every=a.ckpt_every, tensorboard=a.tensorboard)
    cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads = a.d_model, a.layers, a.heads
    try:
        res = train(cfg, resume=a.resume, device=a.device, progress=not a.no_progress,
                    max_seconds=a.max_minutes * 60 if a.max_minutes else None)
    except (ValueError, KeyError) as e:
        print(f'flm-train: {e}', file=sys.stderr)
        return 1
    if res['rank'] == 0:
        print(json.dumps(res))
        if a.export_to:
            from pathlib import Path  # noqa: PLC0415

            from .model.export import export_all  # noqa: PLC0415

            print(json.dumps(export_all(Path(a.out) / 'last.pt', a.export_to, a.export_name)))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
