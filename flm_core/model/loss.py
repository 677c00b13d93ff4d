"""Training loss: a robust (Huber) term on the pose correction + Gaussian negative log-likelihood of the pose error
under the predicted full 3x3 covariance (heteroscedastic; mean detached in the NLL) + hypothesis score and modality
health as binary cross-entropies. All terms in the hypothesis frame."""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def wrap(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


def pose_nll(corr: torch.Tensor, cov: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample NLL (B,) (constant 1.5 log 2pi dropped) of target (B, 3) under N(corr, cov), yaw error wrapped."""
    e = target - corr
    e = torch.cat([e[:, :2], wrap(e[:, 2:3])], dim=1)
    L = torch.linalg.cholesky(cov + 1e-9 * torch.eye(3, dtype=cov.dtype, device=cov.device))
    z = torch.linalg.solve_triangular(L, e.unsqueeze(-1), upper=False).squeeze(-1)
    return 0.5 * (z * z).sum(-1) + torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(-1)


def flm_loss(out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], target: torch.Tensor,
             pose_w: torch.Tensor, score_t: torch.Tensor, health_t: torch.Tensor, health_w: torch.Tensor,
             huber_w: float = 1.0, score_w: float = 0.5, health_wt: float = 0.2) -> tuple[torch.Tensor, dict]:
    """out = FLM outputs (corr, cov, health logits, score logit); target (B, 3) true correction in the hypothesis
    frame; pose_w (B,) 1 where the pose terms apply (hypothesis inside the capture region); score_t (B,) in [0, 1];
    health_t (B, 6) targets and health_w (B, 6) weights (1 where the modality is present). Returns (loss, parts)."""
    corr, cov, health, score = out
    nw = pose_w.sum().clamp(min=1.0)
    # the mean is trained by the robust term; the NLL calibrates the covariance around the (detached) mean, so the
    # covariance head cannot slow the mean down by inflating its variance (stop-gradient Gaussian NLL)
    nll = (pose_nll(corr.detach(), cov, target) * pose_w).sum() / nw
    e = target - corr
    e = torch.cat([e[:, :2], wrap(e[:, 2:3]) * 3.0], dim=1)  # 1 rad ~ 3 m in the robust term
    hub = (F.smooth_l1_loss(e, torch.zeros_like(e), reduction='none', beta=0.1).sum(-1) * pose_w).sum() / nw
    sc = F.binary_cross_entropy_with_logits(score, score_t)
    hl = (F.binary_cross_entropy_with_logits(health, health_t, reduction='none') * health_w).sum() \
        / health_w.sum().clamp(min=1.0)
    loss = nll + huber_w * hub + score_w * sc + health_wt * hl
    with torch.no_grad():
        err = torch.sqrt((e[:, :2] ** 2).sum(-1))
        parts = {'nll': float(nll), 'huber': float(hub), 'score_bce': float(sc), 'health_bce': float(hl),
                 'err_xy': float((err * pose_w).sum() / nw),
                 'err_yaw': float(((e[:, 2].abs() / 3.0) * pose_w).sum() / nw),
                 'err0_xy': float((torch.sqrt((target[:, :2] ** 2).sum(-1)) * pose_w).sum() / nw)}
    return loss, parts
