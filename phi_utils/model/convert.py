"""Weight conversion with transformers' `PhiForCausalLM`, and HF-format checkpoints.

Names (ours <- transformers):
    transformer.wte.weight            <- model.embed_tokens.weight
    transformer.h.{i}.ln.*            <- model.layers.{i}.input_layernorm.*
    transformer.h.{i}.attn.qkv.*      <- cat(model.layers.{i}.self_attn.{q,k,v}_proj.*)   (dim 0)
    transformer.h.{i}.attn.proj.*     <- model.layers.{i}.self_attn.dense.*
    transformer.h.{i}.mlp.fc{1,2}.*   <- model.layers.{i}.mlp.fc{1,2}.*
    transformer.ln_f.*                <- model.final_layernorm.*
    lm_head.*                         <- lm_head.*
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .model import PhiForCausalLM
from .fast import install


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, partial or of an unsupported kind; the message names the file."""


_SIMPLE = [  # (ours, transformers) patterns for one-to-one tensors; {i} = layer index
    ("transformer.wte.weight", "model.embed_tokens.weight"),
    ("transformer.ln_f.{p}", "model.final_layernorm.{p}"),
    ("lm_head.{p}", "lm_head.{p}"),
    ("transformer.h.{i}.ln.{p}", "model.layers.{i}.input_layernorm.{p}"),
    ("transformer.h.{i}.attn.proj.{p}", "model.layers.{i}.self_attn.dense.{p}"),
    ("transformer.h.{i}.mlp.fc1.{p}", "model.layers.{i}.mlp.fc1.{p}"),
    ("transformer.h.{i}.mlp.fc2.{p}", "model.layers.{i}.mlp.fc2.{p}"),
]


def _rx(pattern: str) -> re.Pattern[str]:
    esc = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(esc + "$")


_OURS_RX = [(_rx(a), b) for a, b in _SIMPLE]
_HF_RX = [(_rx(b), a) for a, b in _SIMPLE]
_OURS_QKV = _rx("transformer.h.{i}.attn.qkv.{p}")
_HF_QKV = re.compile(r"model\.layers\.(?P<i>\d+)\.self_attn\.(?P<w>[qkv])_proj\.(?P<p>weight|bias)$")


def to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict -> transformers Phi names (fused qkv split into q/k/v_proj)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        m = _OURS_QKV.match(name)
        if m:
            for w, part in zip("qkv", t.chunk(3, dim=0)):
                out[f"model.layers.{m['i']}.self_attn.{w}_proj.{m['p']}"] = part.contiguous()
            continue
        for rx, target in _OURS_RX:
            m = rx.match(name)
            if m:
                out[target.format(**m.groupdict())] = t
                break
        else:
            raise KeyError(f"no transformers name for parameter {name!r}")
    return out


def from_hf_state_dict(sd: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, torch.Tensor]:
    """transformers Phi names -> ours (q/k/v_proj fused into qkv). Unknown keys are an error naming `source`."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, t in sd.items():
        m = _HF_QKV.match(name)
        if m:
            qkv.setdefault((m["i"], m["p"]), {})[m["w"]] = t
            continue
        if "rotary_emb." in name and name.endswith("inv_freq"):  # old checkpoints saved this buffer
            continue
        for rx, target in _HF_RX:
            m = rx.match(name)
            if m:
                out[target.format(**m.groupdict())] = t
                break
        else:
            raise CheckpointError(f"{source}: unexpected tensor {name!r} (not a transformers Phi checkpoint?)")
    for (i, p), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{source}: layer {i} is missing some of q/k/v_proj.{p}")
        out[f"transformer.h.{i}.attn.qkv.{p}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def to_hf_model(model: PhiForCausalLM) -> Any:
    """A transformers `PhiForCausalLM` with the same weights (fp32 eager/sdpa model of the same config)."""
    import transformers

    hf = transformers.PhiForCausalLM(model.config.to_hf_config())
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=False)
    missing = [k for k in missing if not k.endswith("inv_freq")]
    if missing or unexpected:
        raise RuntimeError(f"conversion mismatch: missing {missing}, unexpected {unexpected}")
    return hf.to(model.dtype).eval()


def from_hf_model(hf_model: Any, fast_paths: bool = True) -> PhiForCausalLM:
    """Our model with the weights of a transformers `PhiForCausalLM` (same dtype and device), with
    `fast.py`'s paths installed unless `fast_paths=False`."""
    cfg = ModelConfig.from_hf_dict(hf_model.config.to_dict())
    p = next(hf_model.parameters())
    model = install(PhiForCausalLM(cfg)) if fast_paths else PhiForCausalLM(cfg)
    model.load_state_dict(from_hf_state_dict(hf_model.state_dict(), "transformers model"))
    return model.to(device=p.device, dtype=p.dtype)


