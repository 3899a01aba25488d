"""The eval step's scores, typed: `EvalScores` is `eval/scores.json` (strict JSON, `asdict` on write,
`from_dict` on read), `load_scores(rd)` the only way a downstream step reads it (through
`rd.require("eval")`, which refuses a missing or stale step). Per problem, `eval/problem_scores.csv`
(`write_problem_scores` / `load_problem_scores`)."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..rundir import RunDir, read_result, write_json_atomic
from .fig21 import BIGRAM, GREEDY, LOSS, UNIGRAM

STEP = "eval"
SCORES = "scores.json"
PROBLEM_SCORES = "problem_scores.csv"


@dataclass
class PassRate:
    """A pass rate over problems with its 95% Wilson interval (`passk.PassAtK.estimate`)."""

    mean: float
    """Mean over problems of the per-problem pass@k (greedy pass@1: the fraction solved)."""
    ci95: list[float]
    """Wilson 95% interval over problems, [low, high]."""
    n_problems: int
    """Problems averaged over."""
    wall_s: float = 0.0
    """Seconds generating and scoring took (0 where not measured here)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PassRate":
        return cls(**d)


@dataclass
class LossScore:
    """The canonical-solution loss of one model on one benchmark, with its n-gram baselines."""

    mean: float
    """nats/token, mean over problems."""
    n_problems: int
    """Problems scored (at most `eval.loss_problems`)."""
    wall_s: float
    """Seconds the loss took."""
    unigram: float | None = None
    """The arm's unigram baseline on the same tokens (nats/token, mean over problems); None = not fit."""
    bigram: float | None = None
    """The arm's bigram baseline on the same tokens; None = not fit."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LossScore":
        return cls(**d)


@dataclass
class SampledScores:
    """Sampled pass@k of one model on one benchmark."""

    pass_at_k: dict[str, PassRate]
    """`pass@k` -> rate, for each k every problem has samples for (`passk.KS`)."""
    n_samples: int
    """Samples per problem."""
    wall_s: float
    """Seconds generating and scoring took."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampledScores":
        return cls(**{**d, "pass_at_k": {k: PassRate.from_dict(v) for k, v in d["pass_at_k"].items()}})


