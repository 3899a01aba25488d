"""The three profiles: `smoke` (CI, mechanics only), `tiny` (the whole pipeline on 2 CPU cores) and
`paper` (the paper's sizes and endpoints). They differ only in values, never in code path."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .profile import ProfileConfig
from .schema import (PROFILE_NAMES, AnnotationConfig, ComputeConfig, ConfigError, ContaminationConfig, CorpusConfig,
                     DataConfig, EvalConfig, ExerciseConfig, FilterConfig, QualitativeConfig, TeacherConfig,
                     TextbookConfig, TokenizerConfig, TrainConfig)


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
        # 160 + 20 repeats + 8 card ratings, 4 in flight on llama-server
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
        # 2,048 tokens: at these model sizes the LM head is most of the FLOPs
        tokenizer=TokenizerConfig(vocab_size=2048, train_chars=20_000_000),
        # The sizing rule (phi_utils.sizing) picks each run's preset and steps: 4 min per main-budget run
        # at the measured throughput, >= 20 tokens per non-embedding parameter (nano, ~30); 1/3 and 1/9 of
        # it for the scaling figure (pico, femto). 2 seeds per arm at the main budget.
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
        # 3 problems x 3 models + 8 references + 8 broken variants = 25 logprob grades
        qualitative=QualitativeConfig(max_new_tokens=160, run_timeout_s=3.0, script_timeout_s=15.0, n_problems=0, problem_max_new_tokens=128,
                                      n_graded=3, n_reliability=8, grade_max_tokens=48),
        # all 164 HumanEval problems for Table 3, so its similarity subsets can reach the 20 problems a
        # conclusion needs
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


_PROFILES: dict[str, Callable[[], ProfileConfig]] = {"smoke": _smoke, "tiny": _tiny, "paper": _paper}
assert tuple(_PROFILES) == PROFILE_NAMES


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
