"""The paper's learning-rate schedule (§2.3): linear warmup to the peak, then linear decay."""

from __future__ import annotations

import torch


def lr_at(step: int, peak_lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Learning rate used by optimizer step `step` (0-based).

    Warmup reaches the peak at step `warmup_steps - 1`; decay then runs linearly from the peak at
    `warmup_steps` to `min_lr_ratio * peak` at `max_steps` (the paper does not report the decay target).
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * (1.0 - progress))


def make_scheduler(optimizer: torch.optim.Optimizer, peak_lr: float, warmup_steps: int, max_steps: int,
                   min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `lr_at` (the optimizer's lr must be the peak); its state is checkpointed."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, peak_lr, warmup_steps, max_steps, min_lr_ratio) / peak_lr)
