"""Figure 2.1 and Table 1 with intervals: per-problem numbers of every model, pooled per arm over its
seeds, and the paired differences between arms (the same problems under both arms).

Per problem and model (`eval/problem_scores.csv`): the canonical solution's loss in nats/token given
the sanitised prompt, greedy pass (0/1), and on the sampled benchmarks the unbiased pass@1 / pass@10
from n samples. Per arm (`summarize`):

- canonical-solution loss: mean over seeds and problems, 95% interval from the seed-and-problem
  bootstrap (`stats.bootstrap_mean_seeds`); the per-seed means are kept;
- pass rates: per problem, the mean over the arm's seeds, then a Wilson interval over problems
  (`stats.rate_estimate`: exact for one seed's 0/1, conservative for fractions); 0 solved still has
  an upper bound (0 of 164: [0, 2.3%]);
- paired differences B'-A, B-B', B-A, C-B (`arms.COMPARISONS`): `stats.paired_difference_seeds` over
  the same problems, each arm's seeds resampled independently; `stats.verdict` says whether each is
  resolved at 95%;
- reference lines (`baselines.py`): per arm the canonical-solution loss of a unigram and a bigram count
  model fit on the arm's own training tokens (one fit per arm: the data is the same for every seed),
  with a problem-bootstrap interval, and the arm's gap to each (arm minus baseline, paired over
  problems, the arm's seeds resampled: `stats.paired_difference_seeds`). An arm below its bigram
  baseline, resolved at 95%, learned more than token statistics (`learned_sentences`).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..stats import Estimate, bootstrap_mean_seeds, paired_difference_seeds, rate_estimate, verdict
from ..arms import ARM_BY_KEY, ARMS, COMPARISONS

LOSS = "canonical_loss"
UNIGRAM = "unigram_loss"
BIGRAM = "bigram_loss"
BASELINES = {"unigram": UNIGRAM, "bigram": BIGRAM}
"""The reference lines for "learned" (`baselines.py`): per problem, the canonical solution's loss under a
unigram / bigram count model fit on the arm's own training tokens, same tokens as `LOSS`."""
GREEDY = "greedy_passed"
SAMPLED = ("pass@1_sampled", "pass@10")
POOLED = "all"
"""The pseudo-benchmark of every problem of every benchmark together (164 HumanEval + 500 MBPP)."""


# --------------------------------------------------------------------------- per-problem loss
def model_max_len(model: Any) -> int:
    """The context length `per_problem_loss` scores within: the model's `block_size`
    (`max_position_embeddings` for other Hugging Face models), 2048 when it states neither."""
    mcfg = getattr(model, "config", None)
    return int(getattr(mcfg, "block_size", None) or getattr(mcfg, "max_position_embeddings", 2048))


def canonical_sequences(tokenizer: Any, problems: Sequence[Any], max_len: int) -> list[tuple[list[int], int]]:
    """(token ids, length of the prompt part) of each problem's prompt + canonical solution, as
    `per_problem_loss` scores them: prompt and solution tokenised separately and joined, the solution
    cut to `max_len - 1` tokens, the prompt's tail kept when the two do not fit in `max_len`.
    Scored are positions `max(n_prompt, 1)` to the end, each given every token before it."""
    seqs: list[tuple[list[int], int]] = []
    for p in problems:
        a = tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
        b = tokenizer(p.canonical_solution, add_special_tokens=False)["input_ids"][:max_len - 1]
        if len(a) + len(b) > max_len:
            a = a[-(max_len - len(b)):]
        seqs.append((list(a) + list(b), len(a)))
    return seqs


