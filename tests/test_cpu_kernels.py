"""The CPU kernels of `phi_utils/model/csrc/`, each against what it replaces:

- decode attention alone and fused with rotary and the cache write, against softmax attention
  written out and against the model's general path;
- dropout from the Philox kernel: the generator against Philox4x32-10's published known answers,
  the masks' statistics and reproducibility, autograd, and the model's training path
  (attention-probability and residual dropout) that uses it;
- gelu_new (tanh GELU) forward and backward against PyTorch's in float64;
- the tiled transposed copy against `w.t()`."""

from __future__ import annotations

import os
import platform
import shutil

import pytest
import torch

from phi_utils.model import PhiForCausalLM, causal_lm_loss, get_model_config
from phi_utils.model.cpu_kernels import fused_decode_attention, fused_dropout, fused_gelu_tanh, transposed_copy
from phi_utils.model.fast import causal_attention_dropout_cpu, install

M32 = 0xFFFFFFFF
# Random123's kat_vectors for philox4x32_10: (counter, key) -> 4 words.
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32,) * 4, (M32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _kernels_or_skip() -> None:
    if shutil.which("c++") is None or platform.machine() != "x86_64" or \
            torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("the CPU kernels need a C++ compiler and an x86-64 CPU with AVX2 (nn.Dropout used instead)")
    if os.environ.get("PHI_CPU_KERNELS") == "0":
        pytest.skip("PHI_CPU_KERNELS=0 turns the CPU kernels off")


@pytest.fixture(scope="module")
def dropout():
    _kernels_or_skip()
    fn = fused_dropout()
    assert fn is not None, "a C++ compiler is here but the CPU kernels did not build (see the log warning)"
    return fn


def philox4x32_10(ctr: tuple[int, ...], key: tuple[int, ...]) -> list[int]:
    """Reference Philox4x32-10 in plain Python (Salmon et al., SC'11)."""
    c, (k0, k1) = list(ctr), key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k1) & M32, p0 & M32]
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c


def test_reference_philox_matches_the_published_known_answers() -> None:
    for ctr, key, want in PHILOX_KAT:
        assert philox4x32_10(ctr, key) == list(want)


def test_kernel_stream_is_philox4x32_10(dropout) -> None:
    """Word i is word (i % 32) // 8 of the counter 8 * (i // 32) + i % 8 under key `seed`."""
    for seed in (0, 12345, 2**62 + 7):
        n = 300  # not a multiple of a kernel block: the tail is exact too
        got = [w & M32 for w in torch.ops.phi_utils.philox_words(n, seed).tolist()]
        key = (seed & M32, seed >> 32)
        for i in range(n):
            c = 8 * (i // 32) + i % 8
            assert got[i] == philox4x32_10((c & M32, c >> 32, 0, 0), key)[(i % 32) // 8], (seed, i)
    assert [torch.ops.phi_utils.philox_words(32, 0)[i].item() & M32 for i in (0, 8, 16, 24)] == list(PHILOX_KAT[0][2])


def test_masks_have_the_right_statistics(dropout) -> None:
    x = torch.randn(1 << 20)
    for p in (0.1, 0.5, 0.9):
        y = torch.ops.phi_utils.dropout(x, p, 7)
        kept = y != 0
        sd = (p * (1 - p) / x.numel()) ** 0.5
        assert abs(kept.float().mean().item() - (1 - p)) < 5 * sd
        # every lane of a 32-word kernel block, alone, drops at the same rate (a lane-mapping bug would not)
        lanes = kept.view(-1, 32).float().mean(0)
        assert (lanes - (1 - p)).abs().max().item() < 5 * sd * 32 ** 0.5
        # neighbours independent: both kept as often as (1 - p)^2
        both = (kept[:-1] & kept[1:]).float().mean().item()
        assert abs(both - (1 - p) ** 2) < 5 * (1 - p) * sd * 2
        torch.testing.assert_close(y[kept], x[kept] * (1 / (1 - p)), rtol=0, atol=0)
    assert torch.equal(torch.ops.phi_utils.dropout(x, 0.0, 7), x)


def test_masks_are_a_function_of_seed_and_index_only(dropout) -> None:
    x = torch.randn(100_003)
    ref = torch.ops.phi_utils.dropout(x, 0.3, 99)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(torch.ops.phi_utils.dropout(x, 0.3, 99), ref)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.ops.phi_utils.dropout(x[:5000].clone(), 0.3, 99), ref[:5000])  # a prefix
    assert not torch.equal(torch.ops.phi_utils.dropout(x, 0.3, 100), ref)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):  # same mask in every dtype
        y = torch.ops.phi_utils.dropout(x.to(dtype), 0.3, 99)
        assert y.dtype == dtype and torch.equal(y != 0, ref != 0)


