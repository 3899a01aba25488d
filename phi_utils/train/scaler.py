"""Dynamic loss scaling for fp16 (the paper trains in fp16), GradScaler-style but device-agnostic.

The loss is multiplied by `scale` before backward; gradients are divided by it before clipping.
If the (global) gradient norm is not finite the step is skipped and the scale halved; after
`growth_interval` clean steps it doubles. The skip decision uses the total gradient norm, which
DDP/FSDP already reduce across ranks, so every rank skips the same steps. Its state is checkpointed.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch


class DynamicLossScaler:
    def __init__(self, enabled: bool, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, min_scale: float = 1.0) -> None:
        self.enabled = enabled
        self.scale = float(init_scale) if enabled else 1.0
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval, self.min_scale = growth_interval, min_scale
        self.good_steps = 0
        self.skipped_steps = 0

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * self.scale if self.enabled else loss

    def unscale_(self, params: Iterable[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        inv = 1.0 / self.scale
        for p in params:
            if p.grad is not None:
                p.grad.mul_(inv)

    def update(self, grad_norm: float) -> bool:
        """Record the step's outcome; True if the optimizer step must be skipped (overflow)."""
        finite = math.isfinite(grad_norm)
        if not finite:
            self.skipped_steps += 1
            self.good_steps = 0
            if self.enabled:
                self.scale = max(self.min_scale, self.scale * self.backoff_factor)
            return True
        if self.enabled:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "scale": self.scale, "good_steps": self.good_steps,
                "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped_steps = int(state["skipped_steps"])
