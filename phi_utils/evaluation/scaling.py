"""How the Figure 2.1 differences move with compute (notebook 08's `scaling` step).

Every arm is trained at the main budget (`pretrain_<arm>_s<k>`, every seed) and at smaller budgets
1/d (`pretrain_<arm>_div<d>_s<k>`, `compute.scaling_seeds`), each sized by the same rule
(`phi_utils.sizing`). This step scores the smaller-budget models exactly as the eval step scores the
main ones (canonical-solution loss per problem, `fig21.per_problem_loss`, every problem of every
benchmark pooled), reads the main budget's losses and the arms' unigram / bigram baselines from the
eval step, and reports per budget:

- each arm's loss with its 95% interval (seeds and problems resampled; 1 seed at the smaller budgets);
- the paired differences B'-A, B-B', B-A, C-B (`arms.COMPARISONS`) with intervals and verdicts;
- whether each difference grows, shrinks or flips as compute grows (generated from the numbers).

All budgets share the run's tokenizer, so losses in nats/token are comparable across them. The x
axis is training FLOPs (6N + attention per token, `model.flops`; C adds its finetuning to B's).
The intervals resample problems and training seeds, never the data stages (ratings, filter,
textbooks): a second annotation or generation seed would move the data itself.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..config import ProfileConfig
from ..model.config import training_model_config
from ..model.flops import flops_per_token
from ..rundir import RunDir, read_result, write_json_atomic
from ..sizing import count_params
from ..stats import Estimate, bootstrap_mean_seeds, paired_difference_seeds
from ..arms import ARMS, COMPARISONS, budget_divisors, init_step, parse_budget_step, scaling_steps, \
    step_name
from .fig21 import BIGRAM, LOSS, POOLED, UNIGRAM, arm_matrix, per_problem_loss

STEP = "scaling"


@dataclass
class ArmPoint:
    """One arm at one budget."""

    arm: str
    """Arm key (`raw`, `filtered`, `textbook`, `finetune`)."""
    letter: str
    """A, B', B, C."""
    divisor: int
    """Budget 1/divisor of the main one."""
    preset: str
    """Model preset the sizing rule picked."""
    n_params_non_embedding: int
    """Non-embedding parameters."""
    tokens: int
    """Training tokens of this arm's own run (finetuning tokens for C)."""
    flops: float
    """Training FLOPs up to this model (for C: B's pretraining plus the finetuning)."""
    seeds: list[int]
    """Seeds pooled."""
    loss: float
    """Canonical-solution loss (nats/token), mean over seeds and problems."""
    ci95: list[float]
    """95% interval (seed-and-problem bootstrap)."""
    n_problems: int
    """Problems (every benchmark pooled)."""


@dataclass
class Difference:
    """One paired difference (first arm minus second) at one budget."""

    name: str
    """E.g. `B' - A: the filter's effect`."""
    first: str
    """Arm key of the first arm."""
    second: str
    """Arm key of the second arm."""
    divisor: int
    """Budget 1/divisor."""
    mean: float
    """Mean difference in nats/token (negative: the first arm is better)."""
    ci95: list[float]
    """95% interval, paired over problems, seeds resampled per arm."""
    resolved: bool
    """The interval excludes 0."""


@dataclass
class ScalingResult:
    """The `scaling` step's `scaling.json`."""

    budgets: list[int]
    """Budget divisors, main (1) first."""
    points: list[ArmPoint]
    """Every arm at every budget."""
    differences: list[Difference]
    """Every paired difference at every budget."""
    baselines: dict[str, dict[str, float]]
    """Arm key -> {unigram, bigram}: the arm's n-gram baselines (nats/token, mean over problems)."""
    trends: list[str]
    """One generated sentence per paired difference: how it moves from the smallest budget to the main one."""
    not_covered: str
    """What the intervals do not resample."""
    n_problems: int
    """Problems per model (all benchmarks pooled)."""
    wall_s: float = 0.0
    """Seconds this step took."""
    notes: list[str] = field(default_factory=list)
    """Missing models or budgets."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScalingResult":
        return cls(**{**d, "points": [ArmPoint(**p) for p in d["points"]],
                      "differences": [Difference(**x) for x in d["differences"]]})


NOT_COVERED = ("The intervals resample problems and training seeds only. The data stages (teacher ratings, the "
               "filter's kept set, the textbooks) were made once; a second annotation or teacher build moves them, "
               "and with them every difference, by an amount these intervals do not include.")


def _trained(rd: RunDir, step: str) -> tuple[str, int, int]:
    """(model preset, sequence length, tokens seen) of a finished training step, from its manifest:
    what the step trained, whatever the configuration says now."""
    m = rd.manifest(step)
    return m["model_preset"], int(m["config"]["seq_len"]), int(m["counts"]["tokens_seen"])


def _flops(rd: RunDir, step: str, vocab_size: int) -> tuple[float, int]:
    """(training FLOPs up to this model, its own tokens) from the manifests of the step and the step
    it starts from."""
    preset, seq_len, tokens = _trained(rd, step)
    mc = training_model_config(preset, vocab_size=vocab_size, min_block_size=seq_len)
    flops = flops_per_token(mc, seq_len, training=True) * tokens
    parent = init_step(step)
    if parent is not None:
        flops += _flops(rd, parent, vocab_size)[0]
    return flops, tokens


def _score_budget_models(cfg: ProfileConfig, rd: RunDir, problems: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Per-problem canonical-solution loss of every smaller-budget model."""
    from .generation import Placement, load_model

    place = Placement.resolve(cfg.device, cfg.eval.dtype)
    rows: list[dict[str, Any]] = []
    for step in scaling_steps(cfg):
        arm, div, seed = parse_budget_step(step)
        lm = load_model(rd.require(step) / "final", place.device, place.dtype)
        for bench, probs in problems.items():
            for p, (n, loss) in zip(probs, per_problem_loss(lm, probs)):
                rows.append({"model": step, "arm": arm.key, "divisor": div, "seed": seed, "benchmark": bench,
                             "task_id": p.task_id, "loss_tokens": n, LOSS: loss})
        del lm
    return rows


