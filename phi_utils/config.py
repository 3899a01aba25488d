"""Every knob of the pipeline, as dataclasses, and the three profiles.

Profiles (`smoke`, `tiny`, `paper`) differ only in sizes and endpoints, never in code path.
Each field has a one-line docstring (the string literal right under it, as in litgpt);
`__post_init__` checks values so a bad profile fails at load time, not an hour in.

Each pipeline stage owns one dataclass below. `ProfileConfig` bundles them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import sizing

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (where `notebooks/`, `figures/` and `runs/` live)."""

SHARED_DATA = Path(os.environ.get("PHI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@contextlib.contextmanager
def environ_restored(keys: Iterable[str]) -> Iterator[None]:
    """Inside: change `keys` in `os.environ` freely; on exit each is back as it was (or unset again)."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
"""Optional offline copies of MBPP, EvalPlus and open synthetic datasets (never copied into the repo)."""


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


# --------------------------------------------------------------------------- teacher (issue 3)
@dataclass
class TeacherConfig:
    backend: str = "local"
    """`local` (llama-cpp-python server started on demand) or `openai` (any OpenAI-compatible endpoint)."""
    local_model: str = "qwen2.5-coder-1.5b"
    """For `local`: a known model name (`smollm2-135m`, `qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b`) or a GGUF path."""
    base_url: str | None = None
    """For `openai`: the endpoint URL (None = OpenAI's own)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (`openai` backend)."""
    model: str = "local"
    """Model name sent to the endpoint (e.g. `gpt-3.5-turbo`, `gpt-4-0613`); checked against the endpoint's model list."""
    rating_model: str | None = None
    """Model for ratings and grading (GPT-4's role); None = `model`."""
    temperature: float = 0.7
    """Sampling temperature for generation (ratings always use 0)."""
    top_p: float = 0.95
    """Nucleus sampling for generation."""
    max_tokens: int = 512
    """Default completion length cap."""
    seed: int = 0
    """Base seed sent with each request (the sample index is added)."""
    concurrency: int = 1
    """Requests in flight at once (llama-server decodes up to `parallel` of them together; llama-cpp-python's
    server serialises them; OpenAI benefits from 8-32). Results do not depend on it (same seeds, same outputs)."""
    requests_per_minute: float = 0.0
    """Client-side request rate limit; 0 = unlimited."""
    tokens_per_minute: float = 0.0
    """Client-side token rate limit; 0 = unlimited."""
    rating_requests_per_minute: float = 0.0
    """Request limit of `rating_model` when it differs from `model`: with this or the next one set it
    gets its own limiter (0 = unlimited there); with both 0 it shares `model`'s limits."""
    rating_tokens_per_minute: float = 0.0
    """Token limit of `rating_model` when it differs from `model` (see `rating_requests_per_minute`)."""
    price_per_1k_prompt: float = 0.0
    """USD per 1k prompt tokens, for the cost estimate and budget."""
    price_per_1k_completion: float = 0.0
    """USD per 1k completion tokens."""
    budget_usd: float = 0.0
    """Stop a stage cleanly once spent cost reaches this; 0 = no limit."""
    request_timeout_s: float = 300.0
    """Per-request timeout before a retry."""
    max_retries: int = 6
    """Retries on 429/5xx/timeouts/connection resets (exponential backoff with jitter)."""
    max_error_rate: float = 0.5
    """A batch of requests (at least 10 sent) in which more than this share still failed after retries
    stops its stage with an error (successes stay cached; a re-run sends only the failed ones). 1 = never."""
    n_ctx: int = 4096
    """Context window per request of the local server (llama-cpp-python keeps n_ctx x vocab float logits: 2.5 GB
    at 4096 for Qwen; llama-server allocates `parallel` x n_ctx tokens of KV cache, ~28 kB/token for the 1.5B)."""
    engine: str = "auto"
    """Local server program: `auto` (llama.cpp's `llama-server` when `scripts/build_teacher_engine.sh` built it,
    else llama-cpp-python's server with one warning), `llama-server` (required) or `llama-cpp-python`."""
    parallel: int = 1
    """llama-server slots decoded together by continuous batching (set it to `concurrency`)."""
    threads: int = 0
    """llama-server decoding threads (0 = its default, all cores)."""
    threads_batch: int = 0
    """llama-server prompt-processing threads (0 = its default)."""
    draft_model: str | None = None
    """llama-server speculative decoding: a draft model sharing the teacher's vocabulary (a known name such as
    `qwen2.5-coder-0.5b`, or a GGUF path); None = off. On 2 CPU cores it is slower: the 0.5B drafting for the
    1.5B had 74% of its tokens accepted and still decoded at 0.5-0.6x the plain rate (README benchmarks)."""
    draft_max: int = 8
    """Tokens the draft proposes per step."""
    use_batch_api: bool = False
    """Use OpenAI's Batch API (half price, asynchronous) for paper-scale jobs."""

    def __post_init__(self) -> None:
        _check(self.backend in ("local", "openai"), f"teacher.backend must be 'local' or 'openai', got {self.backend!r}")
        _check(0.0 <= self.temperature <= 2.0, "teacher.temperature must be in [0, 2]")
        _check(0.0 <= self.max_error_rate <= 1.0, "teacher.max_error_rate must be in [0, 1]")
        _check(0.0 < self.top_p <= 1.0, "teacher.top_p must be in (0, 1]")
        _check(self.max_tokens > 0, "teacher.max_tokens must be positive")
        _check(self.concurrency >= 1, "teacher.concurrency must be >= 1")
        _check(self.engine in ("auto", "llama-server", "llama-cpp-python"),
               f"teacher.engine must be 'auto', 'llama-server' or 'llama-cpp-python', got {self.engine!r}")
        _check(self.parallel >= 1, "teacher.parallel must be >= 1")
        _check(self.threads >= 0 and self.threads_batch >= 0, "teacher.threads/threads_batch must be >= 0")
        _check(self.draft_max >= 1, "teacher.draft_max must be >= 1")
        _check(self.budget_usd >= 0, "teacher.budget_usd must be >= 0")


# --------------------------------------------------------------------------- corpus + filtering (issue 7)
@dataclass
class CorpusConfig:
    source: str = "local"
    """`local` (Python files on this machine) or `hub` (The Stack Python dedup + StackOverflow, streamed)."""
    extra_dirs: list[str] = field(default_factory=list)
    """Extra directories of Python files to include (`local`)."""
    max_files: int = 2000
    """Cap on files kept after dedup (0 = all)."""
    max_file_bytes: int = 100_000
    """Files larger than this are skipped as huge."""
    near_dup_threshold: float = 0.85
    """MinHash-LSH Jaccard threshold for near-duplicate removal."""
    hub_stack_dataset: str = "bigcode/the-stack-dedup"
    """Hub name of The Stack (Python subset via `data_dir`)."""
    hub_stackoverflow_dataset: str = "mikex86/stackoverflow-posts"
    """Hub name of a StackOverflow dataset."""
    hub_stackoverflow_share: float = 0.1
    """Share of hub samples drawn from StackOverflow (python-tagged questions); not reported by the paper."""
    min_chars: int = 64
    """Files with fewer non-blank characters are skipped as empty."""
    examine_factor: float = 1.5
    """With `max_files` set, the first `max_files * examine_factor` candidates of the visiting order are
    cleaned and deduplicated together, then the first `max_files` survivors kept (doubled and redone
    if too few survive; the tiny run keeps ~80% of what it examines)."""

    def __post_init__(self) -> None:
        _check(self.examine_factor >= 1.0, "corpus.examine_factor must be >= 1")
        _check(self.source in ("local", "hub"), f"corpus.source must be 'local' or 'hub', got {self.source!r}")
        _check(0.0 < self.near_dup_threshold <= 1.0, "corpus.near_dup_threshold must be in (0, 1]")
        _check(self.max_files >= 0, "corpus.max_files must be >= 0")
        _check(0.0 <= self.hub_stackoverflow_share <= 1.0, "corpus.hub_stackoverflow_share must be in [0, 1]")
        _check(self.max_file_bytes > 0, "corpus.max_file_bytes must be positive")


@dataclass
class AnnotationConfig:
    n_samples: int = 200
    """Corpus samples rated by the teacher (the paper: ~100k)."""
    reliability_subset: int = 30
    """Samples rated twice, independently, to measure agreement."""
    max_prompt_chars: int = 3000
    """Long files are cut to this many characters before the teacher sees them."""
    prompt_version: str = "v2"
    """Version of the rating prompt (`phi_utils.filtering.annotate.PROMPT_VERSION`; recorded with every label)."""
    reason_tokens: int = 24
    """Completion cap per rating: the score digit plus a short reason (each token ~50 ms on the 1.5B)."""
    card_snippets: int = 12
    """Labelled good/bad snippets of the teacher card rated with the annotation prompt (0 = skip)."""

    def __post_init__(self) -> None:
        _check(self.n_samples > 0, "annotation.n_samples must be positive")
        _check(0 <= self.reliability_subset <= self.n_samples, "annotation.reliability_subset must be in [0, n_samples]")
        _check(self.max_prompt_chars > 0, "annotation.max_prompt_chars must be positive")
        _check(self.reason_tokens >= 1, "annotation.reason_tokens must be >= 1 (the score digit)")
        _check(self.card_snippets >= 0, "annotation.card_snippets must be >= 0")


@dataclass
class FilterConfig:
    embedder: str = "minilm"
    """`minilm` (offline all-MiniLM-L6-v2), `codegen` (CodeGen-350M-mono, hub) or `own` (this run's model)."""
    n_estimators: int = 200
    """Random-forest trees."""
    keep_fraction: float = 0.5
    """Fraction of the corpus kept by the filter (sets the threshold)."""
    test_fraction: float = 0.25
    """Held-out share of the annotations for evaluating the classifier."""
    batch_size: int = 32
    """Embedding batch size."""
    num_proc: int = 1
    """Processes for embedding/scoring (`datasets` num_proc)."""
    label_threshold: float | None = None
    """Annotation score (0-9) at or above which a file counts as educational; None = the median score."""

    def __post_init__(self) -> None:
        _check(self.embedder in ("minilm", "codegen", "own"), f"filter.embedder unknown: {self.embedder!r}")
        _check(0.0 < self.keep_fraction <= 1.0, "filter.keep_fraction must be in (0, 1]")
        _check(0.0 < self.test_fraction < 1.0, "filter.test_fraction must be in (0, 1)")
        _check(self.n_estimators >= 1 and self.batch_size >= 1 and self.num_proc >= 1,
               "filter.n_estimators, filter.batch_size and filter.num_proc must be >= 1")
        _check(self.label_threshold is None or 0.0 <= self.label_threshold <= 9.0,
               "filter.label_threshold must be None or in [0, 9]")


# --------------------------------------------------------------------------- synthetic data (issue 8)
@dataclass
class TextbookConfig:
    source: str = "generate"
    """`generate` with the teacher, or a hub dataset name / local path of an open synthetic dataset."""
    n_passages: int = 30
    """Passages to generate (the paper: <1B tokens)."""
    max_tokens: int = 450
    """Completion cap per passage."""
    n_random_words: int = 3
    """Random words injected per prompt (TinyStories-style diversity)."""
    ablation_passages: int = 8
    """Passages generated without randomisation for the diversity ablation (0 = skip)."""
    topup_source: str = ""
    """Open dataset (hub name or path; relative paths resolve under SHARED_DATA) added to the generated passages; "" = none."""
    topup_max: int = 0
    """Most passages taken from `topup_source` (0 = none)."""
    near_dup_threshold: float = 0.7
    """MinHash Jaccard (word 5-grams) at or above which a passage is a near-duplicate and removed."""
    run_timeout_s: float = 10.0
    """Sandbox time limit for running one passage's code blocks."""
    max_passage_chars: int = 6000
    """Open-dataset passages longer than this are cut at a section boundary."""
    topup_require_code: bool = True
    """Take only top-up passages holding a ```python block; False also admits prose sections (kept
    without execution, labelled by origin), as most of the open textbooks are prose."""
    synthetic_share: float = 1 / 7
    """CodeTextbook's filtered code is subsampled so the passages hold at least this share of its
    tokens (the paper: <1B synthetic of ~7B); 0 = keep all filtered code."""
    min_filtered_tokens: int = 0
    """The subsample keeps at least this many filtered-code tokens (so a run without open top-ups
    still has data to train on; its share is then lower and reported)."""

    def __post_init__(self) -> None:
        _check(self.n_passages >= 0, "textbooks.n_passages must be >= 0")
        _check(self.max_tokens > 0, "textbooks.max_tokens must be positive")
        _check(self.n_random_words >= 0, "textbooks.n_random_words must be >= 0")
        _check(self.ablation_passages >= 0, "textbooks.ablation_passages must be >= 0")
        _check(self.topup_max >= 0, "textbooks.topup_max must be >= 0")
        _check(0.0 < self.near_dup_threshold <= 1.0, "textbooks.near_dup_threshold must be in (0, 1]")
        _check(self.run_timeout_s > 0, "textbooks.run_timeout_s must be positive")
        _check(0.0 <= self.synthetic_share < 1.0, "textbooks.synthetic_share must be in [0, 1)")
        _check(self.min_filtered_tokens >= 0, "textbooks.min_filtered_tokens must be >= 0")


@dataclass
class ExerciseConfig:
    source: str = "generate"
    """`generate` with the teacher, or a hub dataset name / local path (e.g. `jinaai/code_exercises`)."""
    n_exercises: int = 40
    """Exercises to generate (the paper: ~880k)."""
    max_tokens: int = 400
    """Completion cap per exercise."""
    decontaminate: bool = True
    """Exclude exercises that share a 13-gram with, or embed very close to, HumanEval/MBPP."""
    ngram: int = 13
    """n for the n-gram decontamination check."""
    embedding_threshold: float = 0.9
    """MiniLM cosine similarity to a HumanEval/MBPP docstring at or above which an exercise is flagged."""
    topup_source: str = ""
    """Open exercise dataset (hub name or path; relative paths resolve under SHARED_DATA) added to the generated ones; "" = none."""
    topup_max: int = 0
    """Most exercises taken from `topup_source` (0 = none)."""
    near_dup_threshold: float = 0.8
    """MinHash Jaccard (word 5-grams) at or above which an exercise is a near-duplicate and removed."""
    run_timeout_s: float = 5.0
    """Sandbox time limit for one solution + its tests."""

    def __post_init__(self) -> None:
        _check(self.n_exercises >= 0, "exercises.n_exercises must be >= 0")
        _check(self.max_tokens > 0, "exercises.max_tokens must be positive")
        _check(self.ngram >= 1, "exercises.ngram must be >= 1")
        _check(0.0 < self.embedding_threshold <= 1.0, "exercises.embedding_threshold must be in (0, 1]")
        _check(self.topup_max >= 0, "exercises.topup_max must be >= 0")
        _check(0.0 < self.near_dup_threshold <= 1.0, "exercises.near_dup_threshold must be in (0, 1]")
        _check(self.run_timeout_s > 0, "exercises.run_timeout_s must be positive")


# --------------------------------------------------------------------------- model + training (issues 4, 6)
@dataclass
class TokenizerConfig:
    name_or_path: str | None = None
    """Hub name or local path of a pretrained tokenizer (paper: `Salesforce/codegen-350M-mono`); None = train one."""
    vocab_size: int = 4096
    """Vocabulary size of the byte-level BPE trained offline."""
    train_chars: int = 20_000_000
    """Characters of training text used to train the BPE."""

    def __post_init__(self) -> None:
        _check(self.vocab_size >= 259, "tokenizer.vocab_size must be >= 259 (bytes + specials)")


@dataclass
class TrainConfig:
    model: str = "tiny"
    """Model preset name (`phi-1`, `phi-1-small`, `tiny`, `smoke`); see `phi_utils.model`."""
    max_steps: int = 200
    """Optimizer steps."""
    global_batch_size: int = 16
    """Sequences per optimizer step across all devices (gradient accumulation fills the rest)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward on one device."""
    seq_len: int = 256
    """Tokens per training sequence."""
    lr: float = 1e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.0
    """Final LR as a fraction of the peak (linear decay target)."""
    warmup_steps: int = 20
    """Linear warmup steps."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (not reported by the paper)."""
    grad_clip: float = 1.0
    """Gradient-norm clip; 0 disables (not reported by the paper)."""
    dropout: float = 0.1
    """Attention and residual dropout during training."""
    precision: str = "fp32"
    """`fp32`, `bf16` or `fp16` (autocast; fp16 uses loss scaling)."""
    eval_interval: int = 50
    """Steps between validation-loss evaluations."""
    eval_batches: int = 4
    """Batches per validation evaluation."""
    checkpoint_interval: int = 100
    """Steps between checkpoints."""
    val_fraction: float = 0.05
    """Share of documents held out (packed separately) for the validation loss."""
    loss_on_solution_only: bool = False
    """Finetuning: loss only on solution tokens (the paper does not say it masks prompts, so False); recorded."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    keep_checkpoints: int = 2
    """Newest step checkpoints kept on disk (`<step>/final` is always kept)."""
    num_threads: int = 0
    """CPU threads torch uses while training (0 = torch's default; 1 avoids OpenMP stalls on a busy shared CPU)."""
    parallel: str = "ddp"
    """With several processes: `ddp` (replicated weights) or `fsdp` (sharded weights, gradients and
    optimizer state; the paper profile's 1.3B model). Notebooks launch one process per visible GPU,
    up to the profile's `n_gpus`."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in backward: less memory for long sequences, ~30% more compute."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds: one model per Figure 2.1 arm and seed (model init, data order, dropout), steps
    `<arm>_s<seed>` (`phi_utils.train.arms`). Finetuning seeds must be pretraining seeds (C of seed k
    starts from B of seed k). Several seeds let notebook 08's intervals carry seed-to-seed spread."""

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        _check(self.max_steps > 0, "train.max_steps must be positive")
        _check(self.global_batch_size % self.micro_batch_size == 0, "train.global_batch_size must be a multiple of micro_batch_size")
        _check(self.precision in ("fp32", "bf16", "fp16"), f"train.precision unknown: {self.precision!r}")
        _check(0 <= self.warmup_steps <= self.max_steps, "train.warmup_steps must be in [0, max_steps]")
        _check(0.0 <= self.dropout < 1.0, "train.dropout must be in [0, 1)")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
        _check(self.parallel in ("ddp", "fsdp"), f"train.parallel must be 'ddp' or 'fsdp', got {self.parallel!r}")
        _check(self.num_threads >= 0, "train.num_threads must be >= 0")
        _check(self.eval_interval > 0 and self.checkpoint_interval > 0, "train.eval_interval and checkpoint_interval must be positive")
        self.seeds = [int(x) for x in self.seeds]
        _check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
               "train.seeds must be distinct non-negative integers (at least one)")


# --------------------------------------------------------------------------- compute sizing
@dataclass
class ComputeConfig:
    """How big each training run is, from a training-time budget and measured throughput
    (`phi_utils.sizing`). With `minutes_per_run` > 0 the rule sets `pretrain.model`, `pretrain.max_steps`
    (and its warmup, validation and checkpoint intervals) and the same fields of `finetune`; setting
    those by hand then is an error. 0 leaves them as the profile gives them (the paper profile)."""

    minutes_per_run: float = 0.0
    """Training minutes of one main-budget pretraining run at the reference throughput (0 = no sizing)."""
    tokens_per_param: float = 20.0
    """Floor on training tokens per counted parameter (Chinchilla's D ~ 20 N, Hoffmann et al. 2022)."""
    count_embeddings: bool = False
    """Count the embedding and LM head in N (False: non-embedding parameters, as Kaplan et al. 2020)."""
    presets: list[str] = field(default_factory=lambda: ["micro", "nano", "pico", "femto"])
    """Candidate model presets (`phi_utils.sizing.MODEL_PRESETS`); the rule picks the largest that meets the floor."""
    tokens_per_s: list[float] = field(default_factory=list)
    """Measured training throughput of each preset in `presets` (same order) at the profile's batch and
    sequence length, on the reference host (`throughput_host`)."""
    throughput_host: str = ""
    """Where and how `tokens_per_s` was measured (host, threads, commit); shown by the plan."""
    scaling_divisors: list[int] = field(default_factory=list)
    """Smaller budgets for the scaling figure: each arm also trained at 1/d of `minutes_per_run` (same
    rule), as steps `<arm>_div<d>_s<seed>`; empty = none."""
    scaling_seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds of the smaller budgets (a subset of `pretrain.seeds`)."""
    finetune_token_ratio: float = 0.0625
    """Finetuning tokens as a share of the same model's pretraining tokens (paper: 3.1B / 50B ~ 6%)."""
    warmup_share: float = 0.02
    """Warmup steps as a share of a sized run's steps (paper: 750 of 36k pretraining steps)."""

    def __post_init__(self) -> None:
        _check(self.minutes_per_run >= 0 and self.tokens_per_param > 0, "compute.minutes_per_run must be >= 0, "
               "compute.tokens_per_param > 0")
        self.scaling_divisors = [int(d) for d in self.scaling_divisors]
        _check(all(d > 1 for d in self.scaling_divisors) and len(set(self.scaling_divisors)) == len(self.scaling_divisors),
               "compute.scaling_divisors must be distinct integers > 1")
        _check(0 < self.finetune_token_ratio <= 1 and 0 <= self.warmup_share < 1,
               "compute.finetune_token_ratio must be in (0, 1], compute.warmup_share in [0, 1)")
        unknown = [p for p in self.presets if p not in sizing.MODEL_PRESETS]
        _check(not unknown, f"compute.presets: unknown preset(s) {unknown}; known: {', '.join(sizing.MODEL_PRESETS)}")
        if self.minutes_per_run > 0:
            _check(len(self.tokens_per_s) == len(self.presets) and all(t > 0 for t in self.tokens_per_s),
                   "compute.tokens_per_s needs one positive throughput per entry of compute.presets")


SIZED_FIELDS = ("model", "max_steps", "warmup_steps", "eval_interval", "checkpoint_interval")
"""Fields of `pretrain` and `finetune` that compute sizing sets (when `compute.minutes_per_run` > 0)."""


# --------------------------------------------------------------------------- evaluation (issue 5)
@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    """Benchmarks to run: `humaneval`, `mbpp`, `humaneval+`, `mbpp+`."""
    limit: int = 0
    """Evaluate only the first N problems per benchmark (0 = all)."""
    n_samples: int = 10
    """Sampled completions per problem on `sample_benchmarks` for the unbiased pass@1 / pass@10
    (0 = greedy only). Greedy pass@1 is always measured on every benchmark."""
    temperature: float = 0.8
    """Sampling temperature of the sampled completions (Codex / phi-1 papers: 0.8 for pass@10)."""
    top_p: float = 0.95
    """Nucleus sampling of the sampled completions."""
    sample_benchmarks: list[str] = field(default_factory=lambda: ["humaneval"])
    """Benchmarks that get `n_samples` sampled completions per problem besides the greedy one."""
    batch_size: int = 32
    """Prompts (x samples) per generation batch."""
    sample_seeds: int = 0
    """Seeds per arm (the first ones) whose models also get the sampled completions (0 = every seed);
    greedy pass@1 and the loss are measured for every seed."""
    sample_arms: list[str] = field(default_factory=list)
    """Arms (`phi_utils.train.arms` keys: raw, filtered, textbook, finetune) whose models get the sampled
    completions (empty = every arm)."""
    max_new_tokens: int = 256
    """Generation cap per completion."""
    timeout_s: float = 5.0
    """Wall-time limit per program."""
    workers: int = 2
    """Parallel sandboxed programs."""
    teacher_limit: int = 20
    """Problems on which the teacher itself is evaluated in this run (0 = skip); unused when
    `teacher_reference` holds a valid score."""
    teacher_reference: str = ""
    """Directory written by `python -m phi_utils evaluate` for the teacher on all problems (its
    `summary.json`; relative paths from the repository root). When its model hash is the teacher's,
    Table 1's teacher row is read from it (with its date and commit) instead of generated here."""
    mbpp_path: str | None = None
    """Local MBPP copy (None = hub `mbpp`, then `shared/data/mbpp`)."""
    teacher_max_tokens: int = 384
    """Completion cap for the teacher's answers (chat replies are longer than bare code)."""
    loss_problems: int = 0
    """Problems per benchmark whose canonical-solution loss is measured (0 = all: 164 HumanEval, 500 MBPP)."""
    dtype: str = "auto"
    """Precision of every inference pass on our checkpoints (notebooks 08-11): `auto` = bfloat16 on
    CUDA, float32 on CPU; or `float32`, `bfloat16`, `float16`. The device is the profile's `device`.
    bfloat16 on a CPU is faster only with AVX512-BF16/AMX and can change greedy tokens."""

    def __post_init__(self) -> None:
        known = {"humaneval", "mbpp", "humaneval+", "mbpp+"}
        _check(self.limit >= 0 and self.teacher_limit >= 0 and self.loss_problems >= 0,
               "eval.limit, eval.teacher_limit and eval.loss_problems must be >= 0")
        _check(self.max_new_tokens > 0 and self.teacher_max_tokens > 0, "eval.max_new_tokens/teacher_max_tokens must be positive")
        _check(0.0 <= self.temperature <= 2.0 and 0.0 < self.top_p <= 1.0, "eval.temperature in [0, 2], eval.top_p in (0, 1]")
        _check(self.workers >= 1, "eval.workers must be >= 1")
        _check(set(self.benchmarks) <= known, f"eval.benchmarks must be within {sorted(known)}")
        _check(self.n_samples >= 0, "eval.n_samples must be >= 0")
        _check(set(self.sample_benchmarks) <= set(self.benchmarks), "eval.sample_benchmarks must be within eval.benchmarks")
        _check(self.batch_size >= 1 and self.sample_seeds >= 0, "eval.batch_size must be >= 1, eval.sample_seeds >= 0")
        _check(set(self.sample_arms) <= {"raw", "filtered", "textbook", "finetune"},
               "eval.sample_arms must be within raw, filtered, textbook, finetune")
        _check(self.timeout_s > 0, "eval.timeout_s must be positive")
        _check(self.dtype in ("auto", "float32", "bfloat16", "float16"),
               f"eval.dtype must be auto/float32/bfloat16/float16, got {self.dtype!r}")


# --------------------------------------------------------------------------- qualitative + unconventional (issue 9)
@dataclass
class QualitativeConfig:
    max_new_tokens: int = 256
    """Generation cap for the §3 prompts (notebook 09)."""
    temperature: float = 0.0
    """Decoding temperature for the §3 prompts and the unconventional problems (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling when temperature > 0."""
    prompts: list[str] = field(default_factory=list)
    """Names of the §3 prompts to run (empty = all; see `phi_utils.qualitative.prompts`)."""
    run_timeout_s: float = 10.0
    """Sandbox time limit for event-loop programs (pygame, Tkinter): cut here, they count as running."""
    script_timeout_s: float = 30.0
    """Sandbox time limit for scripts (plain Python, torch, matplotlib/Agg): not finishing in time is a hang."""
    run_workers: int = 2
    """Programs run in parallel in the sandbox."""
    batch_size: int = 8
    """Prompts per generation batch."""
    n_problems: int = 0
    """Unconventional problems evaluated (0 = all)."""
    problem_max_new_tokens: int = 256
    """Generation cap for a solution body to an unconventional problem."""
    grade_with_teacher: bool = True
    """Grade unconventional solutions 0-10 with the teacher (GPT-4's role)."""
    n_graded: int = 0
    """Problems whose model solutions the teacher grades, per model (0 = all evaluated problems)."""
    n_reliability: int = 0
    """Problems whose reference and broken variants the teacher grades for grader reliability (0 = all)."""
    broken_per_problem: int = 1
    """Broken variants graded per reliability problem (0 = all of them)."""
    grade_max_tokens: int = 96
    """Completion cap of one grade (short verbal evaluation + grade)."""
    grade_method: str = "auto"
    """`verbal`: the paper's verbal evaluation followed by "Grade: N/10" (parsed); `logprobs`: the grade
    digit first, read as the probability-weighted mean over 0-9 and rescaled to 0-10 (a small local
    grader only carries signal there); `auto`: logprobs on a local teacher, verbal on an API."""

    def __post_init__(self) -> None:
        _check(self.grade_method in ("auto", "verbal", "logprobs"),
               f"qualitative.grade_method must be auto/verbal/logprobs, got {self.grade_method!r}")
        _check(self.max_new_tokens > 0, "qualitative.max_new_tokens must be positive")
        _check(self.problem_max_new_tokens > 0, "qualitative.problem_max_new_tokens must be positive")
        _check(0.0 <= self.temperature <= 2.0, "qualitative.temperature must be in [0, 2]")
        _check(0.0 < self.top_p <= 1.0, "qualitative.top_p must be in (0, 1]")
        _check(self.run_timeout_s > 0 and self.script_timeout_s > 0, "qualitative.run_timeout_s and script_timeout_s must be positive")
        _check(self.run_workers >= 1 and self.batch_size >= 1, "qualitative.run_workers and batch_size must be >= 1")
        _check(min(self.n_problems, self.n_graded, self.n_reliability, self.broken_per_problem) >= 0,
               "qualitative.n_problems, n_graded, n_reliability and broken_per_problem must be >= 0")
        _check(self.grade_max_tokens > 0, "qualitative.grade_max_tokens must be positive")


# --------------------------------------------------------------------------- contamination (issue 10)
@dataclass
class ContaminationConfig:
    ngram: int = 13
    """Word n-gram length for the overlap check."""
    taus: list[float] = field(default_factory=lambda: [0.95, 0.9, 0.85, 0.8])
    """AST match-rate thresholds for pruning."""
    embedding_threshold: float = 0.5
    """L2 distance (normalised embeddings) below which an exercise counts as similar."""
    combine: str = "or"
    """How AST and embedding criteria combine: `or`, `and`, `ast`, `embedding`."""
    retrain: bool = True
    """Finetune again on each pruned set and evaluate on similar/non-similar HumanEval."""
    retrain_steps: int = 0
    """Finetuning steps per pruned set (0 = as the finetune stage, whose model is the reference; else a control finetuned on all exercises for the same steps is)."""
    retrain_taus: list[float] | None = None
    """The taus whose pruned sets are retrained on (None = all of `taus`); a tau that prunes nothing reuses the finetuned model."""
    eval_limit: int = 0
    """HumanEval problems evaluated for the similar/non-similar split (0 = all 164; else a seeded sample stratified by similarity)."""
    embedder: str = "minilm"
    """`minilm` (offline all-MiniLM-L6-v2), `codegen` (CodeGen-350M-mono, the paper's, hub) or `own` (this run's model)."""
    max_seq_length: int = 256
    """Tokens of each snippet the embedder reads."""
    top_k: int = 5
    """Nearest neighbours listed per HumanEval problem."""
    include_mbpp: bool = True
    """Also check MBPP descriptions in the n-gram overlap."""
    textbook_check: bool = True
    """Beyond the paper: run the n-gram and AST checks against CodeTextbook too."""
    textbook_ast_docs: int = 0
    """CodeTextbook documents whose functions enter that AST check (0 = all; else a seeded sample:
    at paper scale the filtered Stack part alone holds millions of functions)."""
    rerank_exact: bool = True
    """Re-rank each problem's AST shortlist (top_k) by the exact tree edit distance (APTED) when its best match is near the taus."""
    rerank_margin: float = 0.1
    """Re-rank problems whose best AST match rate is at least min(taus) - this margin."""

    def __post_init__(self) -> None:
        _check(all(0.0 < t <= 1.0 for t in self.taus), "contamination.taus must be in (0, 1]")
        _check(self.combine in ("or", "and", "ast", "embedding"), f"contamination.combine unknown: {self.combine!r}")
        _check(self.ngram >= 1, "contamination.ngram must be >= 1")
        _check(0.0 <= self.embedding_threshold <= 2.0, "contamination.embedding_threshold must be in [0, 2] (L2 of unit vectors)")
        _check(self.retrain_steps >= 0, "contamination.retrain_steps must be >= 0")
        _check(self.retrain_taus is None or set(self.retrain_taus) <= set(self.taus),
               "contamination.retrain_taus must be a subset of contamination.taus")
        _check(self.eval_limit >= 0, "contamination.eval_limit must be >= 0")
        _check(self.embedder in ("minilm", "codegen", "own"), f"contamination.embedder unknown: {self.embedder!r}")
        _check(self.top_k >= 1, "contamination.top_k must be >= 1")
        _check(self.textbook_ast_docs >= 0, "contamination.textbook_ast_docs must be >= 0")


# --------------------------------------------------------------------------- data-stage execution (datatrove)
DATA_EXECUTORS = ("local", "slurm", "ray")


@dataclass
class DataConfig:
    """Where the data stages' datatrove pipelines run. None of these fields changes a result: the
    pipelines shard in the candidates' global order, so 1 task and 1,000 give the same kept set."""

    executor: str = "local"
    """`local` (datatrove's LocalPipelineExecutor: processes on this machine), `slurm` (an sbatch job
    array per pipeline stage) or `ray` (tasks on a Ray cluster)."""
    tasks: int = 2
    """Shards of each parallel pipeline stage (datatrove tasks); the merge and cluster stages run as one."""
    workers: int = 2
    """Tasks running at once (-1 = all of them)."""
    slurm_partition: str = ""
    """Slurm partition (`slurm`; required there)."""
    slurm_time: str = "4:00:00"
    """Slurm time limit per task."""
    slurm_cpus_per_task: int = 1
    """CPUs per Slurm task."""
    slurm_mem_per_cpu_gb: int = 4
    """Memory per CPU of a Slurm task, in GB."""
    slurm_qos: str = "normal"
    """Slurm QOS."""
    slurm_venv: str = ""
    """Virtual environment the Slurm tasks activate (default: this interpreter's prefix)."""
    ray_address: str = ""
    """Ray cluster to join (`auto`, `ray://host:10001`); empty starts a local Ray instance."""
    ray_cpus_per_task: int = 1
    """CPUs Ray reserves per task."""

    def __post_init__(self) -> None:
        _check(self.executor in DATA_EXECUTORS, f"data.executor must be one of {', '.join(DATA_EXECUTORS)}, got {self.executor!r}")
        _check(self.tasks >= 1, "data.tasks must be >= 1")
        _check(self.workers == -1 or self.workers >= 1, "data.workers must be >= 1 or -1 (all)")
        _check(self.slurm_cpus_per_task >= 1 and self.ray_cpus_per_task >= 1, "data.*_cpus_per_task must be >= 1")


# --------------------------------------------------------------------------- the profile
@dataclass
class ProfileConfig:
    name: str
    """Profile name (`smoke`, `tiny`, `paper`)."""
    description: str = ""
    """One line shown in the plan."""
    seed: int = 0
    """Global seed (data sampling, model init, teacher seeds)."""
    device: str = "auto"
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
    """Where the data stages' pipelines run (datatrove executors)."""
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
        _check(self.name in PROFILE_NAMES, f"unknown profile {self.name!r}; choose one of {', '.join(PROFILE_NAMES)}")
        _check(self.device in ("auto", "cpu", "cuda"), f"device must be auto/cpu/cuda, got {self.device!r}")
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


def _smoke() -> ProfileConfig:
    return ProfileConfig(
        name="smoke",
        description="CI: the whole pipeline in <= 15 min on 2 CPU cores; SmolLM2-135M teacher (mechanics only).",
        time_budget_min=15,
        teacher=TeacherConfig(local_model="smollm2-135m", max_tokens=128, n_ctx=2048, concurrency=4, parallel=4),
        corpus=CorpusConfig(max_files=300),
        annotation=AnnotationConfig(n_samples=24, reliability_subset=6, max_prompt_chars=1200, card_snippets=4),
        filter=FilterConfig(n_estimators=50),
        textbooks=TextbookConfig(n_passages=3, max_tokens=160, ablation_passages=2,
                                 topup_source="synthetic/library-of-phi-textbooks", topup_max=6,
                                 topup_require_code=False),
        exercises=ExerciseConfig(n_exercises=5, max_tokens=200,
                                 topup_source="synthetic/jina-code-exercises-sample", topup_max=40),
        tokenizer=TokenizerConfig(vocab_size=1024, train_chars=2_000_000),
        pretrain=TrainConfig(model="smoke", max_steps=24, global_batch_size=8, micro_batch_size=8, seq_len=128,
                             warmup_steps=4, eval_interval=6, eval_batches=2, checkpoint_interval=12, seeds=[0, 1, 2]),
        finetune=TrainConfig(model="smoke", max_steps=10, global_batch_size=8, micro_batch_size=8, seq_len=128,
                             lr=1e-4, warmup_steps=2, weight_decay=0.01, eval_interval=5, eval_batches=2, checkpoint_interval=5,
                             seeds=[0, 1, 2]),
        eval=EvalConfig(limit=8, max_new_tokens=48, teacher_limit=2, teacher_max_tokens=128, n_samples=10,
                        sample_seeds=1),
        qualitative=QualitativeConfig(max_new_tokens=64, run_timeout_s=2.0, script_timeout_s=10.0, n_problems=5, problem_max_new_tokens=64,
                                      prompts=["alice_bob_charles", "pygame_ball", "tkinter_pew", "pyplot_bar_log",
                                               "chat_pyplot_ta"],
                                      n_graded=2, n_reliability=4, grade_max_tokens=48),
        contamination=ContaminationConfig(retrain_steps=3, retrain_taus=[0.8], eval_limit=6, max_seq_length=128),
        # one smaller budget (1/3 of the steps, same model: no compute sizing) so the scaling step runs
        compute=ComputeConfig(scaling_divisors=[3], scaling_seeds=[0]),
    )


def _tiny() -> ProfileConfig:
    return ProfileConfig(
        name="tiny",
        description="The main job: the whole pipeline in <= 90 min on 2 CPU cores; Qwen2.5-Coder-1.5B teacher.",
        time_budget_min=90,
        teacher=TeacherConfig(local_model="qwen2.5-coder-1.5b", max_tokens=450, n_ctx=2048, concurrency=4, parallel=4),
        # 3,000 files: enough raw code that no arm repeats its pool more than ~4 times at the main budget
        corpus=CorpusConfig(max_files=3000),
        # 160 + 20 repeats + 8 card ratings, 4 in flight on llama-server (200 took 13.7 min on a quiet
        # AMD EPYC Zen 4 host; the minutes go to training instead)
        annotation=AnnotationConfig(n_samples=160, reliability_subset=20, max_prompt_chars=700, reason_tokens=16,
                                    card_snippets=8),
        filter=FilterConfig(n_estimators=200),
        # 16 generated + 4 ablation passages from the 1.5B teacher; the open top-ups make the synthetic
        # share of CodeTextbook 1/7: first the explained solutions with Python code of evol-codealpaca
        # (gpt-3.5-turbo), then sections of the library-of-phi textbooks (GPT-4 / GPT-3.5, mostly prose)
        textbooks=TextbookConfig(n_passages=16, max_tokens=380, ablation_passages=4,
                                 topup_source="synthetic/evol-codealpaca-2k:python,synthetic/library-of-phi-textbooks",
                                 topup_max=2400, topup_require_code=False, min_filtered_tokens=1_500_000),
        exercises=ExerciseConfig(n_exercises=20, max_tokens=300,
                                 topup_source="synthetic/jina-code-exercises-sample", topup_max=200),
        # 2,048 tokens: at these model sizes the LM head is most of the FLOPs (a 4,096 vocabulary halves
        # the throughput of a 2-layer d=128 model)
        tokenizer=TokenizerConfig(vocab_size=2048, train_chars=20_000_000),
        # The sizing rule (phi_utils.sizing) picks each run's preset and steps: 4 min per main-budget run
        # at the measured throughput, >= 20 tokens per non-embedding parameter (nano, ~30); 1/3 and 1/9 of
        # it for the scaling figure (pico, femto). 2 seeds per arm at the main budget (a third would add
        # ~13 min).
        compute=ComputeConfig(minutes_per_run=4.0, tokens_per_param=20.0, count_embeddings=False,
                              presets=["micro", "nano", "pico", "femto"],
                              tokens_per_s=[19_525.0, 28_240.0, 39_828.0, 54_682.0],
                              throughput_host="`python -m phi_utils calibrate`, AMD EPYC Zen 4 (family 25 model 17), "
                                              "2 threads, quiet, 2026-12-07",
                              scaling_divisors=[3, 9], scaling_seeds=[0], finetune_token_ratio=0.0625),
        pretrain=TrainConfig(model="nano", max_steps=1, global_batch_size=16, micro_batch_size=16, seq_len=256,
                             warmup_steps=1, lr=1e-3, seeds=[0, 1]),
        finetune=TrainConfig(model="nano", max_steps=1, global_batch_size=16, micro_batch_size=16, seq_len=256,
                             lr=1e-4, warmup_steps=1, weight_decay=0.01, seeds=[0, 1]),
        # every problem of both benchmarks for every model (loss, greedy pass@1); 10 samples per HumanEval
        # problem for the first seed of B and C (pass@10 and C - B; generate() prefills every sample)
        # the teacher's Table 1 row from the committed `evaluate` summary of all 164 problems (evals/,
        # sha256-checked against the GGUF); 5 problems generated here only when it is absent or stale
        eval=EvalConfig(limit=0, max_new_tokens=64, teacher_limit=5, teacher_max_tokens=256, loss_problems=0,
                        n_samples=10, sample_seeds=1, sample_arms=["textbook", "finetune"],
                        teacher_reference="evals/qwen2.5-coder-1.5b"),
        # 1.5B teacher ~8 s per logprob grade (grade token, then the sentence on the cached prompt):
        # 3 problems x 3 models + 8 references + 8 broken variants = 25 grades, ~3.5 of the 3.7 minutes measured
        qualitative=QualitativeConfig(max_new_tokens=160, run_timeout_s=3.0, script_timeout_s=15.0, n_problems=0, problem_max_new_tokens=128,
                                      n_graded=3, n_reliability=8, grade_max_tokens=48),
        # all 164 HumanEval problems for Table 3 (2 models x ~20 s of greedy generation): with 30 every subset
        # was below the 20 problems a conclusion needs
        contamination=ContaminationConfig(retrain_steps=15, retrain_taus=[0.8], eval_limit=0, max_seq_length=128),
    )


def _paper() -> ProfileConfig:
    # The paper's hyperparameters (§2.3); sizes as reported. Batch counts 2048-token sequences.
    return ProfileConfig(
        name="paper",
        description="The paper: 8xA100, OpenAI teacher (GPT-4 ratings, GPT-3.5 generation), Hugging Face datasets.",
        device="cuda",
        n_gpus=8,
        time_budget_min=6 * 24 * 60,
        # The model card names gpt-3.5-turbo-0301 for the synthetic data; OpenAI has retired it, so the
        # family alias is the default (set teacher.model to a dated snapshot your account still has).
        teacher=TeacherConfig(backend="openai", model="gpt-3.5-turbo", rating_model="gpt-4-0613",
                              concurrency=32, requests_per_minute=3500, tokens_per_minute=2_000_000,
                              rating_requests_per_minute=500, rating_tokens_per_minute=300_000,
                              price_per_1k_prompt=0.0005, price_per_1k_completion=0.0015, max_tokens=1024,
                              budget_usd=0.0),
        corpus=CorpusConfig(source="hub", max_files=0, near_dup_threshold=0.85),
        # The Stack's Python subset streams in ~100 parquet shards per task group; set the partition.
        data=DataConfig(executor="slurm", tasks=256, workers=-1, slurm_cpus_per_task=2, slurm_time="12:00:00"),
        annotation=AnnotationConfig(n_samples=100_000, reliability_subset=1000),
        filter=FilterConfig(embedder="codegen", n_estimators=500, num_proc=8, batch_size=64),
        # All 6B filtered tokens are kept (synthetic_share=0): 1.5M passages x ~600 tokens give the
        # paper's ~0.9B of ~7B, i.e. ~13% synthetic.
        textbooks=TextbookConfig(n_passages=1_500_000, max_tokens=1024, synthetic_share=0.0),
        exercises=ExerciseConfig(n_exercises=879_500, max_tokens=512),
        tokenizer=TokenizerConfig(name_or_path="Salesforce/codegen-350M-mono", vocab_size=51200),
        pretrain=TrainConfig(model="phi-1", max_steps=36_000, global_batch_size=1024, micro_batch_size=8, seq_len=2048,
                             lr=1e-3, warmup_steps=750, weight_decay=0.1, precision="fp16", eval_interval=1000,
                             eval_batches=50, checkpoint_interval=1000, compile=True, parallel="fsdp"),
        finetune=TrainConfig(model="phi-1", max_steps=6_000, global_batch_size=256, micro_batch_size=8, seq_len=2048,
                             lr=1e-4, warmup_steps=50, weight_decay=0.01, precision="fp16", eval_interval=500,
                             eval_batches=50, checkpoint_interval=1000, compile=True, parallel="fsdp"),
        eval=EvalConfig(benchmarks=["humaneval", "mbpp", "humaneval+", "mbpp+"], max_new_tokens=512, workers=16,
                        teacher_limit=164, teacher_max_tokens=1024),
        qualitative=QualitativeConfig(max_new_tokens=512),
        contamination=ContaminationConfig(retrain_steps=0, embedder="codegen", max_seq_length=512,
                                          textbook_ast_docs=100_000),
    )


PROFILE_NAMES = ("smoke", "tiny", "paper")
_PROFILES = {"smoke": _smoke, "tiny": _tiny, "paper": _paper}


def get_profile(name: str, **overrides: Any) -> ProfileConfig:
    """Return a fresh profile; `overrides` are dotted paths, e.g. `{"pretrain.max_steps": 5}`."""
    if name not in _PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    cfg = _PROFILES[name]()
    for dotted, value in overrides.items():
        set_dotted(cfg, dotted, value)
    return cfg


def set_dotted(cfg: Any, dotted: str, value: Any) -> None:
    """Set `a.b.c` on nested dataclasses, re-running the owner's `__post_init__` check."""
    *path, leaf = dotted.split(".")
    obj = cfg
    for part in path:
        if not hasattr(obj, part):
            raise ConfigError(f"unknown config field {dotted!r}")
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj) or leaf not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"unknown config field {dotted!r}")
    setattr(obj, leaf, value)
    post = getattr(obj, "__post_init__", None)
    if post is not None:
        post()


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its docstring (the string literal under the field), for tables and `--help`."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[attr-defined]
    return docs


# --------------------------------------------------------------------------- overrides (--set, --config, run.json)
_NULLS = ("null", "none", "None", "~")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _coerce(dotted: str, tp: Any, value: Any) -> Any:
    """`value` (a `--set` string, or a YAML/JSON value) as type `tp`; one error naming the field."""
    import json
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value in _NULLS):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(dotted, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{dotted}: cannot be {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{dotted}: {value!r} is not a JSON list ({e.msg})") from None
            else:  # a,b,c
                value = [v.strip() for v in text.split(",")] if text else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{dotted}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{dotted}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(f"{dotted}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(f"{dotted}[{i}]", item, v) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{dotted}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{dotted}: expected a string, got {value!r}")
    return value


def field_type(cfg: Any, dotted: str) -> Any:
    """The declared type of `a.b.c`; one error naming an unknown field."""
    *path, leaf = dotted.split(".")
    obj = cfg
    for part in path:
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            raise ConfigError(f"unknown config field {dotted!r}")
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj) or leaf not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"unknown config field {dotted!r}" + _suggest(obj, leaf))
    tp = _field_types(type(obj))[leaf]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{dotted!r} is a section; set one of its fields, e.g. {dotted}."
                          f"{dataclasses.fields(tp)[0].name}=...")
    return tp


