"""The phi-1 model (paper §2.3): config presets, model, HF conversion, tokenizer, generation, FLOPs.

    from phi_utils.model import ModelConfig, PhiForCausalLM, get_model_config, save_checkpoint, load_checkpoint
    mc = get_model_config("tiny", vocab_size=len(tokenizer))   # presets: phi-1, phi-1-small, tiny, smoke
                                                               # (vocab rounded up to a multiple of 64;
                                                               #  overrides: attn_pdrop=0.1, resid_pdrop=0.1, ...)
    model = PhiForCausalLM(mc)                                 # model.py alone: the readable path
    fast.install(model)                                        # its fast paths swapped in, same weights

Forward (returns a plain tensor, never a tuple):

    logits = model(input_ids, attention_mask=None, position_ids=None, past_key_values=None)
    # input_ids (B, T) long -> logits (B, T, vocab_size) in the model's dtype
    # attention_mask (B, past+T): 1 = token, 0 = left padding (None = no padding, fast causal path)
    # position_ids (B, T): default from the mask, else past..past+T-1
    # past_key_values: a KVCache from model.new_cache(B, max_len), updated in place (no use_cache flag)
    loss = causal_lm_loss(logits, labels)   # labels (B, T) aligned with input_ids (shifted inside,
                                            # -100 ignored), as transformers' PhiForCausalLM
    model.hidden_states(...)                # same arguments, final-LayerNorm states (B, T, C)
    model.gradient_checkpointing = True     # recompute blocks in backward

Checkpoints (Hugging Face format, loadable by transformers.AutoModelForCausalLM):

    save_checkpoint(model, tokenizer, out_dir)           # config.json, model.safetensors, tokenizer files
    model, tokenizer = load_checkpoint(dir_or_hub_name)  # CheckpointError names a corrupt/partial file
    to_hf_model(model) / from_hf_model(hf_model)          # in-memory conversion with transformers

Submodules: `generate` (batched generation with stop sequences), `tokenizer` (load/train,
`run_tokenizer`), `flops` (`flops_per_token`, `mfu`), `report` (notebook 05: `run_model_card`),
`fast` (FlashAttention and the CPU kernels: `fast.install(model)`; `load_checkpoint` and the Trainer's
`build_model` install them).
"""

from .config import PRESET_NAMES, ModelConfig, get_model_config
from .convert import (CheckpointError, from_hf_model, from_hf_state_dict, load_checkpoint, save_checkpoint,
                      to_hf_model, to_hf_state_dict)
from .model import KVCache, PhiForCausalLM, causal_lm_loss

__all__ = [
    "PRESET_NAMES", "ModelConfig", "get_model_config", "PhiForCausalLM", "KVCache", "causal_lm_loss",
    "CheckpointError", "save_checkpoint", "load_checkpoint", "to_hf_model", "from_hf_model",
    "to_hf_state_dict", "from_hf_state_dict",
]