def _main_rows(rd: RunDir) -> list[dict[str, Any]]:
    from .scores import load_problem_scores

    return [{**r, "divisor": 1} for r in load_problem_scores(rd)]


def _problems(cfg: ProfileConfig) -> dict[str, list[Any]]:
    """The eval step's problems (same benchmarks and limit), cut to `eval.loss_problems` as its loss is."""
    from .stage import _load_benchmarks

    problems, _ = _load_benchmarks(cfg, cfg.eval.limit)
    n = cfg.eval.loss_problems
    return {b: (probs[:n] if n else probs) for b, probs in problems.items()}


def _est(e: Estimate) -> list[float]:
    return [float(e.lo), float(e.hi)]


def summarize(cfg: ProfileConfig, rd: RunDir, rows: Sequence[dict[str, Any]], vocab_size: int,
              seed: int = 0) -> tuple[list[ArmPoint], list[Difference], list[str]]:
    """Arm points and paired differences per budget from per-problem rows (`divisor`, `arm`, `seed`, loss)."""
    points, diffs, notes = [], [], []
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((str(r["arm"]), int(r["divisor"])), []).append(r)
    for div in budget_divisors(cfg):
        for a in ARMS:
            got = by.get((a.key, div))
            if not got:
                notes.append(f"no {a.letter} model at budget 1/{div}")
                continue
            seeds, ids, m = arm_matrix(got, a.key, POOLED, LOSS)
            e = bootstrap_mean_seeds(m, seed=seed)
            step = step_name(a, seeds[0], div)
            preset = _trained(rd, step)[0]
            flops, tokens = _flops(rd, step, vocab_size)
            points.append(ArmPoint(a.key, a.letter, div, preset, count_params(preset, vocab_size).non_embedding,
                                   tokens, flops, seeds, float(e.mean), _est(e), len(ids)))
        for first, second, name in COMPARISONS:
            if (first, div) not in by or (second, div) not in by:
                continue
            _, ids_a, ma = arm_matrix(by[(first, div)], first, POOLED, LOSS)
            _, ids_b, mb = arm_matrix(by[(second, div)], second, POOLED, LOSS)
            common = sorted(set(ids_a) & set(ids_b))
            ma = ma[:, [ids_a.index(t) for t in common]]
            mb = mb[:, [ids_b.index(t) for t in common]]
            d = paired_difference_seeds(ma, mb, seed=seed)
            diffs.append(Difference(name, first, second, div, float(d.mean), _est(d), bool(d.excludes(0.0))))
    return points, diffs, notes


def trend_sentences(diffs: Sequence[Difference]) -> list[str]:
    """Per comparison, from the smallest budget to the main one: sign, size and resolution at each
    budget, and whether the effect grows, shrinks or flips as compute grows."""
    out = []
    for _, _, name in COMPARISONS:
        ds = sorted((d for d in diffs if d.name == name), key=lambda d: -d.divisor)  # smallest budget first
        if not ds:
            continue
        label = name.split(":")[0]
        steps = "; ".join(f"1/{d.divisor}: {d.mean:+.3f} [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}]"
                          f"{' resolved' if d.resolved else ' not resolved'}" for d in ds)
        if len(ds) < 2:
            out.append(f"{label}: {steps} (one budget only).")
            continue
        lo, hi = ds[0], ds[-1]
        resolved_signs = {np.sign(d.mean) for d in ds if d.resolved}
        if len(resolved_signs) > 1:
            move = "flips sign (resolved both ways)"
        elif not any(d.resolved for d in ds):
            move = "is not resolved at any budget"
        elif abs(hi.mean) > abs(lo.mean) and np.sign(hi.mean) == np.sign(lo.mean):
            move = f"grows in size with compute ({abs(lo.mean):.3f} -> {abs(hi.mean):.3f} nats/token)"
        elif np.sign(hi.mean) != np.sign(lo.mean):
            move = "changes sign with compute (not resolved both ways)"
        else:
            move = f"shrinks with compute ({abs(lo.mean):.3f} -> {abs(hi.mean):.3f} nats/token)"
        where = [("1" if d.divisor == 1 else f"1/{d.divisor}") for d in ds if d.resolved]
        if where and len(where) < len(ds):
            move += f", resolved at budget{'s' if len(where) > 1 else ''} {', '.join(where)} only"
        out.append(f"{label} {move}: {steps} (main budget = 1/1; negative = the first arm has the lower loss).")
    return out


