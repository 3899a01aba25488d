"""Every training run of a profile as the sizing rule made it: model, parameters (embedding and
non-embedding), tokens, tokens per parameter, epochs over the arm's data, estimated minutes.

Shown by `run --dry-run` (from the configuration; epochs where the run directory already holds the
arm's packed data) and by notebook 06 (with the tokens actually seen and the measured minutes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import ProfileConfig, run_size
from ..sizing import count_params
from ..arms import budget_divisors, parse_budget_step, scaling_steps, step_train_config, training_steps


@dataclass
class RunRow:
    """One training step's size."""

    step: str
    """Run-directory step."""
    arm: str
    """A, B', B or C."""
    budget: str
    """`1` (main) or `1/d`."""
    model: str
    """Preset."""
    params_embedding: int
    """Token embedding + LM head."""
    params_non_embedding: int
    """Blocks and the final LayerNorm."""
    tokens: int
    """Tokens the run trains on (steps x batch x sequence)."""
    tokens_per_param: float
    """Tokens per counted parameter (non-embedding, or all with `compute.count_embeddings`)."""
    epochs: float | None
    """Passes over the arm's packed training data (None until the data are packed)."""
    est_minutes: float | None
    """At the reference throughput of `compute.tokens_per_s` (None without compute sizing)."""


def packed_train_tokens(run_dir: Path, step: str) -> int | None:
    """Training tokens of a step's packed data (any seed or budget of the same arm), if packed."""
    arm = parse_budget_step(step)[0]
    for meta in sorted(Path(run_dir).glob(f"{arm.prefix}_*/data/meta.json")):
        try:
            if parse_budget_step(meta.parent.parent.name)[0] == arm:
                return int(json.loads(meta.read_text())["splits"]["train"]["n_tokens"])
        except (ValueError, KeyError, OSError):
            continue
    return None


def run_rows(cfg: ProfileConfig, run_dir: Path | None = None) -> list[RunRow]:
    """One row per training step of the profile (main budget, then the smaller ones)."""
    vocab = cfg.tokenizer.vocab_size
    rows = []
    for step in training_steps(cfg) + scaling_steps(cfg):
        arm, div, _ = parse_budget_step(step)
        tc = step_train_config(cfg, step)
        n = count_params(tc.model, vocab)
        tokens = tc.max_steps * tc.global_batch_size * tc.seq_len
        counted = n.total if cfg.compute.count_embeddings else n.non_embedding
        data = packed_train_tokens(run_dir, step) if run_dir is not None else None
        est = None
        if cfg.compute.minutes_per_run > 0:
            tps = dict(zip(cfg.compute.presets, cfg.compute.tokens_per_s)).get(tc.model)
            est = tokens / tps / 60 if tps else None
        rows.append(RunRow(step, arm.letter, "1" if div == 1 else f"1/{div}", tc.model, n.embedding, n.non_embedding,
                           tokens, tokens / counted, tokens / data if data else None, est))
    return rows


def rule_summary(cfg: ProfileConfig) -> list[str]:
    """The sizing rule in words, with this profile's numbers, one line per budget."""
    c = cfg.compute
    if c.minutes_per_run <= 0:
        return ["compute sizing off: pretrain/finetune sizes as the profile gives them"]
    counted = "all parameters" if c.count_embeddings else "non-embedding parameters (Kaplan et al. 2020)"
    lines = [f"rule: the largest of {', '.join(c.presets)} that sees >= {c.tokens_per_param:g} tokens per {counted} "
             f"in the budget's minutes at its measured throughput ({c.throughput_host or 'reference host'})"]
    for d in budget_divisors(cfg):
        r = run_size(cfg, d)
        lines.append(f"budget {'1' if d == 1 else f'1/{d}'} ({c.minutes_per_run / d:.2f} min): {r.preset}, "
                     f"{r.steps:,} steps = {r.tokens:,} tokens, {r.tokens_per_param:.1f} tokens/param")
    return lines