@dataclass
class ModelScores:
    """One evaluated model (a training step, or a checkpoint given by path or hub name)."""

    kind: str
    """Model family as loaded (`phi`, or the transformers class's kind)."""
    n_params: int
    """Parameters."""
    arm: str
    """Arm key (`raw`, `filtered`, `textbook`, `finetune`); the model's name when it is no training step."""
    arm_letter: str
    """Arm letter of Figure 2.1 (A, B', B, C); the model's name when it is no training step."""
    seed: int
    """Training seed (0 for a model that is no training step)."""
    path: str = ""
    """Checkpoint directory or hub name."""
    canonical_loss: dict[str, LossScore] = field(default_factory=dict)
    """Benchmark -> the canonical-solution loss (and baselines)."""
    greedy: dict[str, PassRate] = field(default_factory=dict)
    """Benchmark -> greedy pass@1."""
    sampled: dict[str, SampledScores] = field(default_factory=dict)
    """Benchmark -> sampled pass@k (only `eval.sample_benchmarks` of sampled models)."""
    tokens_seen: int | None = None
    """Training tokens of the step (its manifest's count); None when not a training step."""
    wall_s: float = 0.0
    """Seconds this model's evaluation took."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelScores":
        return cls(**{**d, "canonical_loss": {b: LossScore.from_dict(v) for b, v in d.get("canonical_loss", {}).items()},
                      "greedy": {b: PassRate.from_dict(v) for b, v in d.get("greedy", {}).items()},
                      "sampled": {b: SampledScores.from_dict(v) for b, v in d.get("sampled", {}).items()}})


@dataclass
class TeacherScores:
    """Table 1's teacher row: scored in the eval step, or read from an `evaluate` summary."""

    label: str | None = None
    """The teacher model's label; None when it could not be had (see `error`)."""
    error: str | None = None
    """Why the teacher was not evaluated."""
    limit: int = 0
    """Problems per benchmark (0 = all)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Generation settings (`generation.settings_dict`, or the summary's)."""
    greedy: dict[str, PassRate] = field(default_factory=dict)
    """Benchmark -> greedy pass@1."""
    errors: dict[str, int] = field(default_factory=dict)
    """Benchmark -> requests that got no reply (scored as failures)."""
    prompt_format: str | None = None
    """`base` or `instruct` (from an `evaluate` summary)."""
    summary: str | None = None
    """The `evaluate` summary this row was read from; None when scored in the eval step."""
    date: str | None = None
    """Date of that summary (YYYY-MM-DD)."""
    commit: str | None = None
    """Commit that summary was made at."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TeacherScores":
        return cls(**{**d, "greedy": {b: PassRate.from_dict(v) for b, v in d.get("greedy", {}).items()}})


@dataclass
class EvalScores:
    """The eval step's `scores.json`: every model's scores, the Figure 2.1 summary, the teacher row and
    the settings they were measured under."""

    profile: str
    """The run's profile."""
    models: dict[str, ModelScores] = field(default_factory=dict)
    """Step (or given label) -> its scores."""
    fig21: dict[str, Any] | None = None
    """Per-arm summary and paired differences (`fig21.summarize`); None when no model was evaluated."""
    teacher: TeacherScores | None = None
    """Table 1's teacher row; None when the profile evaluates no teacher."""
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Arm key -> its unigram/bigram fit (`NgramBaselines.summary()` plus the steps it serves)."""
    n_problems: dict[str, int] = field(default_factory=dict)
    """Benchmark -> problems evaluated."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Greedy generation settings."""
    sampled_settings: dict[str, Any] | None = None
    """Sampled generation settings, the sampled benchmarks and seed rule; None when nothing is sampled."""
    placement: dict[str, str] = field(default_factory=dict)
    """Device and dtype the models ran in."""
    timeout_s: float = 0.0
    """Seconds per sandboxed program."""
    limit: int = 0
    """Problems per benchmark (0 = all)."""
    isolation: str = ""
    """The sandbox's isolation."""
    skipped_benchmarks: dict[str, str] = field(default_factory=dict)
    """Benchmark -> why its problems could not be had."""
    missing_models: list[str] = field(default_factory=list)
    """Training steps of the profile without a checkpoint."""
    wall_s: float = 0.0
    """Seconds the step took."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalScores":
        t = d.get("teacher")
        return cls(**{**d, "models": {m: ModelScores.from_dict(e) for m, e in d.get("models", {}).items()},
                      "teacher": None if t is None else TeacherScores.from_dict(t)})

    def write(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))


def load_scores(rd: RunDir) -> EvalScores:
    """The eval step's scores (one error when the step is missing, stale, or written by another version)."""
    return read_result(EvalScores, rd.require(STEP) / SCORES)


def scores_if_run(rd: RunDir) -> EvalScores | None:
    """The eval step's scores, or None when it has never finished (an optional upstream step); a
    stale or unreadable one is still `load_scores`'s error."""
    return load_scores(rd) if rd.run_id(STEP) is not None else None


SCORE_FIELDS = ["model", "arm", "seed", "benchmark", "task_id", "loss_tokens", LOSS, UNIGRAM, BIGRAM, GREEDY,
                "n_samples", "n_correct", "pass@1_sampled", "pass@10"]
"""Columns of `problem_scores.csv`: one row per model and problem."""


def write_problem_scores(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SCORE_FIELDS)
        w.writeheader()
        w.writerows(rows)


def load_problem_scores(rd: RunDir) -> list[dict[str, Any]]:
    """The eval step's `problem_scores.csv` as typed rows (empty cells = not measured; a file written before
    the baseline columns existed reads with them empty)."""
    def num(v: str | None) -> float | None:
        return None if v in ("", None) else float(v)

    with open(rd.require(STEP) / PROBLEM_SCORES, encoding="utf-8") as f:
        return [{**r, "seed": int(r["seed"]), "loss_tokens": int(r["loss_tokens"]), LOSS: num(r[LOSS]),
                 UNIGRAM: num(r.get(UNIGRAM)), BIGRAM: num(r.get(BIGRAM)),
                 GREEDY: num(r[GREEDY]), "n_samples": int(r["n_samples"]), "n_correct": int(r["n_correct"]),
                 "pass@1_sampled": num(r["pass@1_sampled"]), "pass@10": num(r["pass@10"])} for r in csv.DictReader(f)]
