"""Tables and figures for notebooks 06 and 07: paper settings beside the profile's, budgets actually
spent, loss curves, throughput and wall-time estimates. Paper numbers are labelled paper-reported."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..config import ProfileConfig, TrainConfig
from ..rundir import RunDir
from ..arms import ARMS, parse_step
from .loop import read_metrics
from .steps import estimate_wall_time, paper_commands, throughput_at_mfu

# §2.3 of the paper (see /work/shared/reference/phi1-paper-notes.md §2.2); None = not reported.
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "pretrain": {"model": "phi-1 (1.3B)", "global batch (sequences)": 1024, "sequence length": 2048,
                 "peak LR": 1e-3, "warmup steps": 750, "schedule": "linear warmup, linear decay",
                 "weight decay": 0.1, "attention/residual dropout": 0.1, "steps": "36,000 (phi-1-base = 24,000)",
                 "tokens seen": "~50B at 24k steps (~8 epochs of CodeTextbook)", "precision": "fp16",
                 "optimizer": "AdamW", "AdamW betas": None, "gradient clip": None,
                 "hardware": "8 x A100, DeepSpeed", "compute": "770 GPU-hours for 51B tokens (<4 days)",
                 "loss on": "all tokens"},
    "finetune": {"model": "phi-1-base (1.3B)", "global batch (sequences)": 256, "sequence length": 2048,
                 "peak LR": 1e-4, "warmup steps": 50, "schedule": "linear warmup, linear decay",
                 "weight decay": 0.01, "attention/residual dropout": 0.1, "steps": "6,000 (checkpoints every 1,000)",
                 "tokens seen": "~3.1B (derived: 6000 x 256 x 2048)", "precision": "fp16",
                 "optimizer": "AdamW", "AdamW betas": None, "gradient clip": None,
                 "hardware": "8 x A100, DeepSpeed", "compute": "7 hours on the same hardware",
                 "loss on": "not stated (no masking mentioned)"},
}
PAPER_TOKENS_PER_S_PER_A100 = 51e9 / (770 * 3600)
"""Derived from paper-reported numbers: 51B tokens in 770 A100-hours (~18.4k tokens/s per GPU)."""


def _profile_settings(tc: TrainConfig) -> dict[str, Any]:
    return {"model": tc.model, "global batch (sequences)": tc.global_batch_size, "sequence length": tc.seq_len,
            "peak LR": tc.lr, "warmup steps": tc.warmup_steps,
            "schedule": f"linear warmup, linear decay to {tc.min_lr_ratio:g} x peak",
            "weight decay": tc.weight_decay, "attention/residual dropout": tc.dropout, "steps": f"{tc.max_steps:,}",
            "tokens seen": f"{tc.max_steps * tc.global_batch_size * tc.seq_len:,}", "precision": tc.precision,
            "optimizer": "AdamW (fused on CUDA, foreach on CPU)", "AdamW betas": str(tuple(tc.betas)),
            "gradient clip": tc.grad_clip or "off", "hardware": "this machine (torchrun for several ranks)",
            "compute": "measured below",
            "loss on": "solution tokens only" if tc.loss_on_solution_only else "all tokens"}


def settings_table(cfg: ProfileConfig, stage: str) -> pd.DataFrame:
    """The paper's settings (paper-reported) beside this profile's, for `pretrain` or `finetune`."""
    tc: TrainConfig = getattr(cfg, stage)
    paper = PAPER_SETTINGS[stage]
    mine = _profile_settings(tc)
    return pd.DataFrame({"paper-reported (§2.3)": {k: ("not reported" if v is None else v) for k, v in paper.items()},
                         f"profile '{cfg.name}'": mine})


def budget_table(rd: RunDir, stages: list[str]) -> pd.DataFrame:
    """What each stage actually spent (from its manifest): steps, tokens, epochs, losses, throughput."""
    rows = []
    for s in stages:
        m = rd.manifest(s)
        c = m["counts"]
        arm, seed = parse_step(s)
        rows.append({"model": s, "arm": arm.letter, "seed": seed, "budget": _budget_label(c.get("budget_divisor", 1)),
                     "preset": m.get("model_preset"), "non-embedding params": c.get("n_params_non_embedding"),
                     "tokens/param": c.get("tokens_per_param"),
                     "input": m.get("input_dataset"), "steps": c["steps"], "tokens seen": c["tokens_seen"],
                     "loss tokens seen": c["loss_tokens_seen"], "epochs over data": c["epochs_over_data"],
                     "unique train tokens": c["train_unique_tokens"], "train docs": c["train_documents"],
                     "final train loss": c["final_loss"], "final val loss": c["final_val_loss"],
                     "tokens/s": c["tokens_per_s"], "MFU": c["mfu"], "params": c["n_params"],
                     "loss on": "solution only" if m.get("loss_on_solution_only") else "all tokens",
                     "wall s": m.get("wall_time_s")})
    return pd.DataFrame(rows).set_index("model")


def _budget_label(divisor: int) -> str:
    return "1" if int(divisor) == 1 else f"1/{int(divisor)}"


def sizes_frame(rows: list[Any]) -> pd.DataFrame:
    """`phi_utils.train.budget.run_rows` as a table: one row per training step."""
    from dataclasses import asdict

    df = pd.DataFrame([asdict(r) for r in rows]).set_index("step")
    return df.round({"tokens_per_param": 1, "epochs": 2, "est_minutes": 2})


def curves(rd: RunDir, stages: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per stage: step, tokens, loss, lr and (where evaluated) val_step / val_loss."""
    out = {}
    for s in stages:
        recs = read_metrics(rd.path / s / "metrics.jsonl")
        out[s] = {"step": [r["step"] for r in recs], "tokens": [r["tokens"] for r in recs],
                  "loss": [r["loss"] for r in recs], "lr": [r["lr"] for r in recs],
                  "tokens_per_s": [r["tokens_per_s"] for r in recs],
                  "val_step": [r["step"] for r in recs if r.get("val_loss") is not None],
                  "val_loss": [r["val_loss"] for r in recs if r.get("val_loss") is not None]}
    return out


