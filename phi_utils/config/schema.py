"""Every knob of the pipeline: one dataclass per stage, each field with a one-line docstring (the
string literal right under it, as in litgpt). `__post_init__` checks values, so a bad profile fails at
load time, not an hour in. A field that takes one of a few strings is typed with a `Literal`, the one
list of its values: `check_choices` refuses any other value from it.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import sizing


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


# --------------------------------------------------------------------------- enumerations
ProfileName = Literal["smoke", "tiny", "paper"]
Device = Literal["auto", "cpu", "cuda"]
TeacherBackend = Literal["local", "openai"]
TeacherEngine = Literal["auto", "llama-server", "llama-cpp-python"]
CorpusSource = Literal["local", "hub"]
Embedder = Literal["minilm", "codegen", "own"]
Precision = Literal["fp32", "bf16", "fp16"]
ParallelMode = Literal["ddp", "fsdp"]
Benchmark = Literal["humaneval", "mbpp", "humaneval+", "mbpp+"]
Arm = Literal["raw", "filtered", "textbook", "finetune"]
InferenceDtype = Literal["auto", "float32", "bfloat16", "float16"]
GradeMethod = Literal["auto", "verbal", "logprobs"]
Combine = Literal["or", "and", "ast", "embedding"]
DataExecutor = Literal["local", "slurm", "ray"]

PROFILE_NAMES: tuple[str, ...] = typing.get_args(ProfileName)
DATA_EXECUTORS: tuple[str, ...] = typing.get_args(DataExecutor)


def choice_error(dotted: str, allowed: tuple[Any, ...], value: Any) -> ConfigError:
    """The one error for a value outside an enumeration: the field, the allowed values, the value."""
    return ConfigError(f"{dotted} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal[...]` type; None for any other type."""
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


@functools.cache
def _choice_fields(cls: type) -> dict[str, tuple[tuple[Any, ...], bool]]:
    """Field -> (allowed values, whether it holds a list of them) for `cls`'s fields typed with a Literal."""
    out: dict[str, tuple[tuple[Any, ...], bool]] = {}
    for name, tp in typing.get_type_hints(cls).items():
        many = typing.get_origin(tp) is list
        allowed = literal_choices(typing.get_args(tp)[0] if many else tp)
        if allowed is not None:
            out[name] = (allowed, many)
    return out


def check_choices(obj: Any, section: str) -> None:
    """Each field of `obj` typed `Literal[...]` (or `list[Literal[...]]`) holds allowed values only;
    `section` prefixes the field in the error (empty for the profile's own fields)."""
    for name, (allowed, many) in _choice_fields(type(obj)).items():
        value = getattr(obj, name)
        for v in value if many else (value,):
            if v not in allowed:
                raise choice_error(f"{section}.{name}" if section else name, allowed, v)


# --------------------------------------------------------------------------- teacher
@dataclass
class TeacherConfig:
    backend: TeacherBackend = "local"
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
    """Context window per request of the local server (llama-cpp-python keeps n_ctx x vocab float logits;
    llama-server allocates `parallel` x n_ctx tokens of KV cache)."""
    engine: TeacherEngine = "auto"
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
    `qwen2.5-coder-0.5b`, or a GGUF path); None = off (on CPU cores it decodes slower, docs/benchmarks.md)."""
    draft_max: int = 8
    """Tokens the draft proposes per step."""
    use_batch_api: bool = False
    """Use OpenAI's Batch API (half price, asynchronous) for paper-scale jobs."""

    def __post_init__(self) -> None:
        check_choices(self, "teacher")
        _check(0.0 <= self.temperature <= 2.0, "teacher.temperature must be in [0, 2]")
        _check(0.0 <= self.max_error_rate <= 1.0, "teacher.max_error_rate must be in [0, 1]")
        _check(0.0 < self.top_p <= 1.0, "teacher.top_p must be in (0, 1]")
        _check(self.max_tokens > 0, "teacher.max_tokens must be positive")
        _check(self.concurrency >= 1, "teacher.concurrency must be >= 1")
        _check(self.parallel >= 1, "teacher.parallel must be >= 1")
        _check(self.threads >= 0 and self.threads_batch >= 0, "teacher.threads/threads_batch must be >= 0")
        _check(self.draft_max >= 1, "teacher.draft_max must be >= 1")
        _check(self.budget_usd >= 0, "teacher.budget_usd must be >= 0")


