"""Notebook 05's computations: parameter tables, the parity check against transformers,
partial-rotary illustration, FLOPs budget, and the `model_card` step that records them."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from ..config import ProfileConfig
from ..rundir import RunDir
from .config import ModelConfig, get_model_config
from .flops import PEAK_FLOPS, flops_per_token, matmul_params, training_flops
from .model import PhiForCausalLM
from .fast import install

PAPER_TOKENS = 51e9
"""Tokens seen by phi-1 in all (paper §2.3 / notes: ~8 passes over ~7B tokens incl. finetuning, 50-51B)."""
PAPER_GPU_HOURS = 770.0
"""Paper-reported compute: 'about 770 GPU hours' on A100s (4 days on 8 A100s)."""


def _layer_scaled(count_fn: Any, mc: ModelConfig) -> Any:
    """count(mc) from models of 1 and 2 layers (every layer has the same shape): exact and cheap."""
    if mc.n_layer <= 2:
        return count_fn(mc)
    c1, c2 = count_fn(dataclasses.replace(mc, n_layer=1)), count_fn(dataclasses.replace(mc, n_layer=2))
    if isinstance(c1, dict):
        return {k: c1[k] + (mc.n_layer - 1) * (c2[k] - c1[k]) for k in c1}
    return c1 + (mc.n_layer - 1) * (c2 - c1)


def _breakdown(mc: ModelConfig) -> dict[str, int]:
    with torch.device("meta"):
        m = PhiForCausalLM(mc)
    parts = {"embedding": 0, "attention": 0, "mlp": 0, "layernorms": 0, "lm_head": 0}
    for name, p in m.named_parameters():
        key = ("embedding" if "wte" in name else "attention" if ".attn." in name else "mlp" if ".mlp." in name
               else "lm_head" if name.startswith("lm_head") else "layernorms")
        parts[key] += p.numel()
    return parts


def parameter_breakdown(mc: ModelConfig) -> dict[str, int]:
    """Parameters by part (exact; counted on the meta device, so phi-1 costs nothing)."""
    return _layer_scaled(_breakdown, mc)


def _hf_count(mc: ModelConfig) -> int:
    import transformers

    with torch.device("meta"):
        return sum(p.numel() for p in transformers.PhiForCausalLM(mc.to_hf_config()).parameters())


def transformers_parameter_count(mc: ModelConfig) -> int:
    """Parameters of transformers' PhiForCausalLM with the same config (meta device)."""
    return _layer_scaled(_hf_count, mc)


def parameter_table(profile_model: ModelConfig) -> list[dict[str, Any]]:
    """One row per model: phi-1, phi-1-small and this profile's model, with exact counts."""
    rows = []
    for label, mc in (("phi-1", get_model_config("phi-1")), ("phi-1-small", get_model_config("phi-1-small")),
                      (f"this run ({profile_model.name})", profile_model)):
        parts = parameter_breakdown(mc)
        total = sum(parts.values())
        rows.append({
            "model": label, "layers": mc.n_layer, "hidden": mc.n_embd, "mlp_inner": mc.intermediate_size,
            "heads x dim": f"{mc.n_head} x {mc.head_dim}", "rotary dims": f"{mc.rotary_dim} of {mc.head_dim}",
            "context": mc.block_size, "vocab": mc.vocab_size, "params": total,
            "non-embedding params": total - parts["embedding"] - parts["lm_head"],
            "transformers PhiForCausalLM params": transformers_parameter_count(mc), **{f"{k}": v for k, v in parts.items()},
        })
    return rows


def parity_config(mc: ModelConfig, max_params: float = 3e8) -> ModelConfig:
    """The config used for the live parity check: `mc`, with fewer layers if it is too big for CPU RAM
    (every layer has the same shape, so 2 layers test the same code)."""
    with torch.device("meta"):
        n = PhiForCausalLM(mc).num_parameters()
    return mc if n <= max_params else dataclasses.replace(mc, n_layer=2)