def test_autograd_reuses_the_mask_and_follows_manual_seed(dropout) -> None:
    x = torch.randn(64, 33, requires_grad=True)
    w = torch.randn(64, 33)
    torch.manual_seed(3)
    y = dropout(x, 0.25)
    (y * w).sum().backward()
    kept = y != 0
    torch.testing.assert_close(x.grad, w * kept / 0.75, rtol=1e-6, atol=0)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.25), y)
    assert not torch.equal(dropout(x, 0.25), y)  # the generator moved on


def test_attention_with_dropout_is_softmax_attention_with_that_mask(dropout) -> None:
    B, H, T, D, p = 2, 3, 17, 16, 0.2
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    torch.manual_seed(5)
    y = causal_attention_dropout_cpu(q, k, v, p)
    torch.manual_seed(5)  # the same seed draws the same mask over (B*H, T, T)
    mask = dropout(torch.ones(B * H, T, T), p).view(B, H, T, T)
    scores = (q @ k.transpose(-1, -2)) * D ** -0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    ref = (torch.softmax(scores, -1) * mask) @ v
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (q, k, v), g)
    want = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_training_with_dropout_checkpointed_or_not_gives_the_same_gradients(dropout) -> None:
    """Activation checkpointing restores the RNG state before recomputing a block, so the recomputed
    blocks draw the same seeds, hence the same masks, as the first forward."""
    mc = get_model_config("smoke", vocab_size=300, attn_pdrop=0.1, resid_pdrop=0.1, embd_pdrop=0.1)
    torch.manual_seed(0)
    model = install(PhiForCausalLM(mc)).train()
    x = torch.randint(0, 300, (2, 32))
    grads = []
    for ckpt in (False, True):
        model.gradient_checkpointing = ckpt
        model.zero_grad()
        torch.manual_seed(1)
        causal_lm_loss(model(x), x).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-5, atol=1e-7, msg=n)
    torch.manual_seed(1)
    a = model(x)
    assert not torch.equal(a, model(x))  # and dropout is on


def test_gelu_kernel_matches_pytorch_in_float64() -> None:
    _kernels_or_skip()
    gelu = fused_gelu_tanh()
    assert gelu is not None
    torch.manual_seed(0)
    for n in (1, 7, 9, 33, 100_003):  # vector body and scalar tail
        x = torch.randn(n, dtype=torch.float64) * 4
        x[0] = 0.0
        ref = torch.nn.functional.gelu(x, approximate="tanh")
        xf = x.float().requires_grad_()
        y = gelu(xf)
        torch.testing.assert_close(y.double(), ref, atol=1e-6, rtol=2e-6)
        w = torch.randn(n, dtype=torch.float64)
        (y * w.float()).sum().backward()
        xd = x.clone().requires_grad_()
        (torch.nn.functional.gelu(xd, approximate="tanh") * w).sum().backward()
        torch.testing.assert_close(xf.grad.double(), xd.grad, atol=2e-5, rtol=2e-5)
    big = torch.tensor([-100.0, -20.0, 20.0, 100.0, float("nan")])
    torch.testing.assert_close(gelu(big), torch.nn.functional.gelu(big, approximate="tanh"), equal_nan=True)
    x = torch.randn(6, 10)[:, ::2]  # not contiguous
    torch.testing.assert_close(gelu(x), torch.nn.functional.gelu(x, approximate="tanh"), atol=1e-6, rtol=2e-6)