# --------------------------------------------------------------------------- corpus + filtering
@dataclass
class CorpusConfig:
    source: CorpusSource = "local"
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
    if too few survive)."""

    def __post_init__(self) -> None:
        check_choices(self, "corpus")
        _check(self.examine_factor >= 1.0, "corpus.examine_factor must be >= 1")
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
    """Completion cap per rating: the score digit plus a short reason."""
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
    embedder: Embedder = "minilm"
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
        check_choices(self, "filter")
        _check(0.0 < self.keep_fraction <= 1.0, "filter.keep_fraction must be in (0, 1]")
        _check(0.0 < self.test_fraction < 1.0, "filter.test_fraction must be in (0, 1)")
        _check(self.n_estimators >= 1 and self.batch_size >= 1 and self.num_proc >= 1,
               "filter.n_estimators, filter.batch_size and filter.num_proc must be >= 1")
        _check(self.label_threshold is None or 0.0 <= self.label_threshold <= 9.0,
               "filter.label_threshold must be None or in [0, 9]")


# --------------------------------------------------------------------------- synthetic data
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


# --------------------------------------------------------------------------- model + training
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
    precision: Precision = "fp32"
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
    parallel: ParallelMode = "ddp"
    """With several processes: `ddp` (replicated weights) or `fsdp` (sharded weights, gradients and
    optimizer state; the paper profile's 1.3B model). Notebooks launch one process per visible GPU,
    up to the profile's `n_gpus`."""
    gradient_checkpointing: bool = False
    """Recompute each block's activations in backward: less memory for long sequences, one more forward pass of compute."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds: one model per Figure 2.1 arm and seed (model init, data order, dropout), steps
    `<arm>_s<seed>` (`phi_utils.arms`). Finetuning seeds must be pretraining seeds (C of seed k
    starts from B of seed k). Several seeds let notebook 08's intervals carry seed-to-seed spread."""

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        check_choices(self, "train")
        _check(self.max_steps > 0, "train.max_steps must be positive")
        _check(self.global_batch_size % self.micro_batch_size == 0, "train.global_batch_size must be a multiple of micro_batch_size")
        _check(0 <= self.warmup_steps <= self.max_steps, "train.warmup_steps must be in [0, max_steps]")
        _check(0.0 <= self.dropout < 1.0, "train.dropout must be in [0, 1)")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
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


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvalConfig:
    benchmarks: list[Benchmark] = field(default_factory=lambda: ["humaneval", "mbpp"])
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
    sample_benchmarks: list[Benchmark] = field(default_factory=lambda: ["humaneval"])
    """Benchmarks that get `n_samples` sampled completions per problem besides the greedy one."""
    batch_size: int = 32
    """Prompts (x samples) per generation batch."""
    sample_seeds: int = 0
    """Seeds per arm (the first ones) whose models also get the sampled completions (0 = every seed);
    greedy pass@1 and the loss are measured for every seed."""
    sample_arms: list[Arm] = field(default_factory=list)
    """Arms (`phi_utils.arms` keys: raw, filtered, textbook, finetune) whose models get the sampled
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
    dtype: InferenceDtype = "auto"
    """Precision of every inference pass on our checkpoints (notebooks 08-11): `auto` = bfloat16 on
    CUDA, float32 on CPU; or `float32`, `bfloat16`, `float16`. The device is the profile's `device`.
    bfloat16 on a CPU is faster only with AVX512-BF16/AMX and can change greedy tokens."""

    def __post_init__(self) -> None:
        check_choices(self, "eval")
        _check(self.limit >= 0 and self.teacher_limit >= 0 and self.loss_problems >= 0,
               "eval.limit, eval.teacher_limit and eval.loss_problems must be >= 0")
        _check(self.max_new_tokens > 0 and self.teacher_max_tokens > 0, "eval.max_new_tokens/teacher_max_tokens must be positive")
        _check(0.0 <= self.temperature <= 2.0 and 0.0 < self.top_p <= 1.0, "eval.temperature in [0, 2], eval.top_p in (0, 1]")
        _check(self.workers >= 1, "eval.workers must be >= 1")
        _check(self.n_samples >= 0, "eval.n_samples must be >= 0")
        _check(set(self.sample_benchmarks) <= set(self.benchmarks), "eval.sample_benchmarks must be within eval.benchmarks")
        _check(self.batch_size >= 1 and self.sample_seeds >= 0, "eval.batch_size must be >= 1, eval.sample_seeds >= 0")
        _check(self.timeout_s > 0, "eval.timeout_s must be positive")


# --------------------------------------------------------------------------- qualitative + unconventional
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
    grade_method: GradeMethod = "auto"
    """`verbal`: the paper's verbal evaluation followed by "Grade: N/10" (parsed); `logprobs`: the grade
    digit first, read as the probability-weighted mean over 0-9 and rescaled to 0-10 (a small local
    grader only carries signal there); `auto`: logprobs on a local teacher, verbal on an API."""

    def __post_init__(self) -> None:
        check_choices(self, "qualitative")
        _check(self.max_new_tokens > 0, "qualitative.max_new_tokens must be positive")
        _check(self.problem_max_new_tokens > 0, "qualitative.problem_max_new_tokens must be positive")
        _check(0.0 <= self.temperature <= 2.0, "qualitative.temperature must be in [0, 2]")
        _check(0.0 < self.top_p <= 1.0, "qualitative.top_p must be in (0, 1]")
        _check(self.run_timeout_s > 0 and self.script_timeout_s > 0, "qualitative.run_timeout_s and script_timeout_s must be positive")
        _check(self.run_workers >= 1 and self.batch_size >= 1, "qualitative.run_workers and batch_size must be >= 1")
        _check(min(self.n_problems, self.n_graded, self.n_reliability, self.broken_per_problem) >= 0,
               "qualitative.n_problems, n_graded, n_reliability and broken_per_problem must be >= 0")
        _check(self.grade_max_tokens > 0, "qualitative.grade_max_tokens must be positive")


# --------------------------------------------------------------------------- contamination
@dataclass
class ContaminationConfig:
    ngram: int = 13
    """Word n-gram length for the overlap check."""
    taus: list[float] = field(default_factory=lambda: [0.95, 0.9, 0.85, 0.8])
    """AST match-rate thresholds for pruning."""
    embedding_threshold: float = 0.5
    """L2 distance (normalised embeddings) below which an exercise counts as similar."""
    combine: Combine = "or"
    """How AST and embedding criteria combine: `or`, `and`, `ast`, `embedding`."""
    retrain: bool = True
    """Finetune again on each pruned set and evaluate on similar/non-similar HumanEval."""
    retrain_steps: int = 0
    """Finetuning steps per pruned set (0 = as the finetune stage, whose model is the reference; else a control finetuned on all exercises for the same steps is)."""
    retrain_taus: list[float] | None = None
    """The taus whose pruned sets are retrained on (None = all of `taus`); a tau that prunes nothing reuses the finetuned model."""
    eval_limit: int = 0
    """HumanEval problems evaluated for the similar/non-similar split (0 = all 164; else a seeded sample stratified by similarity)."""
    embedder: Embedder = "minilm"
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
        check_choices(self, "contamination")
        _check(all(0.0 < t <= 1.0 for t in self.taus), "contamination.taus must be in (0, 1]")
        _check(self.ngram >= 1, "contamination.ngram must be >= 1")
        _check(0.0 <= self.embedding_threshold <= 2.0, "contamination.embedding_threshold must be in [0, 2] (L2 of unit vectors)")
        _check(self.retrain_steps >= 0, "contamination.retrain_steps must be >= 0")
        _check(self.retrain_taus is None or set(self.retrain_taus) <= set(self.taus),
               "contamination.retrain_taus must be a subset of contamination.taus")
        _check(self.eval_limit >= 0, "contamination.eval_limit must be >= 0")
        _check(self.top_k >= 1, "contamination.top_k must be >= 1")
        _check(self.textbook_ast_docs >= 0, "contamination.textbook_ast_docs must be >= 0")


# --------------------------------------------------------------------------- data-step execution (datatrove)
@dataclass
class DataConfig:
    """Where the data steps' datatrove pipelines run. None of these fields changes a result: the
    pipelines shard in the candidates' global order, so 1 task and 1,000 give the same kept set."""

    executor: DataExecutor = "local"
    """`local` (datatrove's LocalPipelineExecutor: processes on this machine), `slurm` (an sbatch job
    array per pipeline job) or `ray` (tasks on a Ray cluster)."""
    tasks: int = 2
    """Shards of each parallel pipeline job (datatrove tasks); the merge and cluster jobs run as one."""
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
        check_choices(self, "data")
        _check(self.tasks >= 1, "data.tasks must be >= 1")
        _check(self.workers == -1 or self.workers >= 1, "data.workers must be >= 1 or -1 (all)")
        _check(self.slurm_cpus_per_task >= 1 and self.ray_cpus_per_task >= 1, "data.*_cpus_per_task must be >= 1")


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

