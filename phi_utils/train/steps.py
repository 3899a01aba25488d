"""The training steps of notebooks 06 and 07: the Figure 2.1 models, one step per arm, budget and seed.

The arms and their step names live in `phi_utils.arms` (A `pretrain_raw_s<k>`, B'
`pretrain_filtered_s<k>`, B `pretrain_textbook_s<k>`, C `finetune_s<k>`). Each step writes
`<step>/data/` (packed tokens), `<step>/metrics.jsonl`, `<step>/checkpoints/`, `<step>/final/`
(HF checkpoint), `<step>/result.json`, and `_COMPLETE.json` with the budget spent.
The same code runs in-process (notebooks, world size 1) and under `torchrun` (`python -m phi_utils.train`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ProfileConfig, TrainConfig, get_profile
from ..rundir import RunDir
from ..sizing import count_params
from ..model.config import training_model_config
from ..model.flops import flops_per_token
from ..model.tokenizer import load_tokenizer
from ..arms import (FINETUNE_ARMS, PRETRAIN_ARMS, budget_of, check_seeds, init_step, parse_step, scaling_steps,
                    step_train_config, training_steps)
from .data import PackedData
from .prepare import prepare_packed
from .dist import DistEnv, barrier, broadcast_object, init_distributed
from .loop import Trainer, build_model, clean_run_dir, write_result

def _other_seed_packings(rd: RunDir, step: str) -> list[Path]:
    """Packed-data folders of the same arm's other seeds and budgets: the packing depends on neither
    (`prepare_packed` reuses one only when its fingerprint, sequence length included, matches)."""
    arm = parse_step(step)[0]
    out = []
    for p in sorted(rd.path.glob(f"{arm.prefix}_*")):
        try:
            same_arm = parse_step(p.name)[0] == arm
        except ValueError:
            same_arm = False
        if same_arm and p.name != step and p.is_dir():
            out.append(p / "data")
    return out


def run_step(cfg: ProfileConfig, rd: RunDir, step: str, force: bool = False, parallel: str = "ddp",
             progress: bool = True, env: DistEnv | None = None) -> dict[str, Any]:
    """Train one Figure 2.1 model, `step` = `<arm prefix>[_div<d>]_s<seed>` (any number of ranks); returns
    the step's manifest counts. Its inputs (the tokenizer, the arm's dataset, the model it starts from)
    are read through `rd.require`, so a missing or stale one is one error naming the notebook to run."""
    cfg = rd.view(step, cfg)
    arm, seed = parse_step(step)
    tc = step_train_config(cfg, step)
    env = env or init_distributed(cfg.device)
    out = rd.path / step
    init = init_step(step)

    # rank 0 decides (skip / fresh / resume) and packs the data; the others wait and follow
    decision = None
    if env.is_main:
        if rd.is_complete(step) and not force:
            decision = "skip"
        else:
            rd.invalidate(step)
            if force:
                clean_run_dir(out)
            tok = load_tokenizer(rd.require("tokenizer"))
            if init:
                rd.require(init)  # C starts from B of the same budget and seed
            dataset_step, _, dataset = arm.dataset.partition("/")
            # the data split uses the profile seed, not the training seed: every seed sees the same data
            prepare_packed(rd.require(dataset_step) / dataset, tok, out / "data", tc.seq_len, tc.val_fraction, cfg.seed,
                           exercises=arm.exercises, loss_on_solution_only=tc.loss_on_solution_only, what=arm.what,
                           reuse_from=_other_seed_packings(rd, step), data=cfg.data)
            decision = "train"
    decision = broadcast_object(decision, env)
    if decision == "skip":
        return rd.manifest(step)["counts"] if env.is_main else {}
    barrier(env)

    tok = load_tokenizer(rd.require("tokenizer"))
    init_from = rd.require(init) / "final" if init else None
    train, val = PackedData.open(out / "data", "train"), PackedData.open(out / "data", "val")
    mc = training_model_config(tc.model, vocab_size=len(tok), dropout=tc.dropout, min_block_size=tc.seq_len)
    started = time.time()
    trainer = Trainer(build_model(mc, seed, init_from), tc, train, val, out, env, seed=seed, tokenizer=tok,
                      parallel=parallel, progress=progress, keep_checkpoints=tc.keep_checkpoints)
    result = trainer.fit(resume=True)
    trainer.export_final(out / "final")
    counts: dict[str, Any] = {}
    if env.is_main:
        write_result(result, out)
        meta = train.meta
        counts = {
            "steps": result.steps, "tokens_seen": result.tokens_seen, "loss_tokens_seen": result.target_tokens_seen,
            "epochs_over_data": round(result.epochs, 3), "train_sequences": len(train),
            "train_documents": meta["splits"]["train"]["n_documents"],
            "train_unique_tokens": meta["splits"]["train"]["n_tokens"],
            "val_documents": meta["splits"]["val"]["n_documents"], "val_sequences": len(val),
            "final_loss": result.final_loss, "final_val_loss": result.final_val_loss,
            "tokens_per_s": result.tokens_per_s, "mfu": result.mfu, "n_params": result.n_params,
            "world_size": env.world_size, "resumed_from_step": result.resumed_from_step,
            "skipped_steps": result.skipped_steps, "budget_divisor": budget_of(step),
            **_param_counts(tc.model, len(tok), result.tokens_seen, cfg.compute.count_embeddings),
        }
        rd.mark_complete(step, counts=counts, config=tc, started=started, input_dataset=arm.dataset,
                         arm=arm.key, arm_letter=arm.letter, seed=seed,
                         loss_on_solution_only=meta["loss_on_solution_only"], model_backend=result.model_backend,
                         model_preset=tc.model, init_from=str(init_from) if init_from else None,
                         checkpoint=str(out / "final"))
    barrier(env)
    return counts


def _param_counts(preset: str, vocab_size: int, tokens: int, count_embeddings: bool) -> dict[str, Any]:
    """Embedding and non-embedding parameters of the trained model, and tokens per counted parameter."""
    n = count_params(preset, vocab_size)
    counted = n.total if count_embeddings else n.non_embedding
    return {"n_params_embedding": n.embedding, "n_params_non_embedding": n.non_embedding,
            "tokens_per_param": round(tokens / counted, 2),
            "tokens_per_param_counts": "all parameters" if count_embeddings else "non-embedding parameters"}


def run_pretraining(cfg: ProfileConfig, rd: RunDir, force: bool = False, nproc: int | None = None,
                    parallel: str | None = None) -> dict[str, dict[str, Any]]:
    """Figure 2.1 (A) raw corpus, (B') filtered code, (B) CodeTextbook: same model and token budget,
    each for every seed of `cfg.pretrain.seeds`, then each at the smaller budgets of the scaling figure
    (`compute.scaling_divisors` x `compute.scaling_seeds`). `nproc` None = one process per visible GPU up to
    `cfg.n_gpus` (else 1); `parallel` None = `train.parallel`."""
    check_seeds(cfg)
    steps = training_steps(cfg, PRETRAIN_ARMS) + scaling_steps(cfg, PRETRAIN_ARMS)
    return {s: _run(cfg, rd, s, force, nproc, parallel) for s in steps}


def run_finetuning(cfg: ProfileConfig, rd: RunDir, force: bool = False, nproc: int | None = None,
                   parallel: str | None = None) -> dict[str, dict[str, Any]]:
    """Figure 2.1 (C): B of each seed in `cfg.finetune.seeds` finetuned on CodeExercises
    (`nproc`, `parallel` as in `run_pretraining`)."""
    check_seeds(cfg)
    steps = training_steps(cfg, FINETUNE_ARMS) + scaling_steps(cfg, FINETUNE_ARMS)
    return {s: _run(cfg, rd, s, force, nproc, parallel) for s in steps}


def default_nproc(cfg: ProfileConfig) -> int:
    """Training processes to launch: one per visible GPU, at most `cfg.n_gpus`; 1 on CPU."""
    import torch

    if cfg.device == "cpu" or not torch.cuda.is_available():
        return 1
    return max(1, min(cfg.n_gpus or 1, torch.cuda.device_count()))


def _run(cfg: ProfileConfig, rd: RunDir, step: str, force: bool, nproc: int | None,
         parallel: str | None) -> dict[str, Any]:
    nproc = default_nproc(cfg) if nproc is None else nproc
    parallel = parallel or step_train_config(cfg, step).parallel
    if nproc <= 1:
        return run_step(cfg, rd, step, force=force, parallel=parallel)
    if rd.is_complete(step) and not force:
        return rd.manifest(step)["counts"]
    cfg_path = rd.path / step / "launch_config.json"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg.to_dict(), indent=2))
    cmd = torchrun_command(cfg_path, rd.path, step, nproc_per_node=nproc, parallel=parallel, force=force,
                           standalone=True, launcher=f"{sys.executable} -m torch.distributed.run")
    subprocess.run(shlex.split(cmd), check=True, env={**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))})
    return rd.manifest(step)["counts"]


# ---------------------------------------------------------------------------- launching
def torchrun_command(config: str | Path, run_dir: str | Path, step: str, nproc_per_node: int = 8, nnodes: int = 1,
                     parallel: str = "fsdp", force: bool = False, standalone: bool | None = None,
                     rdzv_endpoint: str = "$MASTER_ADDR:29500", launcher: str = "torchrun") -> str:
    """The exact `torchrun` command for one training step (single node: `--standalone`; multi-node: c10d rendezvous,
    run the same command on every node). `launcher` may be `python -m torch.distributed.run`."""
    if standalone is None:
        standalone = nnodes == 1
    parts = [launcher, f"--nproc_per_node={nproc_per_node}"]
    if standalone:
        parts.append("--standalone")
    else:
        parts += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={rdzv_endpoint}",
                  "--rdzv_id=phi1-" + step]
    parts += ["-m", "phi_utils.train", "--config", str(config), "--run-dir", str(run_dir), "--step", step,
              "--parallel", parallel]
    if force:
        parts.append("--force")
    return " ".join(parts)


def paper_commands(run_dir: str = "runs/paper", nproc_per_node: int = 8, nnodes: int = 1) -> list[str]:
    """The 8xA100 commands of the paper profile, one per arm and seed (§2.3: 8 A100s)."""
    cfg = get_profile("paper")
    return [torchrun_command(f"{run_dir}/run.json", run_dir, s, nproc_per_node=nproc_per_node, nnodes=nnodes,
                             parallel="fsdp") for s in training_steps(cfg)]


def estimate_wall_time(tc: TrainConfig, tokens_per_s_per_device: float, n_devices: int) -> dict[str, float]:
    """Wall time of a run of `tc` at a measured per-device throughput (perfect data-parallel scaling assumed)."""
    tokens = tc.max_steps * tc.global_batch_size * tc.seq_len
    seconds = tokens / (tokens_per_s_per_device * n_devices)
    return {"tokens": float(tokens), "hours": seconds / 3600, "days": seconds / 86400,
            "device_hours": seconds * n_devices / 3600}


def throughput_at_mfu(model_name: str, seq_len: int, mfu: float, peak_flops: float, vocab_size: int = 51200) -> float:
    """Tokens/s per device a model reaches at a given MFU (to turn a measured MFU into a wall time)."""
    mc = training_model_config(model_name, vocab_size=vocab_size, min_block_size=seq_len)
    return mfu * peak_flops / flops_per_token(mc, seq_len, training=True)