def _baselines(main_rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for a in ARMS:
        for key, col in (("unigram", UNIGRAM), ("bigram", BIGRAM)):
            vals = {f"{r['benchmark']}:{r['task_id']}": float(r[col]) for r in main_rows
                    if r["arm"] == a.key and r.get(col) not in (None, "")}
            if vals:
                out.setdefault(a.key, {})[key] = float(np.mean(list(vals.values())))
    return out


def run_scaling(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> ScalingResult:
    """Score the smaller-budget models and compare every arm across budgets; writes
    `scaling/problem_scores.csv` (the eval step's columns) and `scaling/scaling.json`."""
    cfg = rd.view(STEP, cfg)
    out = rd.path / STEP
    with rd.step(STEP, force, config=cfg.compute) as rec:
        if rec is None:
            return read_result(ScalingResult, out / "scaling.json")
        t0 = time.time()
        from ..model.tokenizer import load_tokenizer
        from .scores import SCORE_FIELDS, write_problem_scores

        vocab_size = len(load_tokenizer(rd.require("tokenizer")))
        main = _main_rows(rd)
        budget_rows = _score_budget_models(cfg, rd, _problems(cfg))
        points, diffs, notes = summarize(cfg, rd, main + budget_rows, vocab_size, seed=cfg.seed)
        result = ScalingResult(budgets=budget_divisors(cfg), points=points, differences=diffs,
                               baselines=_baselines(main), trends=trend_sentences(diffs), not_covered=NOT_COVERED,
                               n_problems=max((p.n_problems for p in points), default=0),
                               wall_s=round(time.time() - t0, 1), notes=notes)
        # the budget is in each model's step name (`<arm>_div<d>_s<k>`)
        write_problem_scores([{k: v for k, v in r.items() if k in SCORE_FIELDS} for r in budget_rows],
                             out / "problem_scores.csv")
        write_json_atomic(out / "scaling.json", asdict(result))
        rec.counts.update({"models": len({r["model"] for r in budget_rows}), "budgets": len(result.budgets)})
    return result


def scaling_figure(result: ScalingResult) -> tuple[Any, dict[str, Any]]:
    """Left: canonical-solution loss against training FLOPs per arm, with each arm's bigram baseline;
    right: the paired differences against the budget, with 95% intervals and zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.report import COLORS

    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(12, 4.5))
    for a in ARMS:
        pts = sorted((p for p in result.points if p.arm == a.key), key=lambda p: p.flops)
        if not pts:
            continue
        x = [p.flops for p in pts]
        y = [p.loss for p in pts]
        err = [[p.loss - p.ci95[0] for p in pts], [p.ci95[1] - p.loss for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=COLORS.get(a.key), label=f"{a.letter}: {a.label.split(': ', 1)[-1]}")
        for p in pts:
            ax.annotate(p.preset, (p.flops, p.loss), textcoords="offset points", xytext=(4, 4), fontsize=6)
        big = result.baselines.get(a.key, {}).get("bigram")
        if big is not None:
            ax.axhline(big, color=COLORS.get(a.key), ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("canonical-solution loss (nats/token)")
    ax.set_title("loss vs compute (dotted: each arm's bigram baseline)")
    ax.legend(fontsize=7)
    names = [n for _, _, n in COMPARISONS]
    width = 0.8 / max(1, len(result.budgets))
    for j, div in enumerate(sorted(result.budgets, reverse=True)):
        ds = {d.name: d for d in result.differences if d.divisor == div}
        xs = [i + (j - (len(result.budgets) - 1) / 2) * width for i, n in enumerate(names) if n in ds]
        ys = [ds[n].mean for n in names if n in ds]
        err = [[ds[n].mean - ds[n].ci95[0] for n in names if n in ds], [ds[n].ci95[1] - ds[n].mean for n in names if n in ds]]
        ax_d.bar(xs, ys, width=width, yerr=err, capsize=3, label=f"budget 1/{div}" if div > 1 else "main budget")
    ax_d.axhline(0, color="k", lw=0.8)
    ax_d.set_xticks(range(len(names)))
    ax_d.set_xticklabels([n.split(":")[0] for n in names])
    ax_d.set_ylabel("paired difference (nats/token; < 0: first arm better)")
    ax_d.set_title("differences by budget (95% intervals)")
    ax_d.legend(fontsize=7)
    fig.tight_layout()
    return fig, asdict(result)
