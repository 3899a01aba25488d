"""phi-1 model: parameter counts, parity with transformers' PhiForCausalLM, conversion both ways,
checkpoints, KV cache, padding, generation, tokenizer, FLOPs (issue 4). All on real transformers models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from phi_utils.config import get_profile
from phi_utils.model import (CheckpointError, ModelConfig, PhiForCausalLM, causal_lm_loss, from_hf_model,
                             get_model_config, load_checkpoint, save_checkpoint, to_hf_model)
from phi_utils.model.flops import flops_per_token, matmul_params, mfu, training_flops
from phi_utils.model.generate import HUMANEVAL_STOP, generate, generate_ids, truncate_at_stop
from phi_utils.model.fast import FastRotary, TransposableLinear, attention, install, transposed_weights
from phi_utils.model.model import apply_rotary
from phi_utils.model.tokenizer import EOS, _take_chars, load_tokenizer, run_tokenizer, stdlib_texts, train_tokenizer
from phi_utils.steps import open_run

SHAPES = {
    "smoke": get_model_config("smoke", vocab_size=300),
    "tiny": get_model_config("tiny", vocab_size=512),
    # odd shape: 3 heads of 16 dims, a quarter rotary, non-multiple-of-64 vocab, other theta
    "odd": ModelConfig(vocab_size=97, n_layer=3, n_embd=48, n_head=3, intermediate_size=80, rotary_dim=4,
                       rope_theta=500.0, block_size=64),
    # full rotary
    "full_rotary": ModelConfig(vocab_size=128, n_layer=1, n_embd=64, n_head=2, intermediate_size=128, rotary_dim=32,
                               block_size=64),
}


def _pair(mc: ModelConfig, seed: int = 0) -> tuple[PhiForCausalLM, "transformers.PhiForCausalLM"]:
    torch.manual_seed(seed)
    model = install(PhiForCausalLM(mc)).eval()  # the model as runs use it (fast paths swapped in)
    with torch.no_grad():  # non-trivial LayerNorms and biases so a mapping mistake shows
        for n, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model, to_hf_model(model)


def _left_padded(mc: ModelConfig, lengths: list[int], L: int, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (B, L + extra) and their mask: row i's prompt is its last lengths[i] of the first L
    columns (left padding before it), followed by `extra` real tokens to decode."""
    ids = torch.randint(0, mc.vocab_size, (len(lengths), L + extra))
    mask = torch.ones(len(lengths), L + extra, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :L - n] = 0
    return ids, mask


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(_take_chars(stdlib_texts(), 400_000), 600, show_progress=False)


# --------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("name,approx", [("phi-1", 1.418e9), ("phi-1-small", 357e6)])
def test_parameter_count_equals_transformers(name: str, approx: float) -> None:
    mc = get_model_config(name)  # vocab 51200
    with torch.device("meta"):
        ours = PhiForCausalLM(mc).num_parameters()
        theirs = sum(p.numel() for p in transformers.PhiForCausalLM(mc.to_hf_config()).parameters())
    assert ours == theirs
    assert abs(ours - approx) / approx < 0.005
    assert mc.head_dim == 64 and mc.rotary_dim == 32 and mc.partial_rotary_factor == 0.5