def _suggest(obj: Any, leaf: str) -> str:
    import difflib

    if not dataclasses.is_dataclass(obj):
        return ""
    close = difflib.get_close_matches(leaf, [f.name for f in dataclasses.fields(obj)], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def set_field(cfg: Any, dotted: str, value: Any) -> None:
    """Set `a.b.c` from a string or a parsed YAML/JSON value, converted to the field's declared type.
    Checks of values that depend on each other wait for `validate` (so `global_batch_size` and
    `micro_batch_size` can be changed together in either order)."""
    if dotted == "name":
        raise ConfigError("the profile name cannot be overridden; use --profile")
    value = _coerce(dotted, field_type(cfg, dotted), value)
    *path, leaf = dotted.split(".")
    obj = cfg
    for part in path:
        obj = getattr(obj, part)
    setattr(obj, leaf, value)


def validate(cfg: Any) -> None:
    """Re-run every section's `__post_init__` checks (after a batch of `set_field`s)."""
    for f in dataclasses.fields(cfg):
        val = getattr(cfg, f.name)
        if dataclasses.is_dataclass(val):
            validate(val)
    post = getattr(cfg, "__post_init__", None)
    if post is not None:
        post()


def parse_set(item: str) -> tuple[str, str]:
    """`pretrain.max_steps=200` -> ("pretrain.max_steps", "200")."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. pretrain.max_steps=200")
    return key.strip(), value


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"pretrain": {"max_steps": 5}} -> {"pretrain.max_steps": 5} (section dicts only)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_overrides_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file of overrides (nested sections or dotted keys), flattened to dotted keys."""
    import json

    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--config {path}: not UTF-8 ({e})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of fields to values, got {type(data).__name__}")
    if isinstance(data.get("config"), dict) and "profile" in data:  # a run directory's run.json
        data = data["config"]
    data = flatten(data)
    data.pop("name", None)  # a run.json-style `config` may carry it
    return data


def resolve_config(profile: str, config_files: list[str | Path] = (), sets: list[str] = (),
                   seed: int | None = None) -> ProfileConfig:
    """The profile, then each `--config` file, then each `--set`, then `--seed` (later wins)."""
    return apply_overrides(get_profile(profile), config_files, sets, seed)


def apply_overrides(cfg: ProfileConfig, config_files: list[str | Path] = (), sets: list[str] = (),
                    seed: int | None = None) -> ProfileConfig:
    """`cfg` with each `--config` file, then each `--set`, then `--seed` applied (later wins), checked
    together; an override of a field that compute sizing sets is one error. Every entry point
    (`run`, `config`, `python -m phi_utils.train`) goes through here."""
    for f in config_files:
        for dotted, value in read_overrides_file(f).items():
            try:
                set_field(cfg, dotted, value)
            except ConfigError as e:
                raise ConfigError(f"--config {f}: {e}") from None
    for item in sets:
        dotted, value = parse_set(item)
        try:
            set_field(cfg, dotted, value)
        except ConfigError as e:
            raise ConfigError(f"--set {item}: {e}") from None
    if seed is not None:
        cfg.seed = seed
    validate(cfg)
    if cfg.compute.minutes_per_run > 0:
        given = {**{d: v for f in config_files for d, v in read_overrides_file(f).items()},
                 **dict(parse_set(i) for i in sets)}
        _refuse_sized_overrides(cfg, given)
    return cfg


def _refuse_sized_overrides(cfg: ProfileConfig, given: dict[str, Any]) -> None:
    """One error for an override of a field that compute sizing sets to another value (a run's own
    run.json, whose values are the sized ones, passes)."""
    for dotted, value in given.items():
        section, _, leaf = dotted.partition(".")
        if section in ("pretrain", "finetune") and leaf in SIZED_FIELDS:
            have = getattr(getattr(cfg, section), leaf)
            if _coerce(dotted, field_type(cfg, dotted), value) != have:
                raise ConfigError(f"{dotted} is set by compute sizing ({have!r} with compute.minutes_per_run = "
                                  f"{cfg.compute.minutes_per_run:g}); change compute.* instead, or set "
                                  "compute.minutes_per_run=0 to size the runs by hand")


def config_from_dict(d: dict[str, Any]) -> ProfileConfig:
    """Rebuild a resolved configuration from `cfg.to_dict()` (a run directory's `run.json`): the
    profile's defaults, then every stored value (a field the code no longer has is an error naming it)."""
    if "name" not in d:
        raise ConfigError("stored configuration has no profile `name`")
    cfg = get_profile(d["name"])
    for dotted, value in flatten({k: v for k, v in d.items() if k != "name"}).items():
        set_field(cfg, dotted, value)
    validate(cfg)
    return cfg


def differences(a: ProfileConfig, b: ProfileConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted field -> (value in a, value in b), for every field that differs."""
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def describe_config(cfg: ProfileConfig, base: ProfileConfig | None = None) -> str:
    """Every field: `section.field = value  # docstring`; `(overridden, profile: x)` where it differs from `base`."""
    import json

    lines: list[str] = [f"# profile {cfg.name!r}: {cfg.description}"]
    flat_base = flatten(base.to_dict()) if base is not None else {}

    def walk(obj: Any, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            val = getattr(obj, f.name)
            key = prefix + f.name
            if dataclasses.is_dataclass(val):
                lines.append(f"\n[{key}]  # {docs.get(f.name, '')}")
                walk(val, key + ".")
                continue
            shown = json.dumps(list(val) if isinstance(val, tuple) else val)
            note = ""
            if base is not None and flat_base.get(key) != (list(val) if isinstance(val, tuple) else val):
                note = f"  (overridden; profile: {json.dumps(flat_base.get(key))})"
            doc = " ".join(docs.get(f.name, "").split())
            lines.append(f"{key} = {shown}{note}\n    {doc}")

    walk(cfg, "")
    return "\n".join(lines)
