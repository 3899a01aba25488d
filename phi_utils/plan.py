"""The plan of a profile (`run --dry-run`, notebook 00): data sizes, steps, tokens, FLOPs, estimated
A100-hours and teacher API cost, computed from the configuration alone (nothing is run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ProfileConfig

# The paper's measured throughput: 51B tokens in 770 A100-hours for phi-1 (Fig. 2.1 caption).
PAPER_TOKENS_PER_GPU_HOUR = 51e9 / 770


@dataclass
class Plan:
    profile: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    teacher_cost_usd: float = 0.0
    gpu_hours: float = 0.0

    def __str__(self) -> str:
        w = max(len(k) for k, _ in self.rows)
        return "\n".join([f"plan for profile {self.profile!r} (nothing is run):"] +
                         [f"  {k.ljust(w)}  {v}" for k, v in self.rows])


def human(n: float) -> str:
    """1234567 -> '1.23M' (tokens, parameters)."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.3g}{unit}"
    return f"{n:,.0f}"


def count_parameters(mc: Any) -> int:
    """Exact parameter count of a model config, without allocating weights (meta device)."""
    import torch

    from .model import PhiForCausalLM

    with torch.device("meta"):
        return sum(p.numel() for p in PhiForCausalLM(mc).parameters())


def make_plan(cfg: ProfileConfig, run_dir: Any = None) -> Plan:
    """Data sizes, steps, tokens, estimated GPU-hours and teacher API cost of a profile; with
    `run_dir`, the epochs of the runs whose data that run directory has packed already."""
    from .model import get_model_config
    from .model.flops import PAPER_A100_MFU, PEAK_FLOPS, flops_per_token

    plan = Plan(cfg.name)
    t = cfg.teacher
    from .teacher.ledger import price_per_1k

    gen_price = price_per_1k(t.model, (t.price_per_1k_prompt, t.price_per_1k_completion))
    rate_price = price_per_1k(t.rating_model or t.model, gen_price)

    def cost(n: int, prompt_tok: float, completion_tok: float, price: tuple[float, float]) -> float:
        return n * (prompt_tok * price[0] + completion_tok * price[1]) / 1000

    # Rough request sizes: a rating sees the (cut) file plus a ~250-token rubric and answers in ~40
    # tokens; generation prompts are ~150 tokens; completions use the configured caps.
    ann_prompt = cfg.annotation.max_prompt_chars / 3.5 + 250
    n_ann = cfg.annotation.n_samples + cfg.annotation.reliability_subset
    c_ann = cost(n_ann, ann_prompt, 40, rate_price)
    c_tb = cost(cfg.textbooks.n_passages + cfg.textbooks.ablation_passages, 150, cfg.textbooks.max_tokens, gen_price)
    c_ex = cost(cfg.exercises.n_exercises, 150, cfg.exercises.max_tokens, gen_price)
    plan.teacher_cost_usd = c_ann + c_tb + c_ex
    backend = "local llama.cpp server" if t.backend == "local" else f"{t.base_url or 'OpenAI API'}"
    plan.rows += [
        ("description", cfg.description),
        ("teacher", f"{backend}: generation {t.model if t.backend == 'openai' else t.local_model}, "
                    f"rating {(t.rating_model or t.model) if t.backend == 'openai' else t.local_model}"),
        ("corpus", f"source {cfg.corpus.source}, files {cfg.corpus.max_files or 'all'}"),
        ("annotation (01)", f"{cfg.annotation.n_samples:,} samples rated (+{cfg.annotation.reliability_subset:,} re-rated)"
                            f" ~ ${c_ann:,.2f}"),
        ("filter (02)", f"embedder {cfg.filter.embedder}, random forest {cfg.filter.n_estimators} trees, "
                        f"keep {cfg.filter.keep_fraction:.0%}"),
        ("textbooks (03)", f"{cfg.textbooks.n_passages:,} passages x <= {cfg.textbooks.max_tokens} tokens"
                           f" (<= {human(cfg.textbooks.n_passages * cfg.textbooks.max_tokens)} tokens) ~ ${c_tb:,.2f}"),
        ("exercises (04)", f"{cfg.exercises.n_exercises:,} exercises x <= {cfg.exercises.max_tokens} tokens"
                           f" (<= {human(cfg.exercises.n_exercises * cfg.exercises.max_tokens)} tokens) ~ ${c_ex:,.2f}"),
    ]
    vocab = 51200 if cfg.tokenizer.name_or_path else cfg.tokenizer.vocab_size
    # Figure 2.1: three pretraining arms (A raw, B' filtered alone, B CodeTextbook) and the finetuned C,
    # each once per seed (`phi_utils.arms`).
    from .arms import FINETUNE_ARMS, PRETRAIN_ARMS

    gpu_hours_b = 0.0
    a100_rate = PEAK_FLOPS["A100"]["bf16"] * PAPER_A100_MFU  # FLOP/s at the MFU the paper's run implies
    for label, tc, runs in (("pretrain (06)", cfg.pretrain, len(PRETRAIN_ARMS) * len(cfg.pretrain.seeds)),
                            ("finetune (07)", cfg.finetune, len(FINETUNE_ARMS) * len(cfg.finetune.seeds))):
        mc = get_model_config(tc.model, vocab_size=vocab)
        tokens = tc.max_steps * tc.global_batch_size * tc.seq_len
        flops = flops_per_token(mc, tc.seq_len) * tokens
        plan.rows.append((label, f"model {tc.model} ({human(count_parameters(mc))} params, seq {tc.seq_len}), "
                                 f"{tc.max_steps:,} steps x {tc.global_batch_size} seqs = {human(tokens)} tokens, "
                                 f"{flops:.2e} FLOPs per run, {runs} run(s)"))
        if cfg.n_gpus:
            hours = flops / a100_rate / 3600
            plan.gpu_hours += hours * runs
            gpu_hours_b += hours
    if cfg.compute.minutes_per_run > 0:
        from .train.budget import rule_summary, run_rows

        plan.rows += [("compute sizing", line) for line in rule_summary(cfg)]
        rows = run_rows(cfg, run_dir)
        plan.rows += [(f"  {r.step}", f"{r.arm} budget {r.budget}: {r.model}, params {human(r.params_embedding)} "
                                      f"embedding + {human(r.params_non_embedding)} non-embedding, "
                                      f"{human(r.tokens)} tokens, {r.tokens_per_param:.1f} tokens/param, "
                                      f"epochs {'-' if r.epochs is None else f'{r.epochs:.2f}'}, "
                                      f"~{r.est_minutes:.1f} min") for r in rows]
        plan.rows.append(("training minutes (est.)", f"{sum(r.est_minutes or 0 for r in rows):.1f} at the reference "
                                                     "throughput, without packing and evaluation"))
    if cfg.n_gpus:
        base = cfg.pretrain
        base_tokens = min(base.max_steps, 24_000) * base.global_batch_size * base.seq_len
        base_hours = flops_per_token(get_model_config(base.model, vocab_size=vocab), base.seq_len) * base_tokens \
            / a100_rate / 3600
        plan.rows.append(("GPU-hours (est.)",
                          f"{plan.gpu_hours:,.0f} A100-hours in all at 46% MFU ({gpu_hours_b:,.0f} for CodeTextbook "
                          f"pretraining + finetuning = {gpu_hours_b / cfg.n_gpus / 24:,.1f} days on {cfg.n_gpus} GPUs); "
                          f"phi-1-base's {human(base_tokens)} tokens: {base_hours:,.0f} A100-hours "
                          f"(paper-reported: 770 GPU-hours for 51B tokens)"))
    plan.rows.append(("teacher cost (est.)", f"${plan.teacher_cost_usd:,.0f}" + (" (local: free)" if t.backend == "local" else "")))
    plan.rows.append(("evaluation (08)", f"{', '.join(cfg.eval.benchmarks)}; {cfg.eval.n_samples} sample(s)/problem, "
                                         f"T={cfg.eval.temperature}, limit {cfg.eval.limit or 'all'}"))
    return plan
