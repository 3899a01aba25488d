"""`ProfileConfig`, the whole configuration (one section per stage), and compute sizing applied to it:
with `compute.minutes_per_run` > 0 the sized fields of `pretrain` and `finetune` (`SIZED_FIELDS`) are
outputs of the rule in `phi_utils.sizing`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import sizing
from .paths import REPO_ROOT
from .schema import (AnnotationConfig, ComputeConfig, ConfigError, ContaminationConfig, CorpusConfig, DataConfig, Device,
                     EvalConfig, ExerciseConfig, FilterConfig, ProfileName, QualitativeConfig, TeacherConfig,
                     TextbookConfig, TokenizerConfig, TrainConfig, check_choices)


@dataclass
class ProfileConfig:
    name: ProfileName
    """Profile name (`smoke`, `tiny`, `paper`)."""
    description: str = ""
    """One line shown in the plan."""
    seed: int = 0
    """Global seed (data sampling, model init, teacher seeds)."""
    device: Device = "auto"
    """`auto`, `cpu` or `cuda`."""
    time_budget_min: float = 60.0
    """Target wall time of the whole pipeline on the profile's hardware (checked by the runner's summary)."""
    n_gpus: int = 0
    """GPUs the profile is sized for: plans and cost estimates, and the most training processes
    notebooks 06/07 launch (one per visible GPU)."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """Teacher LLM (GPT-4 / GPT-3.5 roles)."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    """Raw code corpus."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the data steps' pipelines run (datatrove executors)."""
    annotation: AnnotationConfig = field(default_factory=AnnotationConfig)
    """Notebook 01."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    """Notebook 02."""
    textbooks: TextbookConfig = field(default_factory=TextbookConfig)
    """Notebook 03."""
    exercises: ExerciseConfig = field(default_factory=ExerciseConfig)
    """Notebook 04."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """Tokenizer (notebook 05 onwards)."""
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    """Notebook 06: pretraining on CodeTextbook (and the raw-corpus baseline)."""
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=5, weight_decay=0.01, max_steps=50))
    """Notebook 07: finetuning on CodeExercises."""
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    """Compute sizing of the training runs (notebooks 06-07): model size and tokens from a time budget."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Notebook 08."""
    qualitative: QualitativeConfig = field(default_factory=QualitativeConfig)
    """Notebooks 09 and 10."""
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)
    """Notebook 11."""

    def __post_init__(self) -> None:
        check_choices(self, "")
        if self.compute.minutes_per_run > 0:
            apply_compute_sizing(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def default_run_dir(self) -> Path:
        return REPO_ROOT / "runs" / self.name


# --------------------------------------------------------------------------- compute sizing applied
def run_size(cfg: ProfileConfig, divisor: int = 1) -> sizing.RunSize:
    """The pretraining run of the budget `compute.minutes_per_run / divisor`, sized by the rule."""
    c, tc = cfg.compute, cfg.pretrain
    try:
        return sizing.size_run(c.minutes_per_run / divisor, c.presets, c.tokens_per_s, cfg.tokenizer.vocab_size,
                               tc.global_batch_size * tc.seq_len, c.tokens_per_param, c.count_embeddings)
    except ValueError as e:
        raise ConfigError(f"compute sizing (budget 1/{divisor}): {e}") from None


def sized_train_config(cfg: ProfileConfig, which: str, divisor: int = 1) -> TrainConfig:
    """`cfg.pretrain` or `cfg.finetune` (`which`) as a run of budget 1/`divisor` trains it. The main
    budget (1) is the profile's own section; without compute sizing a smaller budget trains the same
    model for 1/`divisor` of its steps."""
    base = getattr(cfg, which)
    if divisor == 1:
        return base
    if cfg.compute.minutes_per_run <= 0:
        steps = max(1, base.max_steps // divisor)
        return dataclasses.replace(base, max_steps=steps, warmup_steps=min(base.warmup_steps, steps),
                                   eval_interval=max(1, min(base.eval_interval, steps)),
                                   checkpoint_interval=max(1, min(base.checkpoint_interval, steps)))
    return dataclasses.replace(base, **_sized_fields(cfg, which, divisor))


def _sized_fields(cfg: ProfileConfig, which: str, divisor: int) -> dict[str, Any]:
    size = run_size(cfg, divisor)
    steps = size.steps
    if which == "finetune":
        ft = cfg.finetune
        steps = sizing.finetune_steps(size.tokens, cfg.compute.finetune_token_ratio, ft.global_batch_size * ft.seq_len)
    return {"model": size.preset, **sizing.schedule_fields(steps, cfg.compute.warmup_share)}


def apply_compute_sizing(cfg: ProfileConfig) -> None:
    """Set the main budget's `pretrain` and `finetune` sizes from `cfg.compute` (idempotent)."""
    for which in ("pretrain", "finetune"):
        tc = getattr(cfg, which)
        for k, v in _sized_fields(cfg, which, 1).items():
            setattr(tc, k, v)
        tc.__post_init__()