def test_presets_and_vocab_padding() -> None:
    assert get_model_config("tiny", vocab_size=4097).vocab_size == 4160
    assert get_model_config("tiny", vocab_size=4097, pad_vocab_multiple=1).vocab_size == 4097
    assert 1e6 < PhiForCausalLM(get_model_config("tiny", vocab_size=4096)).num_parameters() < 10e6
    with pytest.raises(ValueError, match="unknown model preset"):
        get_model_config("phi-2")
    with pytest.raises(ValueError, match="rotary_dim"):
        get_model_config("tiny", rotary_dim=33)


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("shape", list(SHAPES))
def test_logits_parity_with_transformers(shape: str) -> None:
    mc = SHAPES[shape]
    model, hf = _pair(mc)
    x = torch.randint(0, mc.vocab_size, (3, 23))
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits
    assert ours.shape == (3, 23, mc.vocab_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", ["odd", "full_rotary", "smoke"])
def test_model_file_alone_equals_the_fast_paths(shape: str) -> None:
    """`model.py` alone (the readable path) and with `fast.py` swapped in: the
    same logits (with left padding, and transformers'), gradients, and KV-cache decoding."""
    from phi_utils.model import fast

    mc = SHAPES[shape]
    model, hf = _pair(mc, seed=13)
    plain = PhiForCausalLM(mc).eval()
    plain.load_state_dict(model.state_dict())
    assert {type(m).__module__ for m in plain.modules()}.isdisjoint({fast.__name__})
    assert type(model.transformer.h[0].attn) is fast.FastCausalSelfAttention
    L, lengths = 10, [10, 4, 7]
    ids, mask = _left_padded(mc, lengths, L, extra=3)
    real = mask.bool()
    with torch.no_grad():
        a, b = plain(ids, attention_mask=mask), model(ids, attention_mask=mask)
        theirs = hf(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits
    torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(a[real], theirs[real], atol=1e-5, rtol=0)

    grads = []
    for m in (plain, model):
        m.train()
        m.zero_grad()
        causal_lm_loss(m(ids), ids).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
        m.eval()
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4, msg=n)

    with torch.no_grad():  # the plain path decodes through the same KV cache and recorded padding
        cache = plain.new_cache(3, L + 3)
        plain(ids[:, :L], attention_mask=mask[:, :L], past_key_values=cache)
        cache.mask_padding(mask[:, :L])
        pos = mask[:, :L].sum(1, keepdim=True)
        for t in range(3):
            step = plain(ids[:, L + t:L + t + 1], position_ids=pos + t, past_key_values=cache)
            torch.testing.assert_close(step[:, 0], b[:, L + t], atol=1e-5, rtol=0)
    fast.remove(model)
    assert type(model.transformer.h[0].attn) is not fast.FastCausalSelfAttention
    with torch.no_grad():
        torch.testing.assert_close(model(ids, attention_mask=mask)[real], b[real], atol=1e-5, rtol=0)


def test_parity_with_left_padding_mask_and_loss() -> None:
    mc = SHAPES["odd"]
    model, hf = _pair(mc, seed=1)
    x = torch.randint(0, mc.vocab_size, (2, 12))
    mask = torch.ones_like(x)
    mask[0, :5] = 0
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        ours = model(x, attention_mask=mask)
        theirs = hf(x, attention_mask=mask, position_ids=pos).logits
    torch.testing.assert_close(ours[mask.bool()], theirs[mask.bool()], atol=1e-5, rtol=0)
    labels = x.clone()
    labels[0, :7] = -100
    with torch.no_grad():
        torch.testing.assert_close(causal_lm_loss(model(x), labels), hf(x, labels=labels).loss, atol=1e-5, rtol=0)


def test_conversion_from_transformers_model() -> None:
    mc = SHAPES["tiny"]
    torch.manual_seed(3)
    hf = transformers.PhiForCausalLM(mc.to_hf_config()).eval()
    model = from_hf_model(hf).eval()
    x = torch.randint(0, mc.vocab_size, (2, 17))
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, atol=1e-5, rtol=0)
    # and back again: the state dict survives the round trip exactly
    back = to_hf_model(model).state_dict()
    for k, v in hf.state_dict().items():
        assert torch.equal(back[k], v), k


# --------------------------------------------------------------------------- checkpoints
def test_save_checkpoint_loads_in_transformers_and_back(tmp_path: Path, tok) -> None:
    mc = get_model_config("smoke", vocab_size=len(tok))
    model, _ = _pair(mc, seed=4)
    out = save_checkpoint(model, tok, tmp_path / "ckpt")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "phi" and cfg["architectures"] == ["PhiForCausalLM"]
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert type(hf).__name__ == "PhiForCausalLM"
    x = torch.tensor([tok("def f(x):\n    return x")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), atol=1e-5, rtol=0)
    model2, tok2 = load_checkpoint(out)
    assert tok2 is not None and tok2.eos_token == EOS and len(tok2) == len(tok)
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), k


def test_load_checkpoint_written_by_transformers(tmp_path: Path) -> None:
    mc = SHAPES["odd"]
    torch.manual_seed(5)
    hf = transformers.PhiForCausalLM(mc.to_hf_config()).eval()
    hf.save_pretrained(str(tmp_path))
    model, tok = load_checkpoint(tmp_path)
    assert tok is None
    x = torch.randint(0, mc.vocab_size, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, atol=1e-5, rtol=0)


