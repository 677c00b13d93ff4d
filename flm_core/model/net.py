"""The FLM network: a small pre-LN transformer over geometry-aligned tokens (read top to bottom).

Input (see tokens.py): feats (B, N, 12) SI units in the hypothesis frame, dt (B, N) s, types (B, N) int64,
mask (B, N) bool (True = real token). Output, all in the hypothesis frame:

- corr (B, 3): correction (dx m, dy m, dyaw rad) that moves the hypothesis onto the robot pose;
- cov (B, 3, 3): covariance of the corrected pose (heteroscedastic, from a Cholesky factor);
- health (B, 6): per-modality health logits (order of tokens.MODALITIES; sigmoid -> [0, 1]);
- score (B,): hypothesis logit (global mode: how likely the hypothesis is near the truth).

Pipeline: embed each token from [features / per-type scale, continuous-time encoding of dt, one-hot type] with
one MLP; prepend a learned summary token; L transformer blocks in which every token of every modality and time
attends to every other (padding masked); read the correction out as a softmax-weighted vote of all tokens plus a
summary-token term: every token proposes a correction = its *geometric vote* (a point's offset to the nearest map
obstacle and the yaw that offset asks for; a UWB range's residual along the anchor direction; zero for the others)
times a learned per-axis gain, plus a learned residual, with a learned confidence (a learned, context-aware robust
ICP / multilateration step; at initialisation it is the plain mean-offset step); covariance, score and health come
from the summary token / per-modality means.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Tuple

import torch
from torch import nn

from .tokens import FEATURE_SCALE, MODALITIES, N_FEAT, N_TYPES


@dataclass
class FLMConfig:
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    mlp_ratio: int = 2
    n_freq: int = 5            # time-encoding frequencies 0.5 .. 8 Hz
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    """Pre-LN transformer block with explicit masked multi-head attention (export-friendly)."""

    def __init__(self, d: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(d // heads)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x (B, N, d); bias (B, 1, 1, N) additive attention bias (0 or -1e4 for padding)."""
        B, N, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(B, N, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        att = torch.matmul(q, k.transpose(-2, -1)) * self.scale + bias
        y = torch.matmul(att.softmax(dim=-1), v).transpose(1, 2).reshape(B, N, d)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class FLM(nn.Module):
    """Foundation Localization Model (see the module docstring for inputs and outputs)."""

    def __init__(self, cfg: FLMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or FLMConfig()
        self.cfg = cfg
        d = cfg.d_model
        self.n_types = N_TYPES
        self.n_health = len(MODALITIES)
        self.register_buffer('feat_scale', torch.tensor(FEATURE_SCALE))
        self.register_buffer('freqs', 2 * math.pi * 0.5 * 2.0 ** torch.arange(cfg.n_freq, dtype=torch.float32))
        n_in = N_FEAT + 1 + 2 * cfg.n_freq + N_TYPES
        self.embed = nn.Sequential(nn.Linear(n_in, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList([Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(d)
        self.vote = nn.Linear(d, 7)           # per token: gain (3) on its geometric vote, residual (3), confidence
        self.head = nn.Linear(d, 3 + 6 + 1)   # summary: correction residual, Cholesky params, score
        self.health = nn.Linear(d, 1)
        self.health_bias = nn.Parameter(torch.zeros(len(MODALITIES)))
        self.register_buffer('corr_scale', torch.tensor([0.5, 0.5, 0.2]))
        self.register_buffer('log_sigma0', torch.log(torch.tensor([0.3, 0.3, 0.1])))
        nn.init.normal_(self.summary, std=0.02)
        nn.init.zeros_(self.vote.weight)
        nn.init.zeros_(self.vote.bias)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, feats: torch.Tensor, dt: torch.Tensor, types: torch.Tensor, mask: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, _ = feats.shape
        x = feats / self.feat_scale[types]
        ph = dt.unsqueeze(-1) * self.freqs
        onehot = torch.nn.functional.one_hot(types, self.n_types).to(feats.dtype)
        x = torch.cat([x, dt.unsqueeze(-1), torch.sin(ph), torch.cos(ph), onehot], dim=-1)
        x = self.embed(x)                                                           # (B, N, d)
        x = torch.cat([self.summary.expand(B, 1, x.shape[-1]).to(x.dtype), x], dim=1)
        valid = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        bias = (~valid).to(x.dtype).mul(-1e4).view(B, 1, 1, N + 1)
        for blk in self.blocks:
            x = blk(x, bias)
        x = self.ln_f(x)
        s, tok = x[:, 0], x[:, 1:]
        # geometric vote of each token (what one Gauss-Newton/ICP step would ask of it, in the hypothesis frame):
        # points: their offset to the nearest obstacle and the yaw lever; UWB: -unit(tag->anchor) * range residual
        pt = (types <= 2).to(feats.dtype).unsqueeze(-1)
        uw = (types == 3).to(feats.dtype).unsqueeze(-1)
        res = feats[..., 10]
        g = pt * torch.stack([feats[..., 3], feats[..., 4], feats[..., 11]], dim=-1) \
            + uw * torch.stack([-feats[..., 3] * res, -feats[..., 4] * res, torch.zeros_like(res)], dim=-1)
        v = self.vote(tok)                                                          # (B, N, 7)
        votes = g * (1.0 + v[..., 0:3]) + v[..., 3:6] * self.corr_scale             # (B, N, 3)
        w = v[..., 6].masked_fill(~mask, -1e4).softmax(dim=-1)                      # (B, N)
        out = self.head(s)                                                          # (B, 10)
        corr = torch.einsum('bn,bnk->bk', w, votes) + out[:, :3] * self.corr_scale
        ls = (out[:, 3:6] + self.log_sigma0).clamp(-7.0, 3.0)
        sd = torch.exp(ls)                                                          # (B, 3) std m, m, rad
        off = out[:, 6:9] * torch.stack([sd[:, 0], sd[:, 0], sd[:, 1]], dim=-1)
        z = torch.zeros_like(sd[:, 0])
        L = torch.stack([sd[:, 0], z, z, off[:, 0], sd[:, 1], z, off[:, 1], off[:, 2], sd[:, 2]],
                        dim=-1).view(B, 3, 3)                                       # lower-triangular Cholesky
        cov = L @ L.transpose(1, 2)
        score = out[:, 9]
        hm = torch.nn.functional.one_hot(types.clamp(max=self.n_health), self.n_health + 1)[..., :self.n_health]
        hm = hm.to(x.dtype) * mask.unsqueeze(-1).to(x.dtype)                      # (B, N, 6)
        pooled = torch.einsum('bnm,bnd->bmd', hm, tok) / hm.sum(1).clamp(min=1.0).unsqueeze(-1)
        health = self.health(pooled).squeeze(-1) + self.health_bias                 # (B, 6)
        return corr, cov, health, score


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
