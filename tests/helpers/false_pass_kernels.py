"""Kernels that try to get a pass without computing neighborhood attention, and kernels that hang.

Each one is a way a broken kernel (or a careless wrapper) could fool a verifier into
exit status 0. ``tests/testing/test_verifier_robust.py`` checks that none of them does. They run
on NumPy arrays; the correct numbers, where one is needed, come from the independent
gather kernel in ``mutant_kernels.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import mutant_kernels as mk  # noqa: E402


def numpy_only(q, k, v, **kw):
    """Right, but NumPy only: on torch tensors that require grad ``np.asarray`` raises."""
    return mk.correct_na(np.asarray(q), np.asarray(k), np.asarray(v), **kw)


def exits(q, k, v, **kw):
    raise SystemExit(0)


def interrupts(q, k, v, **kw):
    raise KeyboardInterrupt


def prints_and_returns_none(q, k, v, **kw):
    print("done!")


def returns_v(q, k, v, **kw):
    return v


def returns_view_of_v(q, k, v, **kw):
    return v[...]


def writes_output_into_v(q, k, v, **kw):
    v[...] = mk.correct_na(q, k, v, **kw)  # right numbers, in the input's memory
    return v


def right_but_mutates_q(q, k, v, **kw):
    out = mk.correct_na(q, k, v, **kw)
    q *= 2  # the output is right; the caller's q is not
    return out


def strided_grid(q, k, v, stride=1, **kw):
    """Keeps one query per stride group (the leader of each group's window): NATTEN's stride differs."""
    out = mk.correct_na(q, k, v, stride=stride, **kw)
    ndim = q.ndim - 3
    st = tuple(stride) if isinstance(stride, (tuple, list)) else (stride,) * ndim
    return out[(slice(None), *(slice(None, None, s) for s in st))].copy()


def wrong_then_exits_on_probes(q, k, v, **kw):
    """Wrong numbers on the cases; on the diagnosis' probe inputs (q = k = 0) it ends the run with 0."""
    if not np.any(q):
        raise SystemExit(0)
    return mk.correct_na(q, k, v, **kw) + 1


def hangs_on_even_kernels(q, k, v, kernel_size, **kw):
    if any(kk % 2 == 0 for kk in np.atleast_1d(kernel_size)):
        time.sleep(3600)
    return mk.correct_na(q, k, v, kernel_size=kernel_size, **kw)


def dies(q, k, v, **kw):
    os._exit(0)  # ends the process with status 0: only a worker process survives this


def never_runs(q, k, v, **kw):
    raise TypeError("this kernel takes nothing the verifier can give")


def called_marker(q, k, v, **kw):
    """Leaves a file behind when called: options must be checked before any case runs."""
    Path(os.environ["DINAT_REF_TEST_MARKER"]).write_text("called")
    return mk.correct_na(q, k, v, **kw)


def numpy_backward(d_out, q, k, v, out, lse, kernel_size, stride, dilation, is_causal, scale, rpb=None):
    """An explicit backward kernel from torch autograd through the gather kernel (NumPy in and out)."""
    import torch

    dtype = q.dtype
    tq, tk, tv = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v))
    tr = None if rpb is None else torch.tensor(rpb, dtype=torch.float64, requires_grad=True)
    o = mk.correct_na(tq, tk, tv, kernel_size=kernel_size, stride=stride, dilation=dilation,
                      is_causal=is_causal, scale=scale, rpb=tr)
    o.backward(torch.tensor(d_out, dtype=torch.float64))
    grads = [tq.grad, tk.grad, tv.grad] + ([] if tr is None else [tr.grad])
    return tuple(g.numpy().astype(dtype) for g in grads)


def backward_dk_doubled(d_out, q, k, v, out, lse, **kw):
    dq, dk, dv, *rest = numpy_backward(d_out, q, k, v, out, lse, **kw)
    return (dq, 2 * dk, dv, *rest)