def parity_check(mc: ModelConfig, seed: int = 0, batch: int = 2, seq_len: int = 48,
                 new_tokens: int = 12) -> dict[str, Any]:
    """Random weights -> our model and transformers' PhiForCausalLM with the same weights; compare
    fp32 logits (plain and left-padded batch), the KV-cache decode, and greedy generation."""
    from .convert import to_hf_model
    from .generate import generate_ids

    torch.manual_seed(seed)
    ours = install(PhiForCausalLM(mc)).eval()  # the model as runs use it
    hf = to_hf_model(ours).eval()
    T = min(seq_len, mc.block_size)
    x = torch.randint(0, mc.vocab_size, (batch, T))
    mask = torch.ones_like(x)
    mask[0, : T // 3] = 0  # left padding on row 0
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.inference_mode():
        a, b = ours(x), hf(x).logits
        ap, bp = ours(x, attention_mask=mask), hf(x, attention_mask=mask, position_ids=pos).logits
        cache = ours.new_cache(batch, T)
        inc = torch.cat([ours(x[:, : T // 2], past_key_values=cache)] +
                        [ours(x[:, t:t + 1], past_key_values=cache) for t in range(T // 2, T)], dim=1)
        prompt = x[1, :8].tolist()
        g_ours = generate_ids(ours, [prompt], new_tokens)[0]
        g_hf = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, 8, dtype=torch.long),
                           max_new_tokens=new_tokens, do_sample=False, pad_token_id=0)[0, 8:].tolist()
    return {
        "config": f"{mc.name}: {mc.n_layer}L x {mc.n_embd}d, {mc.n_head}x{mc.head_dim} heads, rotary {mc.rotary_dim}",
        "logits_max_abs_diff": float((a - b).abs().max()),
        "padded_logits_max_abs_diff": float((ap - bp)[mask.bool()].abs().max()),
        "kv_cache_max_abs_diff": float((inc - a).abs().max()),
        "greedy_tokens_equal": g_ours == g_hf,
        "greedy_tokens": g_ours,
    }


def rotary_angles(mc: ModelConfig, n_positions: int = 64) -> torch.Tensor:
    """Rotation angle (radians, mod 2*pi) per (position, head dim): 0 on the pass-through dims."""
    rd = mc.rotary_dim
    inv_freq = 1.0 / (mc.rope_theta ** (torch.arange(0, rd, 2, dtype=torch.float64) / rd))
    ang = torch.arange(n_positions, dtype=torch.float64)[:, None] * torch.cat([inv_freq, inv_freq])[None]
    out = torch.zeros(n_positions, mc.head_dim, dtype=torch.float64)
    out[:, :rd] = torch.remainder(ang, 2 * torch.pi)
    return out


def flops_budget(n_params: float = 1.3e9, tokens: float = PAPER_TOKENS, seq_len: int = 2048) -> dict[str, Any]:
    """The paper run's compute: 6*N*D, the same with attention (per-token count), and the MFU that
    770 A100-hours imply."""
    mc = get_model_config("phi-1")
    six_nd = training_flops(n_params, tokens)
    with_attn = flops_per_token(mc, seq_len) * tokens
    a100 = PEAK_FLOPS["A100"]["fp16"]
    return {
        "N (paper name)": n_params, "D tokens": tokens, "6ND": six_nd,
        "6ND with N = all 1.418B params": training_flops(sum(parameter_breakdown(mc).values()), tokens),
        "per-token count incl. attention (T=2048) x D": with_attn,
        "matmul params": matmul_params(mc),
        "paper-reported A100 hours": PAPER_GPU_HOURS,
        "implied MFU (6ND / (770 A100-h x 312 TFLOP/s))": six_nd / (PAPER_GPU_HOURS * 3600 * a100),
        "implied MFU incl. attention": with_attn / (PAPER_GPU_HOURS * 3600 * a100),
    }


def attention_flops_share(mc: ModelConfig, seq_lens: tuple[int, ...] = (256, 512, 1024, 2048, 4096)) -> list[dict[str, float]]:
    """Share of training FLOPs spent in attention score/value products, by sequence length."""
    rows = []
    for T in seq_lens:
        total = flops_per_token(mc, T)
        rows.append({"seq_len": T, "flops_per_token": total, "attention_share": 12 * mc.n_layer * mc.n_embd * T / total})
    return rows


@dataclasses.dataclass
class ModelCardResult:
    """The `model_card` step's `model_card.json`, typed (what `run_model_card` returns)."""

    model_config: ModelConfig
    """This profile's model (with the tokenizer's vocabulary size)."""
    parameter_table: list[dict[str, Any]]
    """One row per model (phi-1, phi-1-small, this run's): exact parameter counts (`parameter_table`)."""
    parity: dict[str, Any]
    """Our model vs transformers' PhiForCausalLM on the same weights (`parity_check`)."""
    flops_budget_paper: dict[str, Any]
    """The paper run's compute and implied MFU (`flops_budget`)."""
    flops_per_token_this_run: float
    """Training FLOPs per token of this run's model at `pretrain.seq_len`."""
    attention_flops_share: list[dict[str, float]]
    """Attention's share of the training FLOPs by sequence length (`attention_flops_share`)."""
    seconds: float
    """Wall time of the computations."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCardResult":
        """From `model_card.json`'s dict (its keys are the fields; `model_config` is `asdict(ModelConfig)`)."""
        return cls(**{**d, "model_config": ModelConfig(**d["model_config"])})


def run_model_card(cfg: ProfileConfig, rd: RunDir, vocab_size: int, force: bool = False) -> ModelCardResult:
    """Step `model_card`: parameter table, parity check and FLOPs for this profile's model, as JSON."""
    from ..rundir import read_result, write_json_atomic

    cfg = rd.view("model_card", cfg)
    out = rd.path / "model_card" / "model_card.json"
    with rd.step("model_card", force, config={"model": cfg.pretrain.model, "vocab_size": vocab_size}) as rec:
        if rec is None:
            return read_result(ModelCardResult, out)
        mc = get_model_config(cfg.pretrain.model, vocab_size=vocab_size)
        t0 = time.time()
        card = {
            "model_config": dataclasses.asdict(mc),
            "parameter_table": parameter_table(mc),
            "parity": parity_check(parity_config(mc), seed=cfg.seed),
            "flops_budget_paper": flops_budget(),
            "flops_per_token_this_run": flops_per_token(mc, cfg.pretrain.seq_len),
            "attention_flops_share": attention_flops_share(mc),
        }
        card["seconds"] = round(time.time() - t0, 2)
        write_json_atomic(out, card)
        rec.counts.update(params=card["parameter_table"][-1]["params"])
    return ModelCardResult.from_dict(card)
