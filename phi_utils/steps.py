"""The pipeline's steps, as one value computed from the configuration: `step_graph(cfg)`.

This is the policy the run directory (`phi_utils.rundir`, the mechanism: fingerprints, manifests,
the lock) applies: which notebook does each step, which configuration fields it reads and which
steps' outputs it reads. The training steps come from the arm registry (`phi_utils.arms`):
one step per Figure 2.1 arm and seed at the main budget, and per arm, smaller budget and seed for
the scaling figure. A new step is one line here; a new arm is one record in the registry.

    from phi_utils.steps import open_stage, open_run, step_graph
    cfg, rd = open_stage("tiny", run_dir)          # a notebook's set-up: run.json + the profile's graph
    rd = open_run(cfg, run_dir)                    # a script's or a test's
    step_graph(cfg).of_stage("06")                 # ['pretrain_raw_s0', ..., 'pretrain_textbook_div9_s0']
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import ProfileConfig, get_profile
from .rundir import RunDir, RunDirError, StepGraph, StepSpec
from .arms import ARM_BY_KEY, parse_budget_step, scaling_steps, step_name, training_steps

NOT_FINGERPRINTED: frozenset[str] = frozenset({
    # what the run is called, not what it computes
    "name", "description", "time_budget_min",
    # where and how fast a request is served, not what it asks: the model names identify the teacher
    "teacher.base_url", "teacher.api_key_env", "teacher.concurrency", "teacher.requests_per_minute",
    "teacher.tokens_per_minute", "teacher.rating_requests_per_minute", "teacher.rating_tokens_per_minute",
    "teacher.request_timeout_s", "teacher.max_retries", "teacher.price_per_1k_prompt",
    "teacher.price_per_1k_completion", "teacher.budget_usd", "teacher.use_batch_api",
    # where a model runs and how many processes share the work, not what is computed (the data stages'
    # pipelines shard in the candidates' global order: any executor and task count keep the same set)
    "device", "n_gpus", "data",
    "filter.batch_size", "filter.num_proc", "eval.workers", "qualitative.run_workers",
    "pretrain.num_threads", "pretrain.keep_checkpoints", "pretrain.parallel",
    "finetune.num_threads", "finetune.keep_checkpoints", "finetune.parallel",
    # which seeds and smaller budgets exist: each is its own step (seed and divisor are in its name),
    # so adding one trains only the new one; and the label of where throughput was measured
    "pretrain.seeds", "finetune.seeds", "compute.scaling_divisors", "compute.scaling_seeds",
    "compute.throughput_host",
})
"""Fields that change how a step runs but not what it computes: changing them redoes nothing, and any
step may read them."""

_EVAL_MODEL = ("eval.dtype", "eval.timeout_s")
"""What the qualitative stages take from `eval`: how models are loaded and how long a program may run."""


def training_spec(step: str) -> StepSpec:
    """A training step's entry, from its arm's record: the notebook that trains the arm, the arm's
    TrainConfig section and the compute budget, the tokenizer, the step that wrote the arm's dataset and,
    for a finetuned arm, the same budget and seed of the arm it starts from."""
    arm, divisor, seed = parse_budget_step(step)
    deps = ("tokenizer", arm.dataset.split("/")[0])
    if arm.init_from:
        deps += (step_name(ARM_BY_KEY[arm.init_from], seed, divisor),)
    return StepSpec(arm.stage, (arm.config, "compute", "seed"), deps)


def step_graph(cfg: ProfileConfig) -> StepGraph:
    """Every step of `cfg`'s run, in pipeline order."""
    trained = training_steps(cfg)
    budgets = scaling_steps(cfg)
    steps = {
        "corpus": StepSpec("01", ("corpus", "seed")),
        "annotation": StepSpec("01", ("annotation", "teacher", "seed"), ("corpus",)),
        "filtering": StepSpec("02", ("filter", "seed"), ("annotation", "corpus")),
        "textbooks": StepSpec("03", ("textbooks", "teacher", "seed"), ("filtering",)),
        "exercises": StepSpec("04", ("exercises", "teacher", "eval.benchmarks", "eval.mbpp_path", "seed")),
        "tokenizer": StepSpec("05", ("tokenizer",), ("corpus", "textbooks", "exercises")),
        "model_card": StepSpec("05", ("pretrain.model", "pretrain.seq_len", "seed"), ("tokenizer",)),
        **{s: training_spec(s) for s in trained + budgets},
        "eval": StepSpec("08", ("eval", "teacher", "seed"), ("tokenizer", *trained), version=2),  # typed scores.json
        "qualitative": StepSpec("09", ("qualitative", *_EVAL_MODEL, "seed"), tuple(trained)),
        "unconventional": StepSpec("10", ("qualitative", "teacher", *_EVAL_MODEL, "seed"), (*trained, "eval")),
        "contamination": StepSpec("11", ("contamination", "finetune", "eval", "seed"),
                                  ("exercises", "textbooks", "tokenizer", *trained)),
        "scaling": StepSpec("08", ("compute", "eval.loss_problems", "eval.limit", "eval.benchmarks",
                                   "eval.mbpp_path", "eval.dtype", "seed"), ("tokenizer", "eval", *trained, *budgets)),
    }
    return StepGraph(steps, NOT_FINGERPRINTED)


GraphOf = Callable[[ProfileConfig], StepGraph]
"""How a runner or notebook gets a run's graph from its configuration (`step_graph`; a test passes its own)."""


def open_run(cfg: ProfileConfig, run_dir: str | Path | None = None, create: bool = True,
             graph: GraphOf = step_graph) -> RunDir:
    """`RunDir.open` with `cfg`'s step graph: the run directory a script or test does steps in."""
    return RunDir.open(cfg, run_dir, create=create, graph=graph(cfg))


def open_stage(profile: str, run_dir: str | Path | None = None, seed: int | None = None,
               graph: GraphOf = step_graph) -> tuple[ProfileConfig, RunDir]:
    """A notebook's set-up: the run's resolved configuration (run.json in `run_dir`, with every
    override the runner applied) and its RunDir. Without a run.json (a notebook opened on a fresh
    directory) the profile's defaults; `seed`, the papermill parameter, wins over both when it differs
    from the stored one's default of 0."""
    path = Path(run_dir) if run_dir else get_profile(profile).default_run_dir()
    stored = RunDir(path, profile).stored_config() if (path / "run.json").exists() else None
    if stored is not None and stored.name != profile:
        raise RunDirError(f"run directory {path} was written by profile {stored.name!r}, not {profile!r}")
    cfg = stored if stored is not None else get_profile(profile)
    if seed is not None and seed != cfg.seed and (stored is None or seed != 0):
        cfg.seed = seed
    rd = open_run(cfg, path, graph=graph)
    rd.record_config()  # a notebook run by hand with another seed makes that the run's seed
    print(f"profile {cfg.name}: {cfg.description}\nrun directory: {rd.path}"
          + ("" if stored is None else " (configuration from its run.json)"))
    return cfg, rd