def per_problem_loss(lm: Any, problems: Sequence[Any], max_len: int | None = None,
                     batch_tokens: int = 8192) -> list[tuple[int, float]]:
    """(scored tokens, nats/token) of each problem's canonical solution given its prompt.

    As `generation.canonical_solution_loss` (prompt and solution tokenised separately and joined, the
    prompt's tail kept when too long), but per problem and batched: rows are right-padded, which
    leaves a causal model's scores of the real positions unchanged.
    """
    import torch
    import torch.nn.functional as F

    tok, model = lm.tokenizer, lm.model
    seqs = canonical_sequences(tok, problems, model_max_len(model) if max_len is None else max_len)
    out: list[tuple[int, float]] = [(0, float("nan"))] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    device = next(model.parameters()).device
    model.eval()
    i = 0
    with torch.inference_mode():
        while i < len(order):
            longest = max(len(seqs[order[i]][0]), 2)
            j = i + max(1, batch_tokens // longest)
            batch = order[i:j]
            longest = max(len(seqs[k][0]) for k in batch)
            ids = torch.zeros((len(batch), longest), dtype=torch.long)
            target = torch.full((len(batch), longest), -100, dtype=torch.long)
            for r, k in enumerate(batch):
                s, n_a = seqs[k]
                ids[r, :len(s)] = torch.tensor(s)
                start = max(n_a, 1)  # the first token of a prompt-less row has no prediction
                target[r, start:len(s)] = torch.tensor(s[start:])
            logits = model(ids.to(device))
            logits = logits if isinstance(logits, torch.Tensor) else logits.logits
            ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target[:, 1:].to(device),
                                 ignore_index=-100, reduction="none")
            n = (target[:, 1:] != -100).sum(1)
            for r, k in enumerate(batch):
                cnt = int(n[r])
                out[k] = (cnt, float(ce[r].sum()) / cnt if cnt else float("nan"))
            i = j
    return out


# --------------------------------------------------------------------------- pooling per arm
def arm_matrix(rows: Iterable[dict[str, Any]], arm: str, benchmark: str, metric: str) -> tuple[list[int], list[str], np.ndarray]:
    """(seeds, task ids, seeds x problems matrix) of `metric` for one arm; problems in a fixed order."""
    cells: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["arm"] != arm or (benchmark != POOLED and r["benchmark"] != benchmark):
            continue
        v = r.get(metric)
        if v is None or v == "" or (isinstance(v, float) and np.isnan(v)):
            continue
        cells.setdefault(int(r["seed"]), {})[f"{r['benchmark']}:{r['task_id']}"] = float(v)
    if not cells:
        return [], [], np.zeros((0, 0))
    seeds = sorted(cells)
    ids = sorted(cells[seeds[0]])
    for s in seeds[1:]:
        if sorted(cells[s]) != ids:
            raise ValueError(f"arm {arm!r}, {benchmark}, {metric}: seed {s} was scored on other problems than seed "
                             f"{seeds[0]}; every model must be evaluated on the same problems")
    return seeds, ids, np.array([[cells[s][t] for t in ids] for s in seeds])


def _est(e: Estimate) -> dict[str, Any]:
    return {"mean": e.mean, "ci95": [e.lo, e.hi], "n_problems": e.n, "n_seeds": e.n_seeds, "method": e.method}


def _rate(matrix: np.ndarray) -> Estimate:
    est = rate_estimate(matrix.mean(axis=0))
    return Estimate(est.mean, est.lo, est.hi, est.n, est.method, n_seeds=matrix.shape[0])


