"""Cached index tables must stay usable whatever mode first built them.

The tiled and flex backends build their index tables once per configuration and reuse them.
A table first built under ``torch.inference_mode()`` or inside a ``torch.export`` trace must
not break a later ordinary call (training, or inference outside the trace).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dinat_ref.numpy import na2d as np_na2d  # noqa: E402
from dinat_ref.torch import na2d  # noqa: E402
from dinat_ref.torch.backends import tiled  # noqa: E402


def _inputs(shape, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, *shape, 2, 8, generator=g, dtype=torch.float64, requires_grad=requires_grad)
            for _ in range(3)]


def test_tables_built_in_inference_mode_serve_training():
    shape, kernel_size, dilation = (11, 13), 3, 2  # a configuration no other test uses first
    with torch.inference_mode():
        na2d(*_inputs(shape, 0), kernel_size, dilation=dilation, backend="torch")
    q, k, v = _inputs(shape, 1, requires_grad=True)
    rpb = torch.randn(2, 5, 5, dtype=torch.float64, requires_grad=True)
    out = na2d(q, k, v, kernel_size, dilation=dilation, rpb=rpb, backend="torch")
    out.sum().backward()  # raised "Inference tensors cannot be saved for backward"
    ref = np_na2d(q.detach().numpy(), k.detach().numpy(), v.detach().numpy(), kernel_size,
                  dilation=dilation, rpb=rpb.detach().numpy())
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_tables_built_in_an_export_trace_serve_later_calls():
    shape, kernel_size = (10, 9), 3

    class Block(torch.nn.Module):
        def forward(self, q, k, v):
            return na2d(q, k, v, kernel_size, backend="torch")

    tiled.tiles.cache_clear()
    q, k, v = (x.float() for x in _inputs(shape, 2))
    torch.export.export(Block(), (q, k, v))  # the first call of this configuration is a trace
    out = Block()(q, k, v)  # an ordinary call afterwards must get real tables
    ref = np_na2d(q.numpy(), k.numpy(), v.numpy(), kernel_size)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)