def test_fused_decode_step_equals_the_general_path(monkeypatch) -> None:
    """Decoding through the fused rotary + cache write + attention op gives the logits and the cache
    contents of the general path, with left padding, partial rotary of several widths, and rows dropped."""
    _kernels_or_skip()
    import phi_utils.model.fast as model_mod
    from phi_utils.model import ModelConfig

    for mc in (get_model_config("smoke", vocab_size=300),
               ModelConfig(vocab_size=97, n_layer=2, n_embd=48, n_head=3, intermediate_size=80, rotary_dim=4,
                           block_size=64)):
        torch.manual_seed(0)
        model = install(PhiForCausalLM(mc)).eval()
        ids = torch.randint(1, mc.vocab_size, (3, 12))
        mask = torch.ones(3, 12, dtype=torch.long)
        mask[1, :4] = 0
        mask[2, :7] = 0
        runs = []
        for fused in (True, False):
            if not fused:
                monkeypatch.setattr(model_mod, "fused_decode_step", lambda: None)
            with torch.no_grad():
                cache = model.new_cache(3, 20)
                model(ids[:, :8], attention_mask=mask[:, :8], past_key_values=cache)
                cache.mask_padding(mask[:, :8])
                pos = mask[:, :8].sum(1, keepdim=True)
                steps = [model(ids[:, 8:9], position_ids=pos, past_key_values=cache)]
                cache.select(torch.tensor([2, 0]))
                for t in range(9, 12):
                    pos = pos + 1
                    steps.append(model(ids[[2, 0], t:t + 1], position_ids=pos[[2, 0]], past_key_values=cache))
            runs.append((steps, [k[:, :, :cache.length].clone() for k in cache.k + cache.v]))
        monkeypatch.undo()
        for a, b in zip(runs[0][0], runs[1][0]):
            torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)
        for a, b in zip(runs[0][1], runs[1][1]):
            real = torch.isfinite(b)  # the padding slots hold whatever prefill left there
            torch.testing.assert_close(a[real], b[real], atol=1e-6, rtol=1e-6)


def test_transposed_copy_is_exact() -> None:
    _kernels_or_skip()
    for shape in ((1, 1), (33, 70), (64, 32), (4096, 256), (100, 1)):
        w = torch.randn(*shape)
        out = transposed_copy(w)
        assert out.is_contiguous() and torch.equal(out, w.t())
    w = torch.randn(8, 6)[:, ::2]               # not contiguous: PyTorch's copy
    assert torch.equal(transposed_copy(w), w.t())


def test_fused_decode_attention_kernel_skips_padding_and_matches_softmax() -> None:
    """The C++ decoding kernel against softmax attention written out: ragged left padding whose keys
    and values are NaN (never read), a masked key in the middle, a fully masked row, no bias at all."""
    _kernels_or_skip()
    op = fused_decode_attention()
    assert op is not None, "a C++ compiler is here but the decode kernel did not build (see the log warning)"
    torch.manual_seed(0)
    for D in (16, 32, 64):
        B, H, S = 4, 3, 37
        q, k, v = torch.randn(B, H, 1, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)
        keep = torch.ones(B, 1, 1, S, dtype=torch.bool)
        for b, pad in enumerate((0, 5, 17)):
            keep[b, ..., :pad] = False
        keep[1, ..., 20] = False           # a hole in the middle
        keep[3] = False                    # nothing to attend to: zeros
        k_dirty, v_dirty = k.clone(), v.clone()
        k_dirty[~keep.expand(B, H, 1, S).squeeze(2)] = float("nan")
        v_dirty[~keep.expand(B, H, 1, S).squeeze(2)] = float("nan")
        bias = torch.zeros(B, H, 1, S).masked_fill_(~keep, float("-inf"))
        got = op(q, k_dirty, v_dirty, bias, D ** -0.5)
        scores = (q @ k.transpose(-1, -2)) * D ** -0.5 + bias
        ref = torch.softmax(scores[:3], -1) @ v[:3]
        torch.testing.assert_close(got[:3], ref, atol=2e-6, rtol=1e-5)
        assert torch.equal(got[3], torch.zeros_like(got[3]))
        # no bias; k and v as strided views of a longer cache, as decoding passes them
        kc, vc = torch.randn(B, H, S + 9, D), torch.randn(B, H, S + 9, D)
        got = op(q, kc[:, :, :S], vc[:, :, :S], torch.empty(0), D ** -0.5)
        ref = torch.softmax((q @ kc[:, :, :S].transpose(-1, -2)) * D ** -0.5, -1) @ vc[:, :, :S]
        torch.testing.assert_close(got, ref, atol=2e-6, rtol=1e-5)
