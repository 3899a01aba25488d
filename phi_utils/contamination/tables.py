"""Table 3 (paper §5.2): HumanEval pass@1 on "similar" / "non-similar" problems, paper-reported
rows beside this run's measured rows (every row carries a `source` column)."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ..stats import wilson_interval

PAPER_TABLE3: list[dict] = [
    # tau, subset, #problems, phi-1, phi-1 retrained on pruned data, StarCoder-Prompted (percent)
    {"tau": 0.95, "subset": "similar", "n_problems": 71, "phi-1": 81.7, "retrained": 74.6, "StarCoder-Prompted": 57.7},
    {"tau": 0.95, "subset": "non-similar", "n_problems": 93, "phi-1": 26.9, "retrained": 32.3, "StarCoder-Prompted": 29.0},
    {"tau": 0.95, "subset": "total", "n_problems": 164, "phi-1": 50.6, "retrained": 50.6, "StarCoder-Prompted": 41.5},
    {"tau": 0.9, "subset": "similar", "n_problems": 93, "phi-1": 63.4, "retrained": 51.6, "StarCoder-Prompted": 48.4},
    {"tau": 0.9, "subset": "non-similar", "n_problems": 71, "phi-1": 33.8, "retrained": 36.6, "StarCoder-Prompted": 32.4},
    {"tau": 0.9, "subset": "total", "n_problems": 164, "phi-1": 50.6, "retrained": 45.1, "StarCoder-Prompted": 41.5},
    {"tau": 0.85, "subset": "similar", "n_problems": 106, "phi-1": 62.3, "retrained": 52.8, "StarCoder-Prompted": 47.2},
    {"tau": 0.85, "subset": "non-similar", "n_problems": 58, "phi-1": 29.3, "retrained": 34.5, "StarCoder-Prompted": 31.0},
    {"tau": 0.85, "subset": "total", "n_problems": 164, "phi-1": 50.6, "retrained": 46.3, "StarCoder-Prompted": 41.5},
    {"tau": 0.8, "subset": "similar", "n_problems": 116, "phi-1": 59.5, "retrained": 52.6, "StarCoder-Prompted": 45.7},
    {"tau": 0.8, "subset": "non-similar", "n_problems": 48, "phi-1": 29.2, "retrained": 27.1, "StarCoder-Prompted": 31.2},
    {"tau": 0.8, "subset": "total", "n_problems": 164, "phi-1": 50.6, "retrained": 45.1, "StarCoder-Prompted": 41.5},
]
"""Paper-reported Table 3 (Gunasekar et al. 2023, §5.2); see shared/reference/phi1-paper-notes.md §5.4."""

PAPER_REMOVED = {"tau_range": (0.95, 0.8), "removed": (42_500, 354_000), "of": 879_500}
"""Paper-reported: τ from 0.95 to 0.8 removes 42.5K to 354K of 879.5K exercises (§5.2)."""


def paper_table3() -> pd.DataFrame:
    df = pd.DataFrame(PAPER_TABLE3)
    df.insert(0, "source", "paper-reported")
    return df


MIN_PROBLEMS = 20
"""Below this many problems a subset's pass rate supports no conclusion: its 95% Wilson interval is
wider than ~35 percentage points whatever the rate (n = 20 at 50%: [29%, 71%])."""


def split_pass_rates(passed: Mapping[str, bool], similar: Sequence[str], evaluated: Sequence[str]) -> dict[str, tuple[float, int]]:
    """pass@1 (percent) and problem count on similar / non-similar / total, over the evaluated problems."""
    return {k: (v[0], v[1]) for k, v in split_estimates(passed, similar, evaluated).items()}


def split_estimates(passed: Mapping[str, bool], similar: Sequence[str],
                    evaluated: Sequence[str]) -> dict[str, tuple[float, int, float, float]]:
    """Per subset (similar / non-similar / total): pass@1 %, n, and the 95% Wilson interval in %
    (NaN for an empty subset)."""
    sim = set(similar)
    groups = {"similar": [p for p in evaluated if p in sim], "non-similar": [p for p in evaluated if p not in sim],
              "total": list(evaluated)}
    out = {}
    for name, ids in groups.items():
        n = len(ids)
        if not n:
            out[name] = (float("nan"), 0, float("nan"), float("nan"))
            continue
        k = sum(bool(passed.get(p, False)) for p in ids)
        lo, hi = wilson_interval(k, n)
        out[name] = (100.0 * k / n, n, 100.0 * lo, 100.0 * hi)
    return out


def _ci(e: tuple[float, int, float, float] | None) -> str | None:
    return None if e is None or not e[1] else f"[{e[2]:.1f}, {e[3]:.1f}]"


def run_table3(taus: Sequence[float], similar_by_tau: Mapping[float, Sequence[str]], evaluated: Sequence[str],
               base_passed: Mapping[str, bool] | None, retrained_passed: Mapping[float, Mapping[str, bool]]) -> pd.DataFrame:
    """This run's Table 3 rows: the finetuned model and each retrained-on-pruned model, by subset, each
    with its n and 95% Wilson interval; `n_too_small` marks subsets below `MIN_PROBLEMS`."""
    rows = []
    for t in taus:
        base = split_estimates(base_passed, similar_by_tau[t], evaluated) if base_passed is not None else None
        ret = split_estimates(retrained_passed[t], similar_by_tau[t], evaluated) if t in retrained_passed else None
        for subset in ("similar", "non-similar", "total"):
            n = (base or ret or split_estimates({}, similar_by_tau[t], evaluated))[subset][1]
            rows.append({"source": "this run", "tau": t, "subset": subset, "n_problems": n,
                         "phi-1": None if base is None or not n else round(base[subset][0], 1),
                         "phi-1_ci95": _ci(base[subset]) if base else None,
                         "retrained": None if ret is None or not n else round(ret[subset][0], 1),
                         "retrained_ci95": _ci(ret[subset]) if ret else None,
                         "StarCoder-Prompted": None, "n_too_small": n < MIN_PROBLEMS})
    return pd.DataFrame(rows)


def table3_conclusions(run_df: pd.DataFrame, base_passed: Mapping[str, bool] | None,
                       retrained_passed: Mapping[float, Mapping[str, bool]],
                       similar_by_tau: Mapping[float, Sequence[str]], evaluated: Sequence[str]) -> list[str]:
    """Generated sentences: per retrained τ and subset, the paired difference retrained - reference on
    the same problems (resolved at 95% or not), or that n is too small for any conclusion."""
    from ..stats import paired_difference, verdict

    out = []
    if base_passed is None:
        return ["No reference model was evaluated: Table 3 has no measured rows."]
    for t, ret in sorted(retrained_passed.items(), reverse=True):
        sim = set(similar_by_tau[t])
        for subset, ids in (("similar", [p for p in evaluated if p in sim]),
                            ("non-similar", [p for p in evaluated if p not in sim])):
            if len(ids) < MIN_PROBLEMS:
                out.append(f"τ={t} {subset}: n = {len(ids)} problems, too few for any conclusion "
                           f"(at least {MIN_PROBLEMS} needed).")
                continue
            d = paired_difference([float(bool(ret.get(p))) for p in ids], [float(bool(base_passed.get(p))) for p in ids])
            out.append(verdict(d, f"τ={t} {subset}: retrained on pruned data minus reference, pass@1"))
    return out


def combined_table3(run_df: pd.DataFrame) -> pd.DataFrame:
    """Paper-reported rows and this run's rows, interleaved by τ and subset."""
    df = pd.concat([paper_table3(), run_df], ignore_index=True)
    order = {"similar": 0, "non-similar": 1, "total": 2}
    df["_o"] = df["subset"].map(order)
    df = df.sort_values(["tau", "_o", "source"], ascending=[False, True, True], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)
