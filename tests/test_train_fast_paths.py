"""The training fast paths (issue 31, item 7), each against what it replaces: the LM head fused with
the cross-entropy (`fast.linear_cross_entropy`, the Trainer's CPU fp32 path) against the logits and
`causal_lm_loss`, and chunked causal attention with Philox dropout against the unchunked path (the
same masks, so the same function)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from phi_utils.model import causal_lm_loss, fast
from phi_utils.model.cpu_kernels import chunked_dropout_attention


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_fused_head_and_loss_equal_logits_and_causal_lm_loss(reduction: str) -> None:
    torch.manual_seed(0)
    h = torch.randn(3, 70, 32, requires_grad=True)
    head = torch.nn.Linear(32, 300)
    labels = torch.randint(0, 300, (3, 70))
    labels[0, 5], labels[2, :9] = -100, -100
    want = causal_lm_loss(head(h), labels, reduction=reduction)
    gw = torch.autograd.grad(want * 0.37, (h, head.weight, head.bias))
    got = fast.linear_cross_entropy(h, head, labels, reduction=reduction, chunk_rows=64)  # 4 chunks, the last short
    gg = torch.autograd.grad(got * 0.37, (h, head.weight, head.bias))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fast.linear_cross_entropy(h, head, labels, reduction=reduction), want)


def test_chunked_attention_draws_the_unchunked_masks(monkeypatch) -> None:
    if chunked_dropout_attention() is None:
        pytest.skip("the CPU kernels are not built")
    B, H, T, D, p = 2, 3, 64, 16, 0.2
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D)
    outs = []
    for chunk in (1 << 30, 2 * T * T):  # one chunk (the plain path), then 2 of the 6 rows a chunk
        monkeypatch.setattr(fast, "CHUNK_ELEMENTS", chunk)
        torch.manual_seed(5)
        y = fast.causal_attention_dropout_cpu(q, k, v, p)
        outs.append((y, torch.autograd.grad(y, (q, k, v), g)))
    (y0, g0), (y1, g1) = outs
    assert torch.equal(y0, y1)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_trainer_fused_head_step_equals_the_logits_path(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train import make_trainer, params, synthetic_data

    data = synthetic_data(tmp_path / "data")
    runs = []
    for fused in (True, False):
        t = make_trainer(data, tmp_path / f"run_{fused}", dropout=0.1, micro_batch_size=4)
        assert t.fused_head  # CPU, fp32, the bare model
        t.fused_head = fused
        recs = [t.train_step() for _ in range(3)]
        runs.append(([r["loss"] for r in recs], params(t), t.evaluate()))
    (l0, p0, v0), (l1, p1, v1) = runs
    torch.testing.assert_close(torch.tensor(l0), torch.tensor(l1), rtol=1e-5, atol=1e-5)
    assert v0 == pytest.approx(v1, rel=1e-5)
    for n in p0:
        torch.testing.assert_close(p0[n], p1[n], rtol=0, atol=2e-4, msg=n)  # Adam: lr-sized steps even on ~0 gradients
