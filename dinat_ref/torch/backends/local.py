"""Non-finite inputs stay local: the reference's NaN/inf pattern on every backend.

The fast backends attend a tile of queries (or a flex block) to the union of their windows
and give the keys outside a query's own window weight 0. With a NaN or inf in a key or value
row that is ``0 * NaN = NaN``: one bad token would poison every query of its tile, where the
reference (and NATTEN) only touch the queries whose neighborhood holds it. So, when (and
only when) q, k or v holds a non-finite number:

1. the backend runs on copies with every non-finite entry replaced by 0, which is right for
   every query whose own row and neighborhood are finite;
2. the other queries, usually a handful, are recomputed exactly by gathering their ``K``
   neighbors (:func:`exact_rows`: the NumPy reference's steps on a list of rows), and
   written over the backend's answer.

Finite inputs pay one summing pass per tensor (:func:`all_finite`). Autograd flows through both parts, so
gradients keep the reference's pattern too.

:func:`safe_softmax` is the one softmax of every explicit path: a row whose logits are all
``-inf`` (nothing to attend to, e.g. an rpb of ``-inf``) gets probabilities 0 and lse ``-inf``,
so its output is 0 (NATTEN's and flex attention's answer), never NaN.
"""

from __future__ import annotations

import torch

from dinat_ref.checks import Window
from dinat_ref.torch.backends import NeighborTables, neighbor_tables
from dinat_ref.torch.backends.cache import tracing

__all__ = ["compute_dtype", "safe_softmax", "exact_rows", "all_finite", "attend", "weigh"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Logits, softmax and lse of half inputs are computed in float32 (as SDPA and NATTEN do)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def safe_softmax(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last axis and its lse; an all ``-inf`` row gives ``p = 0``, lse ``-inf``.

    ``p = exp(s - m) / sum exp(s - m)`` with ``m`` the row max, or 0 for an all ``-inf`` row.
    """
    m = s.amax(dim=-1, keepdim=True).detach()  # (..., 1) shift only: no gradient
    m = torch.where(m == float("-inf"), 0.0, m)  # (..., 1) all -inf: exp(-inf - 0) = 0, not NaN
    e = torch.exp(s - m)  # (..., K)
    z = e.sum(dim=-1, keepdim=True)  # (..., 1), 0 for an all -inf row
    return e / torch.where(z == 0, 1.0, z), (m + torch.log(z)).squeeze(-1)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial, H, C) -> (B, N, H, C)."""
    return x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])


def _finite_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, N, H): whether every entry of each (token, head) row of x is finite."""
    return torch.isfinite(_rows(x)).all(dim=-1)


def _clean(x: torch.Tensor) -> torch.Tensor:
    """x with every non-finite entry replaced by 0."""
    return torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype, device=x.device))


def _neighbors(x: torch.Tensor, rows: tuple, t: NeighborTables) -> torch.Tensor:
    """(M, K, C): the rows' neighbor rows of x, 0 in masked (causal) slots."""
    b, n, h = rows
    nb = _rows(x)[b[:, None], t.keys[n], h[:, None]]  # (M, K, C)
    return torch.where(t.valid[n][..., None], nb, torch.zeros((), dtype=x.dtype, device=x.device))


def exact_rows(q, k, v, rows: tuple, t: NeighborTables, scale: float, rpb=None):
    """Attention of the listed ``(batch, query, head)`` rows, gathered: ``(out (M, Dv), lse (M,))``.

    The reference's steps on M rows: logits ``(scale q) . k_nb + rpb``, ``-inf`` on masked
    slots, :func:`safe_softmax`, ``p . v_nb``; in float32 for half inputs.
    """
    b, n, h = rows
    ct = compute_dtype(q.dtype)
    qm = _rows(q)[b, n, h].to(ct) * scale  # (M, D)
    s = torch.einsum("md,mkd->mk", qm, _neighbors(k, rows, t).to(ct))  # (M, K)
    if rpb is not None:
        s = s + rpb.flatten(1)[h[:, None], t.rpb_flat[n]].to(ct)  # (M, K)
    p, lse = safe_softmax(s.masked_fill(~t.valid[n], float("-inf")))  # (M, K), (M,)
    return torch.einsum("mk,mkd->md", p, _neighbors(v, rows, t).to(ct)), lse


def _overwrite(x: torch.Tensor, rows: tuple, values: torch.Tensor) -> torch.Tensor:
    """x (B, *spatial, H, C) or lse (B, *spatial, H) with the listed rows replaced (differentiably)."""
    tail = x.shape[-2:] if values.ndim == 2 else x.shape[-1:]  # (H, C) for out, (H,) for lse
    flat = x.reshape(x.shape[0], -1, *tail)  # (B, N, H[, C])
    return flat.index_put(rows, values.to(x.dtype)).view(x.shape)


def _bad_rows(ok_q, ok_kv, t: NeighborTables) -> tuple:
    """(b, n, h) of every query whose own row or any neighbor's k/v row is not finite."""
    bad_nb = (~ok_kv)[:, t.keys] & t.valid[None, :, :, None]  # (B, N, K, H)
    return (~ok_q | bad_nb.any(dim=2)).nonzero(as_tuple=True)


def all_finite(*xs: torch.Tensor) -> bool:
    """Whether every entry of every x is finite, in one summing pass each (no boolean copies).

    A NaN or inf entry makes the sum NaN or inf; a finite sum can only come from finite
    entries. (A sum that overflows from finite entries says False: the careful path then runs,
    which is slower but just as right.) Inside a ``torch.compile`` / ``torch.export`` trace no
    value is known: the trace takes the finite path, so traced graphs do not keep NaN local.
    """
    if tracing():
        return True
    total = sum(x.sum(dtype=compute_dtype(x.dtype)) for x in xs)
    return bool(torch.isfinite(total))


def attend(forward, q, k, v, window: Window, scale: float, rpb=None, return_lse: bool = False):
    """``forward(q, k, v, window, scale, rpb, return_lse) -> (out, lse)``, non-finite values kept local."""
    if all_finite(q, k, v):
        return forward(q, k, v, window, scale, rpb, return_lse)
    ok_q, ok_kv = _finite_rows(q), _finite_rows(k) & _finite_rows(v)  # (B, N, H) each
    out, lse = forward(_clean(q), _clean(k), _clean(v), window, scale, rpb, return_lse)
    t = neighbor_tables(tuple(q.shape[1:-2]), window, q.device)
    rows = _bad_rows(ok_q, ok_kv, t)
    out_m, lse_m = exact_rows(q, k, v, rows, t, scale, rpb)
    out = _overwrite(out, rows, out_m)
    return out, (None if lse is None else _overwrite(lse, rows, lse_m))


def weigh(av, probs, v, window: Window):
    """``av(probs, v, window)`` (the neighborhood-layout weighted sum), non-finite v kept local."""
    if all_finite(v):
        return av(probs, v, window)
    ok_v = _finite_rows(v)  # (B, N, H)
    out = av(probs, _clean(v), window)
    t = neighbor_tables(tuple(v.shape[1:-2]), window, v.device)
    rows = _bad_rows(torch.ones_like(ok_v), ok_v, t)
    b, n, h = rows
    p = _rows(probs)[b, n, h].masked_fill(~t.valid[n], 0)  # (M, K)
    return _overwrite(out, rows, torch.einsum("mk,mkd->md", p, _neighbors(v, rows, t)))