def metrics_of(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(benchmark, metric) pairs present in the per-problem rows: the loss per benchmark and pooled,
    greedy pass per benchmark, sampled pass@k where sampled."""
    benches = sorted({r["benchmark"] for r in rows}, key=lambda b: (b != "humaneval", b))
    out = [(b, LOSS) for b in benches]
    if len(benches) > 1:
        out.append((POOLED, LOSS))
    out += [(b, GREEDY) for b in benches]
    for m in SAMPLED:
        out += [(b, m) for b in benches if any(r["benchmark"] == b and r.get(m) not in (None, "") for r in rows)]
    return out


def summarize(rows: Sequence[dict[str, Any]], n_boot: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Per arm: seeds, per-seed means, mean and ci95 of every metric; the paired differences between
    arms with n_problems and their generated verdicts. `rows` are `problem_scores.csv` records."""
    present = [a for a in ARMS if any(r["arm"] == a.key for r in rows)]
    pairs = metrics_of(rows)
    arms: dict[str, Any] = {}
    matrices: dict[tuple[str, str, str], tuple[list[str], np.ndarray]] = {}
    for a in present:
        entry: dict[str, Any] = {"key": a.key, "label": a.label, "prefix": a.prefix, "metrics": {}}
        for bench, metric in pairs:
            seeds, ids, m = arm_matrix(rows, a.key, bench, metric)
            if not seeds:
                continue
            matrices[(a.key, bench, metric)] = (ids, m)
            if len(seeds) > len(entry.get("seeds", [])):  # sampled metrics may cover fewer seeds
                entry["seeds"] = seeds
            est = bootstrap_mean_seeds(m, n_boot=n_boot, seed=seed) if metric == LOSS else _rate(m)
            entry["metrics"].setdefault(metric, {})[bench] = {**_est(est), "per_seed": m.mean(axis=1).tolist()}
        arms[a.letter] = entry
    diffs = []
    for hi, lo, what in COMPARISONS:
        for bench, metric in pairs:
            if (hi, bench, metric) not in matrices or (lo, bench, metric) not in matrices:
                continue
            ids_a, ma = matrices[(hi, bench, metric)]
            ids_b, mb = matrices[(lo, bench, metric)]
            if ids_a != ids_b:
                raise ValueError(f"{what}: the two arms were scored on different {bench} problems")
            d = paired_difference_seeds(ma, mb, n_boot=n_boot, seed=seed)
            name = f"{ARM_BY_KEY[hi].letter} - {ARM_BY_KEY[lo].letter}"
            diffs.append({"name": name, "what": what, "benchmark": bench, "metric": metric, **_est(d),
                          "resolved": d.excludes(0.0), "both_zero": bool(ma.max() == 0 and mb.max() == 0),
                          "verdict": verdict(d, f"{name} ({what.split(': ', 1)[-1]}), {_metric_words(metric, bench)}",
                                             _unit(metric))})
    gaps = _baseline_gaps(rows, arms, matrices, pairs, n_boot, seed)
    n_problems = {}
    for r in rows:
        n_problems.setdefault(r["benchmark"], set()).add(r["task_id"])
    counts = {b: len(v) for b, v in n_problems.items()}
    if len(counts) > 1:
        counts[POOLED] = sum(counts.values())
    return {"arms": arms, "paired_differences": diffs, "baseline_gaps": gaps, "n_problems": counts}


def _baseline_gaps(rows: Sequence[dict[str, Any]], arms: dict[str, Any],
                   matrices: dict[tuple[str, str, str], tuple[list[str], np.ndarray]],
                   pairs: Sequence[tuple[str, str]], n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Adds each arm's baseline losses to its `metrics` (`UNIGRAM`, `BIGRAM`, per loss benchmark) and
    returns the gaps arm minus baseline, paired over problems, with their verdicts. A baseline fit once
    for the arm repeats across its seeds' rows; it is reduced to one row (a fixed function of the data,
    no seed spread). Seeds whose data differ keep one baseline row each, paired seed by seed."""
    out = []
    for letter, entry in arms.items():
        for bench in [b for b, m in pairs if m == LOSS]:
            if (entry["key"], bench, LOSS) not in matrices:
                continue
            ids_a, ma = matrices[(entry["key"], bench, LOSS)]
            for kind, col in BASELINES.items():
                seeds, ids, mb = arm_matrix(rows, entry["key"], bench, col)
                if not seeds:
                    continue
                if ids != ids_a:
                    raise ValueError(f"arm {entry['key']!r}, {bench}: the {kind} baseline was scored on other "
                                     "problems than the model")
                one = np.unique(mb, axis=0)
                est = bootstrap_mean_seeds(one, n_boot=n_boot, seed=seed)
                entry["metrics"].setdefault(col, {})[bench] = {**_est(est), "per_seed": mb.mean(axis=1).tolist()}
                if one.shape[0] == 1:
                    d = paired_difference_seeds(ma, one, n_boot=n_boot, seed=seed)
                else:
                    e = bootstrap_mean_seeds(ma - mb, n_boot=n_boot, seed=seed)
                    d = Estimate(e.mean, e.lo, e.hi, e.n, "paired-seed-and-unit-bootstrap", e.n_seeds)
                name = f"{letter} - {kind}({letter})"
                out.append({"name": name, "arm": letter, "key": entry["key"], "baseline": kind, "benchmark": bench,
                            "metric": LOSS, **_est(d), "n_seeds": int(ma.shape[0]), "resolved": d.excludes(0.0),
                            "below": bool(d.excludes(0.0) and d.mean < 0),
                            "verdict": verdict(d, f"{name}, {_metric_words(LOSS, bench)}", _unit(LOSS))})
    return out


def learned_sentences(summary: dict[str, Any]) -> list[str]:
    """One generated sentence per arm: did its model learn more than token statistics, i.e. is its
    canonical-solution loss below that of a bigram model of its own training tokens, resolved at 95%?
    On the pooled problems when there are several benchmarks, else per benchmark."""
    gaps = summary.get("baseline_gaps") or []
    benches = {g["benchmark"] for g in gaps}
    main = [POOLED] if POOLED in benches else sorted(benches, key=lambda b: (b != "humaneval", b))
    out = []
    for letter in summary["arms"]:
        for bench in main:
            by = {g["baseline"]: g for g in gaps if g["arm"] == letter and g["benchmark"] == bench}
            g = by.get("bigram")
            if g is None:
                continue
            if g["below"]:
                head = f"({letter}) learned more than token statistics: below its own bigram baseline, resolved at 95%"
            elif g["resolved"]:
                head = (f"({letter}) did not learn more than token statistics: above its own bigram baseline, "
                        "resolved at 95%")
            else:
                head = (f"({letter}) is not resolved from its own bigram baseline at 95%: whether it learned more "
                        "than token statistics is open")
            u = by.get("unigram")
            uni = (f" Against its unigram baseline: {u['mean']:+.4f} nats/token [{u['ci95'][0]:+.4f}, "
                   f"{u['ci95'][1]:+.4f}].") if u else ""
            out.append(f"{head}. {g['verdict']}{uni}")
    return out


def _metric_words(metric: str, bench: str) -> str:
    where = "HumanEval + MBPP" if bench == POOLED else {"humaneval": "HumanEval", "mbpp": "MBPP"}.get(bench, bench)
    return {LOSS: f"canonical-solution loss on {where}", GREEDY: f"greedy pass@1 on {where}",
            "pass@1_sampled": f"sampled pass@1 on {where}", "pass@10": f"pass@10 on {where}"}[metric]


def _unit(metric: str) -> str:
    return "nats/token" if metric == LOSS else ""


def conclusions(summary: dict[str, Any], metrics: Sequence[str] = (LOSS, GREEDY, "pass@10")) -> list[str]:
    """The notebook's conclusions, generated: one verdict per paired difference (pass-rate differences
    between two arms that both solve nothing are left to the next lines), then for pass rates that are
    0 everywhere the interval that says how much a tiny model could still solve; with the loss among
    `metrics`, whether each arm learned more than token statistics (`learned_sentences`)."""
    out = [d["verdict"] for d in summary["paired_differences"]
           if d["metric"] in metrics and not (d["metric"] != LOSS and d.get("both_zero"))]
    if LOSS in metrics:
        out += learned_sentences(summary)
    for letter, a in summary["arms"].items():
        for metric in (GREEDY, "pass@10"):
            for bench, e in a["metrics"].get(metric, {}).items():
                if e["mean"] == 0:
                    out.append(f"({letter}) solves none of {e['n_problems']} {bench} problems "
                               f"({_metric_words(metric, bench).split(' on ')[0]}, {e['n_seeds']} seed(s)); "
                               f"95% upper bound {100 * e['ci95'][1]:.1f}%.")
    return out

