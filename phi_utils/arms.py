"""The Figure 2.1 arms and their run-directory step names, in one place.

An *arm* is one training recipe; each arm is trained once per seed, and each (arm, seed) is one
run-directory step named `<prefix>_s<seed>`:

- `pretrain_raw_s<k>`       (A)  the raw corpus `corpus/dataset` ("The Stack+" analog)
- `pretrain_filtered_s<k>`  (B') the classifier-filtered code alone `textbooks/filtered_code` (the code
                              in CodeTextbook, topped up to its token count)
- `pretrain_textbook_s<k>`  (B)  CodeTextbook `textbooks/code_textbook` (filtered code + synthetic textbooks)
- `finetune_s<k>`           (C)  B of the same seed finetuned on CodeExercises `exercises/code_exercises`

A, B' and B share `cfg.pretrain` (same model size, same token budget), so B'-A isolates the filter and
B-B' the textbooks. The seeds are `cfg.pretrain.seeds` and `cfg.finetune.seeds` (a subset: C of seed k
starts from B of seed k). Which dataset an arm reads is the `dataset` field of its record: swapping a
dataset (e.g. a differently built CodeTextbook) is a change of that string only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import ProfileConfig, TrainConfig, sized_train_config


@dataclass(frozen=True)
class Arm:
    """One Figure 2.1 training recipe."""

    key: str
    """Short name: `raw`, `filtered`, `textbook`, `finetune`."""
    letter: str
    """The arm's letter in the notebooks and figures: A, B', B, C."""
    prefix: str
    """Step-name prefix; the step of seed k is `<prefix>_s<k>`."""
    label: str
    """Legend label."""
    dataset: str
    """Input dataset (a `datasets` directory), relative to the run directory; its first part is the
    step that writes it."""
    what: str
    """What the dataset is (error messages, tables)."""
    config: str
    """The ProfileConfig attribute with its TrainConfig: `pretrain` or `finetune`."""
    stage: str
    """The notebook that trains it (`06` pretraining, `07` finetuning)."""
    exercises: bool = False
    """The dataset has `prompt`/`solution` columns (packed as exercises)."""
    init_from: str | None = None
    """Key of the arm whose same-seed final model this arm starts from (None = random init)."""
    in_paper: bool = True
    """Whether the paper's Figure 2.1 has it (B', the filter alone, is this reproduction's addition)."""


ARMS: tuple[Arm, ...] = (
    Arm("raw", "A", "pretrain_raw", "A: raw code (The Stack+ analog)", "corpus/dataset",
        "raw corpus (The Stack+ analog, notebook 02's input)", "pretrain", "06"),
    Arm("filtered", "B'", "pretrain_filtered", "B': filtered code alone", "textbooks/filtered_code",
        "classifier-filtered code alone, CodeTextbook's token count (notebook 03)", "pretrain", "06", in_paper=False),
    Arm("textbook", "B", "pretrain_textbook", "B: CodeTextbook (phi-1-base analog)", "textbooks/code_textbook",
        "CodeTextbook: filtered code + synthetic textbooks (notebook 03)", "pretrain", "06"),
    Arm("finetune", "C", "finetune", "C: CodeTextbook -> CodeExercises (phi-1 analog)", "exercises/code_exercises",
        "CodeExercises (notebook 04)", "finetune", "07", exercises=True, init_from="textbook"),
)
ARM_BY_KEY: dict[str, Arm] = {a.key: a for a in ARMS}
PRETRAIN_ARMS: tuple[str, ...] = tuple(a.key for a in ARMS if a.config == "pretrain")
FINETUNE_ARMS: tuple[str, ...] = tuple(a.key for a in ARMS if a.config == "finetune")
PAPER_ARMS: tuple[str, ...] = tuple(a.key for a in ARMS if a.in_paper)
"""The arms of the paper's Figure 2.1 (A, B, C): the models notebooks 09 and 10 compare."""

COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("filtered", "raw", "B' - A: the filter's effect"),
    ("textbook", "filtered", "B - B': the synthetic textbooks' effect"),
    ("textbook", "raw", "B - A: CodeTextbook vs raw code (the paper's comparison)"),
    ("finetune", "textbook", "C - B: finetuning on CodeExercises"),
)
"""The paired differences reported (first arm minus second), over the same problems."""

_STEP_RE = re.compile(r"^(?P<prefix>[a-z_]+?)(?:_div(?P<div>\d+))?_s(?P<seed>\d+)$")


