"""The training loop (§2.3): AdamW, linear warmup + linear decay, gradient accumulation to the global
batch on any number of ranks, clipping, bf16/fp16 autocast (fp16 with dynamic loss scaling),
dropout, periodic validation, `metrics.jsonl`, checkpoints and exact resume.

The loss of a step is the mean over *all loss-bearing tokens of the global batch*: each micro-batch
contributes its summed cross-entropy divided by the global token count (known in advance on every
rank, since batches are a pure function of the step). Accumulated over micro-batches and averaged
over ranks by DDP/FSDP (hence the `world_size` factor), this equals one big-batch step on one device.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from ..progress import tqdm

from ..config import TrainConfig
from ..model import ModelConfig, PhiForCausalLM, causal_lm_loss, load_checkpoint, save_checkpoint
from ..model import fast, flops
from ..model.fast import linear_cross_entropy
from ..rundir import write_json_atomic
from . import checkpoint as ckpt
from .data import IGNORE_INDEX, BatchSampler, PackedData
from .dist import DistEnv, all_reduce_sum, barrier, broadcast_object, gather_objects, no_grad_sync, wrap_model
from .scaler import DynamicLossScaler
from .schedule import make_scheduler

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODEL_BACKEND = "phi_utils.model.PhiForCausalLM"
"""Which model implementation training uses (recorded in manifests)."""


@dataclass
class FitResult:
    """What a training run did, for manifests and notebooks (all budgets as actually spent)."""

    steps: int
    tokens_seen: int
    target_tokens_seen: int
    epochs: float
    train_sequences: int
    final_loss: float | None
    final_val_loss: float | None
    tokens_per_s: float | None
    mfu: float | None
    wall_s: float
    resumed_from_step: int | None
    skipped_steps: int
    n_params: int
    world_size: int
    model_backend: str
    out_dir: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _state_options(**kw: Any) -> Any:
    """`torch.distributed.checkpoint`'s options for a full (unsharded) state, imported on first use (half
    a second). The Trainer reads its state with `cpu_offload=True` (on the CPU of rank 0) in every mode."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def build_model(mc: ModelConfig, seed: int = 0, init_from: Path | None = None) -> PhiForCausalLM:
    """The model a run trains, on the CPU: `mc`'s initialisation drawn under `seed` (the same weights on
    every rank), its weights then replaced by those of the Hugging Face checkpoint `init_from` when
    given (a finetuning run starts from a pretrained model). `fast.py`'s paths are installed."""
    torch.manual_seed(seed)
    model = fast.install(PhiForCausalLM(mc))
    if init_from is not None:
        src, _ = load_checkpoint(init_from, load_tokenizer=False)
        missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
        if unexpected or [k for k in missing if "rotary" not in k and "inv_freq" not in k]:
            raise ValueError(f"{init_from}: weights do not fit model {mc.name!r} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model


def make_optimizer(model: torch.nn.Module, tc: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings' 1-D params. Fused on CUDA, foreach on CPU."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kw: dict[str, Any] = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas), eps=1e-8, **kw)


def named_optimizer_state(state: dict[str, Any], model: torch.nn.Module,
                          optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimizer state with its parameters named by their fully qualified names in `model`, the
    form `get_optimizer_state_dict` writes. A state from `Optimizer.state_dict()` (parameters numbered
    in the optimizer's order: checkpoints written without FSDP before all modes went through
    `torch.distributed.checkpoint.state_dict`) is converted; a named one is returned as it is."""
    if all(isinstance(i, str) for g in state["param_groups"] for i in g["params"]):
        return state
    name_of = {id(p): n for n, p in model.named_parameters()}
    names = [name_of[id(p)] for g in optimizer.param_groups for p in g["params"]]
    return {"state": {names[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}


def micro_loss_sum(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                   autocast_dtype: torch.dtype | None, device: torch.device, fused_head: bool = False) -> torch.Tensor:
    """Summed next-token cross-entropy over the labelled positions of one micro-batch (fp32).

    `fused_head`: `model` is a bare `PhiForCausalLM` (no DDP/FSDP wrapper, not compiled) in fp32;
    the LM head and the loss are then computed together, chunk by chunk, without materialising the
    logits (`fast.linear_cross_entropy`: the same loss and gradients within float rounding)."""
    if fused_head:
        return linear_cross_entropy(model.hidden_states(input_ids), model.lm_head, labels,
                                    ignore_index=IGNORE_INDEX, reduction="sum")
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        logits = model(input_ids)  # (B, T, V): our model returns plain logits
    return causal_lm_loss(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")


def _grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"), foreach=True)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def _same_config(saved: Any, tc: TrainConfig) -> bool:
    """Whether a checkpoint's recorded training config is `tc` (tuples read back as lists count as equal)."""
    return saved == json.loads(json.dumps(dataclasses.asdict(tc))) or saved == dataclasses.asdict(tc)


class Trainer:
    """One training run of `model` into `out_dir` (metrics.jsonl, checkpoints/, final/).

    The caller builds the model (`build_model`); the Trainer moves it to the device, wraps it (DDP or
    FSDP2 `fully_shard` after `parallel`), compiles it when `tc.compile` and makes the optimizer,
    scheduler and loss scaler. Its whole state goes through `state_dict()` / `load_state_dict()`
    (`torch.distributed.checkpoint`'s `Stateful` protocol), the same in every parallel mode."""

    def __init__(self, model: PhiForCausalLM, tc: TrainConfig, train: PackedData, val: PackedData | None,
                 out_dir: Path, env: DistEnv, seed: int = 0, tokenizer: Any = None, parallel: str = "none",
                 keep_checkpoints: int = 2, progress: bool = True,
                 after_backward: Callable[[int, torch.nn.Module], None] | None = None,
                 max_steps_this_call: int | None = None) -> None:
        self.tc, self.mc, self.train, self.val, self.env = tc, model.config, train, val, env
        self.out_dir, self.seed, self.tokenizer = Path(out_dir), seed, tokenizer
        self.parallel = parallel if env.distributed else "none"
        self.keep, self.progress, self.after_backward = keep_checkpoints, progress, after_backward
        self.max_steps_this_call = max_steps_this_call
        self.ckpt_root = self.out_dir / "checkpoints"
        self.metrics_path = self.out_dir / "metrics.jsonl"
        world = env.world_size
        if tc.global_batch_size % world != 0:
            raise ValueError(f"train.global_batch_size {tc.global_batch_size} must be a multiple of the {world} ranks")
        per_rank = tc.global_batch_size // world
        # micro_batch_size is a memory cap: use the largest micro-batch <= it that divides this rank's share
        self.micro = max(m for m in range(1, min(tc.micro_batch_size, per_rank) + 1) if per_rank % m == 0)
        if train.seq_len != tc.seq_len:
            raise ValueError(f"packed data has seq_len {train.seq_len}, config says {tc.seq_len}")
        self.accum = per_rank // self.micro
        self.autocast = AUTOCAST_DTYPES[tc.precision]

        if tc.num_threads > 0 and env.device.type == "cpu":
            torch.set_num_threads(tc.num_threads)
        if tc.gradient_checkpointing:
            model.gradient_checkpointing = True
        self.raw_model = model.to(env.device)
        self.n_params = sum(p.numel() for p in self.raw_model.parameters())
        self.flops_per_token = flops.flops_per_token(self.mc, tc.seq_len, training=True)
        self.wrapped = wrap_model(self.raw_model, env, self.parallel, mixed_dtype=self.autocast)
        # compile the wrapped model; `self.wrapped` stays reachable for DDP's no_sync
        self.model = torch.compile(self.wrapped) if tc.compile else self.wrapped
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # The LM head + cross-entropy fused (no logits tensor): on CPU in fp32, for the bare model. On a
        # small CPU model with a 2k vocabulary the head is most of the FLOPs and, unfused, the (B, T, V)
        # logits, log-softmax and gradient are most of the memory traffic.
        # One process only: FSDP2's fully_shard wraps the model in place (`self.model is self.raw_model`
        # still holds), and `hidden_states` would bypass the root module's unsharding hook.
        self.fused_head = (env.device.type == "cpu" and self.autocast is None and not env.distributed
                           and self.model is self.raw_model and isinstance(self.raw_model, PhiForCausalLM))
        self.optimizer = make_optimizer(self.model, tc, env.device)
        self.scheduler = make_scheduler(self.optimizer, tc.lr, tc.warmup_steps, tc.max_steps, tc.min_lr_ratio)
        self.scaler = DynamicLossScaler(enabled=tc.precision == "fp16")
        self.sampler = BatchSampler(len(train), tc.global_batch_size, seed)
        # each rank draws its own dropout masks; reproducible from (seed, rank)
        torch.manual_seed(seed * 1000 + 17 + env.rank)
        np.random.seed((seed * 1000 + 17 + env.rank) % 2**32)
        self.step = 0
        self.resumed_from: int | None = None

    # ------------------------------------------------------------------ state
    def mfu(self, tokens_per_s: float | None) -> float | None:
        """MFU of this run over all its ranks (a CPU's peak is measured, a GPU's read from its data sheet)."""
        peak = flops.device_peak_flops(self.env.device, self.tc.precision)
        if not peak or not tokens_per_s:  # an unknown GPU, or no steady-state step yet
            return None
        return flops.mfu(tokens_per_s, self.mc, self.tc.seq_len, peak_flops=peak, n_devices=self.env.world_size)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs: `model` (the full weights by name) and `optimizer` (its full state,
        parameters by name) on the CPU of rank 0 (empty on the other ranks), `scheduler`, `scaler`,
        `rng` (every rank's generators, in rank order), the data position (`step`, `data`), and
        `world_size` and `train_config` to check a resume against. A collective: every rank calls it.
        Tensors on the CPU share storage with the live model and optimizer: copy them to keep a snapshot."""
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model, optimizer = get_state_dict(self.raw_model, self.optimizer, options=_state_options(cpu_offload=True))
        return {"model": model, "optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": gather_objects(ckpt.rng_state(), self.env),
                "step": self.step, "world_size": self.env.world_size,
                "data": {"step": self.step, "samples_seen": self.step * self.tc.global_batch_size,
                         "epochs": self.sampler.epochs_done(self.step), "seed": self.seed},
                "train_config": dataclasses.asdict(self.tc)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()` (a collective under several ranks). Every rank passes the small
        entries; the `model` and `optimizer` entries are read on rank 0 only (the other ranks may omit
        them) and sent to every rank, FSDP2 ranks receiving their shards alone."""
        from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

        optimizer = state.get("optimizer") or {}
        if optimizer:
            optimizer = named_optimizer_state(optimizer, self.raw_model, self.optimizer)
        # Two calls, not `set_state_dict`: that one skips the model on a rank whose model entry is empty,
        # and ranks 1.. would then miss the broadcast rank 0 starts (a hang).
        opts = _state_options(broadcast_from_rank0=self.env.distributed)
        set_model_state_dict(self.raw_model, state.get("model") or {}, options=opts)
        set_optimizer_state_dict(self.raw_model, self.optimizer, optimizer, options=opts)
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        ckpt.set_rng_state(rngs[self.env.rank] if self.env.rank < len(rngs) else rngs[0])
        self.step = int(state["step"])

    def _write_hf(self, model_state: dict[str, torch.Tensor], out: Path) -> None:
        """The HF export of a full model state, through an unsharded CPU model built on the meta device
        (no random initialisation of a 1.3B model)."""
        with torch.device("meta"):
            m = PhiForCausalLM(self.mc)
        m.load_state_dict(model_state, assign=True)
        save_checkpoint(m, self.tokenizer, out)

    def save(self) -> Path | None:
        """Write checkpoint `step` (a collective: every rank calls it; rank 0 writes)."""
        state = self.state_dict()
        path = None
        if self.env.is_main:
            model_state = state.pop("model")
            path = ckpt.write_checkpoint(self.ckpt_root, self.step, model_state, state,
                                         write_hf=lambda out: self._write_hf(model_state, out), keep=self.keep)
        barrier(self.env)
        return path

    def try_resume(self) -> int | None:
        """Load the newest good checkpoint, if any; returns its step. Only rank 0 reads it (8 copies of
        a 1.3B model's full Adam state would not fit host memory)."""
        good = broadcast_object(str(ckpt.latest_good(self.ckpt_root) or "") if self.env.is_main else None, self.env)
        if not good:
            return None
        state: dict[str, Any] = {}
        if self.env.is_main:
            model_state, state = ckpt.load_checkpoint_state(Path(good))
            state["model"] = model_state
        small = broadcast_object({k: v for k, v in state.items() if k not in ("model", "optimizer")}, self.env)
        if not _same_config(small.get("train_config"), self.tc):
            print(f"note: {good} was written with another training config; starting afresh")
            return None
        if small["world_size"] != self.env.world_size:
            # weights/optimizer are world-size independent; per-rank dropout RNG streams are not
            print(f"note: resuming a {small['world_size']}-rank checkpoint on {self.env.world_size} ranks "
                  f"(not bit-exact: RNG streams differ)")
        self.load_state_dict({**state, **small})
        self.resumed_from = self.step
        return self.step

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if self.val is None or len(self.val) == 0 or self.tc.eval_batches <= 0:
            return None
        mb, world = self.micro, self.env.world_size
        # the same held-out sequences whatever the number of ranks (eval_batches x micro_batch_size)
        n = min(len(self.val), self.tc.eval_batches * self.tc.micro_batch_size)
        n -= n % world  # equal shares: under FSDP every rank must run the same forwards
        if n == 0:
            return None
        idx = np.arange(n)[self.env.rank::world]
        was_training = self.model.training
        self.model.eval()
        tot = torch.zeros(2, dtype=torch.float64, device=self.env.device)
        for i in range(0, len(idx), mb):
            chunk = idx[i:i + mb]
            x, y = self.val.batch(chunk)
            x, y = x.to(self.env.device), y.to(self.env.device)
            tot[0] += micro_loss_sum(self.model, x, y, self.autocast, self.env.device, self.fused_head).double()
            tot[1] += int((y[:, 1:] != IGNORE_INDEX).sum())
        if was_training:
            self.model.train()
        all_reduce_sum(tot, self.env)
        return float(tot[0] / tot[1]) if tot[1] > 0 else None

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, Any]:
        tc, env = self.tc, self.env
        t0 = time.perf_counter()
        gidx = self.sampler.global_indices(self.step)
        n_glob = self.train.n_targets(gidx)
        micro = self.sampler.rank_micro_batches(self.step, env.rank, env.world_size, self.micro)
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
        for j, idx in enumerate(micro):
            x, y = self.train.batch(idx)
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            last = j == len(micro) - 1
            with no_grad_sync(self.wrapped, active=not last):
                ce = micro_loss_sum(self.model, x, y, self.autocast, env.device, self.fused_head)
                loss = ce * (env.world_size / max(1, n_glob))
                self.scaler.scale_loss(loss).backward()
            loss_sum += ce.detach().double()
        if self.after_backward is not None:
            self.after_backward(self.step, self.model)
        self.scaler.unscale_(self.params)
        grad_norm = _grad_norm(self.params, tc.grad_clip)
        skipped = self.scaler.update(grad_norm)
        if not skipped:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()  # the schedule follows the step count, skipped or not (as DeepSpeed's fp16 does not)
        all_reduce_sum(loss_sum, env)
        self.step += 1
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tokens = tc.global_batch_size * tc.seq_len
        tps = tokens / dt
        rec = {"step": self.step, "loss": float(loss_sum) / max(1, n_glob), "lr": lr, "grad_norm": grad_norm,
               "tokens": self.step * tokens, "tokens_per_s": tps, "step_time_s": dt,
               "mfu": self.mfu(tps),
               "epoch": self.sampler.epochs_done(self.step), "skipped": skipped}
        if self.scaler.enabled:
            rec["loss_scale"] = self.scaler.scale
        return rec

    # ------------------------------------------------------------------ the run
    def _truncate_metrics(self, upto: int) -> None:
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= upto:
                    keep.append(line)
            except json.JSONDecodeError:
                break  # a torn last line from a kill
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(s + "\n" for s in keep))
        os.replace(tmp, self.metrics_path)

    def fit(self, resume: bool = True) -> FitResult:
        tc, env = self.tc, self.env
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.try_resume()
        if env.is_main:
            self._truncate_metrics(self.step)
        self.model.train()
        t_start = time.time()
        last: dict[str, Any] = {}
        val_loss = None
        times: list[float] = []
        stop_at = tc.max_steps if self.max_steps_this_call is None else min(tc.max_steps, self.step + self.max_steps_this_call)
        bar = tqdm(total=tc.max_steps, initial=self.step, desc=f"training {self.out_dir.name}", unit="step",
                   disable=not (self.progress and env.is_main), mininterval=1.0)
        mf = open(self.metrics_path, "a") if env.is_main else None
        try:
            while self.step < stop_at:
                rec = self.train_step()
                times.append(rec["step_time_s"])
                if self.step % tc.eval_interval == 0 or self.step == tc.max_steps:
                    val_loss = self.evaluate()
                    rec["val_loss"] = val_loss
                if mf is not None:
                    mf.write(json.dumps(rec) + "\n")
                    mf.flush()
                last = rec
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", lr=f"{rec['lr']:.2e}", tok_s=f"{rec['tokens_per_s']:,.0f}")
                if self.step % tc.checkpoint_interval == 0 and self.step < tc.max_steps:
                    self.save()
        finally:
            bar.close()
            if mf is not None:
                mf.close()
        # steady-state throughput: skip the first step (allocation, compilation)
        steady = times[1:] if len(times) > 1 else times
        tps = (tc.global_batch_size * tc.seq_len * len(steady) / sum(steady)) if steady else None
        targets = self._target_tokens_seen()
        return FitResult(
            steps=self.step, tokens_seen=self.step * tc.global_batch_size * tc.seq_len, target_tokens_seen=targets,
            epochs=self.sampler.epochs_done(self.step), train_sequences=len(self.train),
            final_loss=last.get("loss"), final_val_loss=val_loss, tokens_per_s=tps,
            mfu=self.mfu(tps) if tps else None,
            wall_s=time.time() - t_start, resumed_from_step=self.resumed_from, skipped_steps=self.scaler.skipped_steps,
            n_params=self.n_params, world_size=env.world_size, model_backend=MODEL_BACKEND,
            out_dir=str(self.out_dir))

    def _target_tokens_seen(self) -> int:
        return int(sum(self.train.n_targets(self.sampler.global_indices(s)) for s in range(self.step))) \
            if self.step * self.tc.global_batch_size <= 4_000_000 else -1

    def export_final(self, final_dir: Path) -> Path | None:
        """The final model in HF format (atomic), written by rank 0 (a collective: every rank calls it)."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        model_state = get_model_state_dict(self.raw_model, options=_state_options(cpu_offload=True))
        path = None
        if self.env.is_main:
            path = ckpt.write_final(lambda out: self._write_hf(model_state, out), final_dir)
        barrier(self.env)
        return path


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl (a torn last line from a kill is ignored)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def clean_run_dir(out_dir: Path) -> None:
    """Remove a previous run's checkpoints and metrics (for `force`)."""
    for name in ("checkpoints", "metrics.jsonl", "final", "result.json"):
        p = Path(out_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def write_result(result: FitResult, out_dir: Path) -> None:
    write_json_atomic(Path(out_dir) / "result.json", result.to_dict())
