"""Table 3 (paper §5.2): HumanEval pass@1 on "similar" / "non-similar" problems, paper-reported
rows beside this run's measured rows (every row carries a `source` column)."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

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


def split_pass_rates(passed: Mapping[str, bool], similar: Sequence[str], evaluated: Sequence[str]) -> dict[str, tuple[float, int]]:
    """pass@1 (percent) and problem count on similar / non-similar / total, over the evaluated problems."""
    sim = set(similar)
    groups = {"similar": [p for p in evaluated if p in sim], "non-similar": [p for p in evaluated if p not in sim],
              "total": list(evaluated)}
    out = {}
    for name, ids in groups.items():
        n = len(ids)
        out[name] = (100.0 * sum(bool(passed.get(p, False)) for p in ids) / n if n else float("nan"), n)
    return out


def run_table3(taus: Sequence[float], similar_by_tau: Mapping[float, Sequence[str]], evaluated: Sequence[str],
               base_passed: Mapping[str, bool] | None, retrained_passed: Mapping[float, Mapping[str, bool]]) -> pd.DataFrame:
    """This run's Table 3 rows: the finetuned model and each retrained-on-pruned model, by subset."""
    rows = []
    for t in taus:
        base = split_pass_rates(base_passed, similar_by_tau[t], evaluated) if base_passed is not None else None
        ret = (split_pass_rates(retrained_passed[t], similar_by_tau[t], evaluated) if t in retrained_passed else None)
        for subset in ("similar", "non-similar", "total"):
            n = (base or ret or split_pass_rates({}, similar_by_tau[t], evaluated))[subset][1]
            rows.append({"source": "this run", "tau": t, "subset": subset, "n_problems": n,
                         "phi-1": None if base is None else round(base[subset][0], 1),
                         "retrained": None if ret is None else round(ret[subset][0], 1),
                         "StarCoder-Prompted": None})
    return pd.DataFrame(rows)


def combined_table3(run_df: pd.DataFrame) -> pd.DataFrame:
    """Paper-reported rows and this run's rows, interleaved by τ and subset."""
    df = pd.concat([paper_table3(), run_df], ignore_index=True)
    order = {"similar": 0, "non-similar": 1, "total": 2}
    df["_o"] = df["subset"].map(order)
    df = df.sort_values(["tau", "_o", "source"], ascending=[False, True, True], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)