def step_name(arm: str | Arm, seed: int, divisor: int = 1) -> str:
    """The run-directory step of `arm` trained with `seed` at the budget 1/`divisor`, e.g.
    `pretrain_raw_s0` (the main budget) or `pretrain_raw_div16_s0` (1/16 of it)."""
    a = arm if isinstance(arm, Arm) else ARM_BY_KEY[arm]
    return f"{a.prefix}_s{int(seed)}" if divisor == 1 else f"{a.prefix}_div{int(divisor)}_s{int(seed)}"


def parse_budget_step(step: str) -> tuple[Arm, int, int]:
    """(arm, budget divisor, seed) of a training step name; one clear error for anything else."""
    m = _STEP_RE.match(step)
    if m:
        for a in ARMS:
            if a.prefix == m.group("prefix"):
                return a, int(m.group("div") or 1), int(m.group("seed"))
    known = ", ".join(f"{a.prefix}[_div<d>]_s<seed>" for a in ARMS)
    raise ValueError(f"unknown training step {step!r}; training steps are {known}")


def parse_step(step: str) -> tuple[Arm, int]:
    """(arm, seed) of a training step name (any budget); one clear error for anything else."""
    arm, _, seed = parse_budget_step(step)
    return arm, seed


def budget_of(step: str) -> int:
    """The budget divisor of a training step (1 = the main budget)."""
    return parse_budget_step(step)[1]


def train_config(cfg: ProfileConfig, arm: str | Arm, divisor: int = 1) -> TrainConfig:
    """The TrainConfig `arm` is trained with at the budget 1/`divisor` (compute sizing, `phi_utils.sizing`)."""
    a = arm if isinstance(arm, Arm) else ARM_BY_KEY[arm]
    return sized_train_config(cfg, a.config, divisor)


def step_train_config(cfg: ProfileConfig, step: str) -> TrainConfig:
    """The TrainConfig of one training step (its arm and budget)."""
    arm, div, _ = parse_budget_step(step)
    return train_config(cfg, arm, div)


def seeds(cfg: ProfileConfig, arm: str | Arm) -> list[int]:
    """The seeds `arm` is trained with in this profile."""
    return list(train_config(cfg, arm).seeds)


def arm_steps(cfg: ProfileConfig, arm: str | Arm) -> list[str]:
    """Every step of one arm, in seed order."""
    return [step_name(arm, s) for s in seeds(cfg, arm)]


def training_steps(cfg: ProfileConfig, arms: tuple[str, ...] | None = None) -> list[str]:
    """Every training step of the profile (all arms x their seeds), pretraining before finetuning."""
    return [s for a in (arms or tuple(x.key for x in ARMS)) for s in arm_steps(cfg, a)]


def init_step(step: str) -> str | None:
    """The step whose final model `step` starts from (C of seed k: B of seed k, same budget), else None."""
    arm, div, seed = parse_budget_step(step)
    return step_name(arm.init_from, seed, div) if arm.init_from else None


def scaling_steps(cfg: ProfileConfig, arms: tuple[str, ...] | None = None) -> list[str]:
    """The smaller-budget steps of the scaling figure: every arm at each `compute.scaling_divisors`
    budget for each `compute.scaling_seeds` seed, pretraining before finetuning."""
    keys = arms or tuple(x.key for x in ARMS)
    return [step_name(a, s, d) for a in keys for d in cfg.compute.scaling_divisors for s in cfg.compute.scaling_seeds]


def budget_divisors(cfg: ProfileConfig) -> list[int]:
    """Every training budget of the profile as divisors of the main one, largest budget first."""
    return [1] + sorted(cfg.compute.scaling_divisors)


def representative_steps(cfg: ProfileConfig, arms: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(step, label) of the first seed of every arm (or of `arms`): the one model per arm that notebooks
    09-11 use."""
    return [(step_name(a, seeds(cfg, a)[0]), a.label) for a in ARMS
            if (arms is None or a.key in arms) and seeds(cfg, a)]


def check_seeds(cfg: ProfileConfig) -> None:
    """Finetuning seeds must be pretraining seeds (C of seed k starts from B of seed k)."""
    missing = sorted(set(cfg.finetune.seeds) - set(cfg.pretrain.seeds))
    if missing:
        raise ValueError(f"finetune.seeds {missing} are not in pretrain.seeds {list(cfg.pretrain.seeds)}: "
                         "C of seed k is finetuned from B of seed k")