# --------------------------------------------------------------------------- checkpoints on disk
def save_checkpoint(model: PhiForCausalLM, tokenizer: Any, out_dir: str | Path,
                    extra_config: dict[str, Any] | None = None) -> Path:
    """Write a Hugging Face checkpoint: `config.json` (model_type phi, `PhiForCausalLM`),
    `model.safetensors` (transformers names), `generation_config.json` and the tokenizer files.
    `transformers.AutoModelForCausalLM.from_pretrained(out_dir)` loads it. Returns `out_dir`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    model = getattr(model, "module", model)     # unwrap DDP
    hf_cfg = model.config.to_hf_config()
    if tokenizer is not None and model.config.eos_token_id is None and tokenizer.eos_token_id is not None:
        hf_cfg.eos_token_id = tokenizer.eos_token_id
    hf_cfg.architectures = ["PhiForCausalLM"]
    cfg_dict = hf_cfg.to_dict()
    # transformers 5 writes `dtype`, 4.x `torch_dtype`
    cfg_dict["dtype" if "dtype" in cfg_dict else "torch_dtype"] = str(model.dtype).replace("torch.", "")
    cfg_dict["phi_utils_preset"] = model.config.name
    cfg_dict.update(extra_config or {})
    sd = {k: v.detach().contiguous().cpu() for k, v in to_hf_state_dict(model.state_dict()).items()}
    tmp = out / "model.safetensors.tmp"
    save_file(sd, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=2, sort_keys=True, default=str))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


_TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "added_tokens.json"]


def _resolve(path_or_name: str | Path) -> Path:
    p = Path(path_or_name)
    if p.exists():
        if not p.is_dir():
            raise CheckpointError(f"{p}: a checkpoint must be a directory with config.json and model.safetensors")
        return p
    if str(path_or_name).startswith((".", "/", "~")) or str(path_or_name).count("/") > 1:
        raise CheckpointError(f"{p}: no such checkpoint directory")
    try:  # a hub name such as "microsoft/phi-1"
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_name), allow_patterns=[
            "config.json", "*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
            "pytorch_model.bin.index.json", *_TOKENIZER_FILES]))
    except Exception as e:  # offline, unknown repo, ...
        raise CheckpointError(f"{path_or_name}: not a local directory and not downloadable from the hub ({e})") from e


def _read_weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    index = next((d / n for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json") if (d / n).exists()), None)
    if index is not None:
        try:
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index}: corrupt weight index ({e})") from e
    elif (d / "model.safetensors").exists():
        files = ["model.safetensors"]
    elif (d / "pytorch_model.bin").exists():
        files = ["pytorch_model.bin"]
    else:
        raise CheckpointError(f"{d / 'model.safetensors'}: missing (no weights in {d})")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        fp = d / f
        if not fp.exists():
            raise CheckpointError(f"{fp}: missing (listed in the weight index)")
        try:
            sd.update(load_file(str(fp)) if f.endswith(".safetensors") else
                      torch.load(fp, map_location="cpu", weights_only=True))
        except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as e:
            raise CheckpointError(f"{fp}: corrupt or partial weights file ({e})") from e
    return sd


def load_checkpoint(path_or_name: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None, load_tokenizer: bool = True,
                    fast_paths: bool = True) -> tuple[PhiForCausalLM, Any]:
    """Load a transformers Phi checkpoint (a local directory or a hub name such as `microsoft/phi-1`)
    into our model, with `fast.py`'s paths installed unless `fast_paths=False`. Returns
    `(model.eval(), tokenizer or None)`.

    Refuses, with a `CheckpointError` naming the file, a missing/corrupt `config.json`, a
    truncated or corrupt weights file, and missing, extra or wrongly shaped tensors.
    """
    d = _resolve(path_or_name)
    cfg_path = d / "config.json"
    try:
        cfg_dict = json.loads(cfg_path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{cfg_path}: missing") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    try:
        cfg = ModelConfig.from_hf_dict(cfg_dict, name=str(path_or_name))
    except ValueError as e:
        raise CheckpointError(f"{cfg_path}: {e}") from e
    weights_file = d / "model.safetensors"
    sd = from_hf_state_dict(_read_weights(d), str(weights_file))
    with torch.device("meta"):
        model = PhiForCausalLM(cfg)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise CheckpointError(f"{weights_file}: partial checkpoint, {len(missing)} tensors missing (e.g. {missing[:3]})")
    for k, t in sd.items():
        if k not in expected:
            raise CheckpointError(f"{weights_file}: unexpected tensor {k!r}")
        if t.shape != expected[k]:
            raise CheckpointError(f"{weights_file}: tensor {k!r} has shape {tuple(t.shape)}, config.json implies {tuple(expected[k])}")
    model.load_state_dict(sd, assign=True)
    if fast_paths:
        install(model)
    model = model.to(device=device, dtype=dtype or torch.float32).eval()
    tok = None
    if load_tokenizer and any((d / f).exists() for f in ("tokenizer.json", "vocab.json")):
        from .tokenizer import load_tokenizer as _load_tok

        tok = _load_tok(str(d))
    return model, tok
