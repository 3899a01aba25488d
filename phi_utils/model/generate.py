"""Batched generation for evaluation: left padding, KV cache, greedy / temperature + top-p,
n samples per prompt, stop sequences, early exit when every row has stopped.

Prompts of different lengths are prefilled row by row without their padding (`_prefill`), and
rows that finish (stop sequence or `<|endoftext|>`) are dropped from the batch, so a batch costs
what its longest completion costs, not `max_new_tokens` for every row.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from ..progress import tqdm

from .fast import transposed_weights
from .model import KVCache, PhiForCausalLM

log = logging.getLogger(__name__)

HUMANEVAL_STOP: tuple[str, ...] = ("\ndef", "\nclass", "\nif", "\nprint", "\n#")
"""The usual HumanEval stop sequences (Codex paper / bigcode harness): a new top-level statement ends the function."""


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any stop sequence."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Next token per row from logits (B, V): argmax when temperature == 0, else nucleus sampling."""
    if temperature <= 0.0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p       # keep the smallest prefix with mass >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def _prefill(model: PhiForCausalLM, ids: torch.Tensor, mask: torch.Tensor, lengths: list[int],
             cache: KVCache) -> torch.Tensor:
    """Run the left-padded prompts (B, L) into `cache`; next-token logits (B, V).

    Prompts of equal length go in one batch. Otherwise each row is run on its own, without its
    padding, straight into its slots of the shared cache: a batch of mixed-length prompts costs
    the sum of their lengths instead of B x the longest (transformers pays for the padding).
    """
    B, L = ids.shape
    if min(lengths) == L:
        h = model.hidden_states(ids, attention_mask=mask, past_key_values=cache)
        return model.lm_head(h[:, -1])
    last = []
    for i, n in enumerate(lengths):
        pad = L - n
        for k, v in zip(cache.k, cache.v):  # padding slots are masked, but 0 * NaN would still be NaN
            k[i, :, :pad] = 0
            v[i, :, :pad] = 0
        row = KVCache([k[i:i + 1, :, pad:] for k in cache.k], [v[i:i + 1, :, pad:] for v in cache.v],
                      length=0, max_len=cache.max_len - pad)
        last.append(model.hidden_states(ids[i:i + 1, pad:], past_key_values=row)[:, -1])
    cache.length = L
    return model.lm_head(torch.cat(last))


@torch.inference_mode()
def generate_ids(model: PhiForCausalLM, prompts: list[list[int]], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, eos_token_id: int | None = None, pad_token_id: int = 0,
                 stop_check: Any = None, generator: torch.Generator | None = None) -> list[list[int]]:
    """Generate for token-id prompts of different lengths in one left-padded batch.

    `stop_check(row_index, new_ids) -> bool` is asked after every token (e.g. stop sequences).
    Returns the new ids per row (up to and including the token that triggered a stop or eos).
    """
    B, dev = len(prompts), model.device
    L = max(len(p) for p in prompts)
    ids = torch.full((B, L), pad_token_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding: every row's last prompt token sits at column L-1
        ids[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, L - len(p):] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    with transposed_weights(model):
        cache = model.new_cache(B, L + max_new_tokens)
        logits = _prefill(model, ids, mask, [len(p) for p in prompts], cache)    # (B, V)
        cache.mask_padding(mask)                                              # decoding reads it, no mask per step
        next_pos = mask.sum(1, keepdim=True)                                  # (B, 1) position of the next token
        rows = list(range(B))                                                 # original index of each live row
        out: list[list[int]] = [[] for _ in range(B)]
        for step in range(max_new_tokens):
            tok = _sample(logits, temperature, top_p, generator)              # (b,)
            keep = []
            for j, (r, t) in enumerate(zip(rows, tok.tolist())):
                out[r].append(t)
                done = (eos_token_id is not None and t == eos_token_id) or (stop_check is not None and stop_check(r, out[r]))
                if not done:
                    keep.append(j)
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(rows):  # drop finished rows from the batch and the cache
                sel = torch.tensor(keep, device=dev)
                cache.select(sel)
                rows = [rows[j] for j in keep]
                tok, next_pos = tok[sel], next_pos[sel]
            h = model.hidden_states(tok[:, None], position_ids=next_pos, past_key_values=cache)
            next_pos = next_pos + 1
            logits = model.lm_head(h[:, -1])
    return out


def generate(model: PhiForCausalLM, tokenizer: Any, prompts: list[str], max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, n: int = 1, stop: Sequence[str] | None = None,
             batch_size: int = 16, seed: int = 0, show_progress: bool = True) -> list[list[str]]:
    """Completions for `prompts`: a list per prompt of `n` strings (the prompt itself excluded),
    each cut before the first stop sequence.

    - `temperature` 0 = greedy (then `n` > 1 repeats the same completion); else sampling with `top_p`.
    - `stop`: None = HumanEval's `HUMANEVAL_STOP`; `[]` = only `<|endoftext|>` and `max_new_tokens`.
    - Prompts longer than `block_size - max_new_tokens` tokens keep their last tokens (logged).
    - Rows are sorted by prompt length and batched `batch_size` at a time; results keep input order.
    """
    stop = [s for s in (HUMANEVAL_STOP if stop is None else stop) if s]
    was_training = model.training
    model.eval()
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    limit = max(1, model.config.block_size - max_new_tokens)
    if any(len(e) > limit for e in enc):
        log.warning("some prompts exceed %d tokens (block_size - max_new_tokens); keeping their last tokens", limit)
        enc = [e[-limit:] for e in enc]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)
    tail = max((len(s) for s in stop), default=0) + 1  # a stop string of k chars spans at most k tokens

    def stop_check(_: int, new_ids: list[int]) -> bool:
        return bool(stop) and any(s in tokenizer.decode(new_ids[-tail:]) for s in stop)

    jobs = sorted(((len(enc[i]), i, k) for i in range(len(prompts)) for k in range(n)), reverse=True)
    results: list[list[str]] = [[""] * n for _ in prompts]
    gen = torch.Generator(device=model.device).manual_seed(seed) if temperature > 0 else None
    batches = [jobs[s:s + batch_size] for s in range(0, len(jobs), batch_size)]
    try:
        with transposed_weights(model):  # once for all batches (CPU)
            for batch in tqdm(batches, desc="generate", disable=not show_progress or len(batches) < 2):
                new = generate_ids(model, [enc[i] or [eos or 0] for _, i, _ in batch], max_new_tokens, temperature, top_p,
                                   eos, pad, stop_check, gen)
                for (_, i, k), ids in zip(batch, new):
                    if ids and ids[-1] == eos:
                        ids = ids[:-1]
                    results[i][k] = truncate_at_stop(tokenizer.decode(ids, skip_special_tokens=False), stop)
    finally:
        model.train(was_training)
    return results