LABELS = {a.prefix: f"({a.letter}) {a.label.split(': ', 1)[-1]}" for a in ARMS}
COLORS = {"raw": "#f28e2b", "filtered": "#76b7b2", "textbook": "#8cd17d", "finetune": "#2e7d32"}
"""One colour per arm (all seeds of an arm share it)."""


def _label(step: str) -> str:
    try:
        arm, seed = parse_step(step)
    except ValueError:
        return step
    return f"{LABELS[arm.prefix]} s{seed}"


def loss_figure(data: dict[str, dict[str, list[float]]], title: str) -> Any:
    """Training (thin) and validation (markers) loss against tokens seen, plus the LR schedule;
    one colour per arm, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    lr_drawn: set[str] = set()
    for s, d in data.items():
        try:
            arm = parse_step(s)[0]
            color, key = COLORS.get(arm.key), arm.key
        except ValueError:
            color, key = None, s
        line, = ax.plot(d["tokens"], d["loss"], lw=1, alpha=0.5, color=color, label=f"{_label(s)} train")
        tok_at = dict(zip(d["step"], d["tokens"]))
        ax.plot([tok_at[v] for v in d["val_step"]], d["val_loss"], "o-", color=line.get_color(), ms=3,
                label=f"{_label(s)} held-out")
        if key not in lr_drawn:  # the schedule does not depend on the seed
            ax_lr.plot(d["step"], d["lr"], color=line.get_color(), label=LABELS.get(s.rsplit("_s", 1)[0], s))
            lr_drawn.add(key)
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("schedule (linear warmup, linear decay)")
    ax_lr.legend(fontsize=7)
    fig.tight_layout()
    return fig


def seed_spread(rd: RunDir, stages: list[str]) -> pd.DataFrame:
    """Per arm: the final held-out loss of each seed (the same held-out documents for every seed of an
    arm), their mean, standard deviation and range: the seed-to-seed spread that notebook 08's
    intervals resample. Held-out sets differ between arms, so compare rows only within an arm."""
    by_arm: dict[str, list[tuple[int, float]]] = {}
    for s in stages:
        arm, seed = parse_step(s)
        by_arm.setdefault(arm.key, []).append((seed, float(rd.manifest(s)["counts"]["final_val_loss"])))
    rows = []
    for a in ARMS:
        if a.key not in by_arm:
            continue
        vals = [v for _, v in sorted(by_arm[a.key])]
        sd = float(pd.Series(vals).std(ddof=1)) if len(vals) > 1 else float("nan")
        rows.append({"arm": a.letter, "recipe": a.label.split(": ", 1)[-1], "n_seeds": len(vals),
                     "seeds": [sd_ for sd_, _ in sorted(by_arm[a.key])], "held-out loss per seed": [round(v, 4) for v in vals],
                     "mean": round(sum(vals) / len(vals), 4), "sd over seeds": round(sd, 4),
                     "range": round(max(vals) - min(vals), 4)})
    return pd.DataFrame(rows).set_index("arm")


def seed_spread_sentences(table: pd.DataFrame) -> list[str]:
    """Generated from `seed_spread`: per arm, how far apart its seeds ended."""
    out = []
    for letter, r in table.iterrows():
        if r["n_seeds"] < 2:
            out.append(f"({letter}) {r['recipe']}: one seed only; no seed-to-seed spread can be measured.")
            continue
        out.append(f"({letter}) {r['recipe']}: held-out loss {r['mean']:.4f} nats/token over {r['n_seeds']} seeds, "
                   f"sd {r['sd over seeds']:.4f}, range {r['range']:.4f} (min to max).")
    return out


def wall_time_table(cfg: ProfileConfig, rd: RunDir, stages: list[str], paper: ProfileConfig) -> pd.DataFrame:
    """Wall time: measured here for this profile; for the paper profile estimated from (a) the
    throughput the paper's own numbers imply and (b) the same MFU as this run at A100 peak (an
    optimistic transfer, labelled as such)."""
    from ..model.flops import PEAK_FLOPS

    a100 = PEAK_FLOPS["A100"]["fp16"]

    rows = []
    for s in stages:
        m = rd.manifest(s)
        c = m["counts"]
        rows.append({"run": f"{s} ({cfg.name}, measured)", "tokens": c["tokens_seen"],
                     "tokens/s/device": c["tokens_per_s"], "devices": c["world_size"],
                     "hours": (m.get("wall_time_s") or 0) / 3600, "source": "measured on this machine"})
    for stage, tc in (("pretrain", paper.pretrain), ("finetune", paper.finetune)):
        est = estimate_wall_time(tc, PAPER_TOKENS_PER_S_PER_A100, paper.n_gpus)
        rows.append({"run": f"paper {stage} ({tc.max_steps:,} steps)", "tokens": est["tokens"],
                     "tokens/s/device": PAPER_TOKENS_PER_S_PER_A100, "devices": paper.n_gpus, "hours": est["hours"],
                     "source": "derived from paper-reported 770 A100-hours / 51B tokens"})
    mfus = [rd.manifest(s)["counts"].get("mfu") for s in stages]
    mfus = [x for x in mfus if x]
    if mfus:
        mfu = sum(mfus) / len(mfus)
        tc = paper.pretrain
        tps = throughput_at_mfu(tc.model, tc.seq_len, mfu, a100)
        est = estimate_wall_time(tc, tps, paper.n_gpus)
        rows.append({"run": f"paper pretrain at this run's MFU ({mfu:.0%})", "tokens": est["tokens"],
                     "tokens/s/device": tps, "devices": paper.n_gpus, "hours": est["hours"],
                     "source": "estimate: measured MFU x A100 fp16 peak (312 TFLOP/s)"})
    return pd.DataFrame(rows).set_index("run")


def launch_commands(run_dir: str = "runs/paper") -> list[str]:
    """The exact 8 x A100 torchrun commands of the paper profile (one per Figure 2.1 arm and seed)."""
    return paper_commands(run_dir)


__all__ = ["PAPER_SETTINGS", "settings_table", "budget_table", "curves", "loss_figure", "wall_time_table",
           "launch_commands", "seed_spread", "seed_spread_sentences"]