def test_corrupt_or_partial_checkpoint_is_refused(tmp_path: Path) -> None:
    model, _ = _pair(SHAPES["smoke"])
    good = save_checkpoint(model, None, tmp_path / "good")
    data = (good / "model.safetensors").read_bytes()

    trunc = save_checkpoint(model, None, tmp_path / "trunc")
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(trunc)

    garbage = save_checkpoint(model, None, tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(garbage)

    from safetensors.torch import load_file, save_file
    partial = save_checkpoint(model, None, tmp_path / "partial")
    sd = load_file(str(partial / "model.safetensors"))
    sd.pop("model.layers.1.mlp.fc2.weight")
    save_file(sd, str(partial / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(partial)

    badcfg = save_checkpoint(model, None, tmp_path / "badcfg")
    (badcfg / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(badcfg)

    noweights = save_checkpoint(model, None, tmp_path / "noweights")
    (noweights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(noweights)


# --------------------------------------------------------------------------- cache and padding
def test_kv_cache_incremental_decode_equals_full_forward() -> None:
    mc = SHAPES["tiny"]
    model, _ = _pair(mc, seed=6)
    x = torch.randint(0, mc.vocab_size, (2, 20))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(2, 32)
        parts = [model(x[:, :7], past_key_values=cache), model(x[:, 7:12], past_key_values=cache)]  # chunked prefill
        parts += [model(x[:, t:t + 1], past_key_values=cache) for t in range(12, 20)]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)


def test_left_padded_batch_equals_unpadded_rows() -> None:
    mc = SHAPES["tiny"]
    model, _ = _pair(mc, seed=7)
    rows = [torch.randint(0, mc.vocab_size, (n,)) for n in (13, 5, 9)]
    L = 13
    ids = torch.zeros(3, L, dtype=torch.long)
    mask = torch.zeros(3, L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, L - len(r):], mask[i, L - len(r):] = r, 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        assert torch.isfinite(batched).all()  # padding queries must not produce NaN
        for i, r in enumerate(rows):
            torch.testing.assert_close(batched[i, L - len(r):], model(r[None])[0], atol=1e-5, rtol=0)


def test_rowwise_prefill_into_a_dirty_cache_equals_padded_forward() -> None:
    """generate's prefill runs mixed-length rows one by one into their cache slots; the padding slots
    may hold anything (here NaN) and decoding must still equal a full left-padded forward."""
    from phi_utils.model.generate import _prefill

    mc = SHAPES["tiny"]
    model, _ = _pair(mc, seed=10)
    lengths, L = [6, 11, 3], 11
    ids, mask = _left_padded(mc, lengths, L, extra=1)
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        cache = model.new_cache(3, L + 4)
        for t in cache.k + cache.v:
            t.fill_(float("nan"))
        first = _prefill(model, ids[:, :L], mask[:, :L], lengths, cache)
        step = model(ids[:, L:], attention_mask=mask, position_ids=mask[:, :L].sum(1, keepdim=True),
                     past_key_values=cache)
    torch.testing.assert_close(first, full[:, L - 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(step[:, 0], full[:, L], atol=1e-5, rtol=0)


def test_decoding_reads_the_padding_the_cache_recorded() -> None:
    """`KVCache.mask_padding` once, then decoding steps without attention_mask, equal steps that pass
    the mask each time; dropping rows keeps each row's padding."""
    mc = SHAPES["tiny"]
    model, _ = _pair(mc, seed=11)
    L, lengths = 9, [9, 4, 6]
    ids, mask = _left_padded(mc, lengths, L, extra=3)
    with torch.no_grad():
        full = model(ids, attention_mask=mask)
        cache = model.new_cache(3, L + 3)
        model(ids[:, :L], attention_mask=mask[:, :L], past_key_values=cache)
        cache.mask_padding(mask[:, :L])
        pos = mask[:, :L].sum(1, keepdim=True)
        step = model(ids[:, L:L + 1], position_ids=pos, past_key_values=cache)
        torch.testing.assert_close(step[:, 0], full[:, L], atol=1e-5, rtol=0)
        cache.select(torch.tensor([2, 1]))
        rows = torch.tensor([2, 1])
        step = model(ids[rows, L + 1:L + 2], position_ids=pos[rows] + 1, past_key_values=cache)
        torch.testing.assert_close(step[:, 0], full[rows, L + 1], atol=1e-5, rtol=0)
        step = model(ids[rows, L + 2:L + 3], past_key_values=cache)   # positions from the recorded padding
        torch.testing.assert_close(step[:, 0], full[rows, L + 2], atol=1e-5, rtol=0)


def test_transposed_weights_give_the_same_logits_and_are_dropped() -> None:
    model, _ = _pair(SHAPES["odd"], seed=12)
    x = torch.randint(0, 97, (5, 7))
    with torch.no_grad():
        ref = model(x)
        with transposed_weights(model):
            outer = model.lm_head.weight_t
            assert outer is not None
            with transposed_weights(model):    # nested (generate's batches): the same copies, kept
                assert model.lm_head.weight_t is outer
            assert model.lm_head.weight_t is outer
            inside = model(x)
    torch.testing.assert_close(inside, ref, atol=1e-5, rtol=0)
    assert all(getattr(m, "weight_t", None) is None for m in model.modules())
    no_bias = TransposableLinear(6, 4, bias=False)   # the same layer without a bias
    h = torch.randn(3, 6)
    with torch.no_grad():
        no_bias.weight_t = no_bias.weight.t().contiguous()
        torch.testing.assert_close(no_bias(h), h @ no_bias.weight.t())


def test_fused_rotary_equals_rotate_half_reference() -> None:
    rot = FastRotary(head_dim=32, rotary_dim=12, theta=10000.0)
    pos = torch.tensor([[0, 1, 5, 300], [7, 8, 9, 10]])
    cos, sin, R = rot(pos, torch.float32)
    qkv = torch.randn(2, 4, 3, 5, 32)                                # (B, T, 3, H, D)
    fused = qkv * cos + (qkv @ R) * sin
    inv = 1.0 / (10000.0 ** (torch.arange(0, 12, 2).float() / 12))
    emb = torch.cat([pos[..., None] * inv] * 2, -1)[:, :, None]       # (B, T, 1, 12)
    ref_qk = apply_rotary(qkv[:, :, :2], emb.cos()[:, :, None], emb.sin()[:, :, None])
    torch.testing.assert_close(fused[:, :, :2], ref_qk, atol=1e-6, rtol=0)
    assert torch.equal(fused[:, :, 2], qkv[:, :, 2])                 # v untouched
    assert torch.equal(fused[..., 12:], qkv[..., 12:])               # pass-through dims untouched


def test_fp16_attention_does_not_overflow() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, 64) * 40 for _ in range(3))  # q.k ~ 1e5: beyond fp16 max (65504)
    ref = attention(q, k, v, None, True, 0.0)
    out = attention(q.half(), k.half(), v.half(), None, True, 0.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.01)


def test_dropout_only_in_training_and_gradient_checkpointing() -> None:
    mc = get_model_config("smoke", vocab_size=300, attn_pdrop=0.1, resid_pdrop=0.1, embd_pdrop=0.1)
    torch.manual_seed(0)
    model = install(PhiForCausalLM(mc))
    x = torch.randint(0, 300, (2, 16))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
    model = install(PhiForCausalLM(get_model_config("smoke", vocab_size=300))).train()
    loss = causal_lm_loss(model(x), x)
    loss.backward()
    g1 = model.lm_head.weight.grad.clone()
    model.zero_grad()
    model.gradient_checkpointing = True
    causal_lm_loss(model(x), x).backward()
    torch.testing.assert_close(model.lm_head.weight.grad, g1)


# --------------------------------------------------------------------------- generation
def test_greedy_generation_equals_transformers_generate(tok) -> None:
    mc = get_model_config("smoke", vocab_size=len(tok))
    model, hf = _pair(mc, seed=8)
    prompts = ["def add(a, b):\n", "import os\n\nclass Foo:\n    def bar(self):", "x = 1"]
    enc = [tok(p)["input_ids"] for p in prompts]
    ours = generate_ids(model, enc, 24)  # one left-padded batch
    L = max(map(len, enc))
    ids = torch.tensor([[0] * (L - len(e)) + e for e in enc])
    mask = torch.tensor([[0] * (L - len(e)) + [1] * len(e) for e in enc])
    theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=24, do_sample=False, pad_token_id=0)
    for i, e in enumerate(enc):
        single = hf.generate(torch.tensor([e]), attention_mask=torch.ones(1, len(e), dtype=torch.long),
                             max_new_tokens=24, do_sample=False, pad_token_id=0)[0, len(e):].tolist()
        assert ours[i] == single
        assert ours[i] == theirs[i, L:].tolist()


def test_generate_stop_sequences_sampling_and_n(tok) -> None:
    assert truncate_at_stop("    return x\n\ndef g():\n#", HUMANEVAL_STOP) == "    return x\n"
    assert truncate_at_stop("abc", []) == "abc"
    model, _ = _pair(get_model_config("smoke", vocab_size=len(tok)), seed=9)
    prompts = ["def f(x):\n", "a = [1, 2, 3]\nfor i in a:"]
    greedy = generate(model, tok, prompts, max_new_tokens=30, stop=[], show_progress=False)
    nostop = [g[0] for g in greedy]
    # Stop sequences taken from the unstopped text itself must cut it exactly there.
    stop = [nostop[0][5:8]]
    cut = generate(model, tok, prompts[:1], max_new_tokens=30, stop=stop, show_progress=False)[0][0]
    assert cut == nostop[0][: nostop[0].find(stop[0])]
    samples = generate(model, tok, prompts, max_new_tokens=12, temperature=1.0, top_p=0.95, n=3, stop=[],
                       seed=1, batch_size=4, show_progress=False)
    assert [len(s) for s in samples] == [3, 3]
    assert len(set(samples[0])) > 1  # random weights: samples differ
    assert samples == generate(model, tok, prompts, max_new_tokens=12, temperature=1.0, top_p=0.95, n=3, stop=[],
                               seed=1, batch_size=4, show_progress=False)  # seeded
    # top_p this small keeps only the most likely token: sampling becomes greedy
    tiny_p = generate(model, tok, prompts, max_new_tokens=30, temperature=1.0, top_p=1e-9, stop=[], show_progress=False)
    assert tiny_p == greedy


# --------------------------------------------------------------------------- tokenizer
def test_tokenizer_round_trip_and_reload(tmp_path: Path, tok) -> None:
    assert len(tok) == 600 and tok.eos_token == EOS and tok.pad_token_id == tok.eos_token_id
    for s in ["def f(x):\n\treturn  x + 1  # ünïcödé ✓\n", "", "    \n\n   x", "\x00\x7f"]:
        assert tok.decode(tok(s)["input_ids"]) == s
    text = f"print(1){EOS}print(2)"
    assert tok.eos_token_id in tok(text)["input_ids"]  # the separator is one special token
    tok.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    s = "for i in range(10):\n    print(i)\n"
    assert again(s)["input_ids"] == tok(s)["input_ids"]
    # indentation is cheap: 4 spaces are learned as few tokens on Python sources
    assert len(tok("        ")["input_ids"]) <= 2


def test_run_tokenizer_falls_back_to_stdlib_and_skips(tmp_path: Path) -> None:
    cfg = get_profile("smoke", **{"tokenizer.vocab_size": 400, "tokenizer.train_chars": 200_000})
    rd = open_run(cfg, tmp_path / "run")
    tok = run_tokenizer(cfg, rd)
    assert len(tok) == 400 and (rd.path / "tokenizer" / "tokenizer.json").exists()
    man = rd.manifest("tokenizer")
    assert man["sources"] == ["python-stdlib"] and man["counts"]["vocab_size"] == 400
    mtime = (rd.path / "tokenizer" / "tokenizer.json").stat().st_mtime_ns
    assert len(run_tokenizer(cfg, rd)) == 400  # complete: loaded, not retrained
    assert (rd.path / "tokenizer" / "tokenizer.json").stat().st_mtime_ns == mtime


def test_run_tokenizer_uses_run_datasets(tmp_path: Path) -> None:
    from datasets import Dataset
    cfg = get_profile("smoke", **{"tokenizer.vocab_size": 300})
    rd = open_run(cfg, tmp_path / "run")
    with rd.step("textbooks") as rec:
        Dataset.from_dict({"text": ["def zebra_quux():\n    return 'zebra_quux'\n"] * 50}).save_to_disk(
            str(rec.path / "code_textbook"))
    tok = run_tokenizer(cfg, rd)
    assert rd.manifest("tokenizer")["sources"] == ["textbooks/code_textbook"]
    assert len(tok(" zebra")["input_ids"]) == 1 and len(tok("quux")["input_ids"]) == 1  # learned from the run's data


# --------------------------------------------------------------------------- FLOPs
def test_flops_per_token_and_paper_budget() -> None:
    mc = get_model_config("phi-1")
    with torch.device("meta"):
        m = PhiForCausalLM(mc)
    n_matmul = sum(p.numel() for n, p in m.named_parameters() if p.dim() == 2 and "wte" not in n)
    assert matmul_params(mc) == n_matmul
    f = flops_per_token(mc, 2048)
    assert f == 6 * n_matmul + 12 * 24 * 2048 * 2048
    assert flops_per_token(mc, 2048, training=False) == pytest.approx(f / 3)
    # paper: 1.3B params x ~51B tokens (8 passes over 7B, incl. finetuning) ~ 4e20 FLOPs
    assert 3.5e20 < training_flops(1.3e9, 51e9) < 4.5e20
    assert mfu(1000.0, mc, 2048, peak_flops=f * 2000.0) == pytest.approx(0.5)
    if not torch.cuda.is_available():
        assert mfu(1000.0, mc, 2048) is None
