"""The ``flex`` backend: ``torch.nn.attention.flex_attention`` with the neighborhood as a block mask.

FlexAttention (https://pytorch.org/blog/flexattention/) runs dense-attention tiles but skips
every (query block, key block) pair its ``BlockMask`` marks empty, and calls two small
functions per score: ``mask_mod`` (keep this pair?) and ``score_mod`` (change this score).
That is exactly neighborhood attention with RPB:

* ``mask_mod(q, k)``: the shared rule, per axis ``same dilation group`` and
  ``start[i] <= j < start[i] + count[i] * d``, ANDed over axes. It only looks up the
  per-axis window tables of :func:`dinat_ref.neighborhood.axis_windows`.
* ``score_mod(s, h, q, k)``: ``s + rpb[h, (k-1) + (j-i)/d per axis]``; autograd reaches rpb.

Token order matters for the block mask: in row-major order a dilated neighborhood touches
every block. So tokens are first permuted into the tiled backend's order (dilation group,
then tile, then position in tile), where each 128-token block only meets a few others; the
mask and score functions map permuted positions back to grid coordinates.

On CUDA the kernel is compiled (``torch.compile``) and is the fused path for DiNAT's RPB
layers. On CPU (torch 2.13) compiled flex attention is inference-only, cannot return the lse
and fails to lower some shapes, so it runs eagerly there: forward only, ``O(N^2)`` memory,
for cross-checks; ``auto`` never picks it on CPU. Each new shape compiles once on CUDA;
a model with many layer shapes may need a larger ``torch._dynamo.config.cache_size_limit``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dinat_ref.checks import Window
from dinat_ref.neighborhood import axis_windows
from dinat_ref.torch.backends import tiled
from dinat_ref.torch.backends.cache import table_cache
from dinat_ref.torch.backends.local import compute_dtype

NAME = "flex"
BLOCK = 128  # FlexAttention's block size (queries and keys)
CPU_AUTO_SKIP = ("runs eagerly on CPU with O(N^2) memory, far slower than 'torch'; "
                 "ask for backend='flex' explicitly (cross-checks)")


def _flex():
    try:
        from torch.nn.attention import flex_attention as fa
    except Exception:  # noqa: BLE001 - torch too old
        return None
    return fa


def unavailable(req) -> str | None:
    """Why flex attention cannot serve ``req``, or None."""
    if _flex() is None:
        return f"torch {torch.__version__} has no torch.nn.attention.flex_attention (needs >= 2.5)"
    if req.device.type not in ("cuda", "cpu"):
        return f"flex attention runs on CUDA and CPU, not {req.device.type}"
    if req.device.type == "cpu" and req.needs_grad:
        return "flex attention on CPU is forward-only (no backward), and an input requires grad"
    if req.device.type == "cuda" and req.dtype == torch.float64:
        return ("query/key/value dtype is torch.float64; compiled flex attention on CUDA takes "
                "float32, float16 or bfloat16")
    return None


@dataclass(frozen=True)
class _FlexTables:
    """Per-permuted-token tables (all (N,) int64 unless noted).

    Attributes:
        perm: grid token at each permuted position (permuted -> flat row-major index).
        inv: permuted position of each grid token.
        coord: (ndim, N) grid coordinate of each permuted position, per axis.
        start / stop: (ndim, N) window bounds ``[start, start + count*d)`` of each position, per axis.
        group: (ndim, N) dilation group of each position, per axis.
    """

    perm: torch.Tensor
    inv: torch.Tensor
    coord: torch.Tensor
    start: torch.Tensor
    stop: torch.Tensor
    group: torch.Tensor


@table_cache(maxsize=64)
def _tables(shape: tuple[int, ...], window: Window, device: torch.device) -> _FlexTables:
    """The tables of one grid and window, tokens in the tiled backend's order."""
    layout = tiled.Layout(shape, window, tiled.choose_tile(shape, window), torch.device("cpu"))
    t = tiled.tiles(layout)
    inv = t.out_index.numpy()  # (N,) position of each token among the (padded) tile rows
    perm = np.argsort(inv, kind="stable")  # (N,) tiled order, padding dropped
    coords = np.unravel_index(perm, shape)  # ndim x (N,) grid coordinates in permuted order
    starts, stops, groups = [], [], []
    for c, L, ks, s, d, causal in zip(coords, shape, *window.args(), strict=True):
        w = axis_windows(L, ks, s, d, causal)
        starts.append(w.start[c])
        stops.append(w.start[c] + w.count[c] * d)
        groups.append(w.group[c])
    as_t = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.int64, device=device)
    return _FlexTables(perm=as_t(perm), inv=as_t(np.argsort(perm)), coord=as_t(np.stack(coords)),
                       start=as_t(np.stack(starts)), stop=as_t(np.stack(stops)),
                       group=as_t(np.stack(groups)))


def _mask_mod(tab: _FlexTables, dilation):
    """``mask_mod(b, h, q, k)``: is permuted key ``k`` a neighbor of permuted query ``q``."""

    def mask_mod(b, h, q_idx, kv_idx):
        keep = None
        for a, d in enumerate(dilation):
            j = tab.coord[a][kv_idx]
            ok = (j >= tab.start[a][q_idx]) & (j < tab.stop[a][q_idx])
            if d > 1:
                ok = ok & ((j % d) == tab.group[a][q_idx])
            keep = ok if keep is None else keep & ok
        return keep

    return mask_mod


def _score_mod(tab: _FlexTables, rpb_flat: torch.Tensor, window: Window):
    """``score_mod``: add ``rpb[h, (k-1) + (j-i)/d per axis]`` (row-major over the axes)."""

    def score_mod(score, b, h, q_idx, kv_idx):
        r = None
        for a, (ks, d) in enumerate(zip(window.kernel_size, window.dilation, strict=True)):
            rel = (tab.coord[a][kv_idx] - tab.coord[a][q_idx]) // d + (ks - 1)
            rel = rel.clamp(0, 2 * ks - 2)  # masked pairs only; keeps the lookup in bounds
            r = rel if r is None else r * (2 * ks - 1) + rel
        return score + rpb_flat[h, r]

    return score_mod


@table_cache(maxsize=64)
def _block_mask(shape: tuple[int, ...], window: Window, device: torch.device):
    """The BlockMask of one configuration (built once: it evaluates mask_mod on every pair)."""
    fa = _flex()
    tab = _tables(shape, window, device)
    n = int(np.prod(shape))
    return fa.create_block_mask(_mask_mod(tab, window.dilation), None, None, n, n, device=device,
                                BLOCK_SIZE=BLOCK, _compile=device.type == "cuda")


_compiled = {}


def _flex_attention(device: torch.device):
    """flex_attention, compiled once on CUDA.

    On CPU it runs eagerly: torch's compiled CPU kernel is inference-only, cannot return the
    lse and fails to lower some shapes, and eager flex materializes the N x N scores, so the
    CPU path is for cross-checks on small inputs, not speed.
    """
    if device.type != "cuda":
        return _flex().flex_attention
    if device.type not in _compiled:
        _compiled[device.type] = torch.compile(_flex().flex_attention, dynamic=False)
    return _compiled[device.type]


def forward(q, k, v, window: Window, scale: float, rpb=None, return_lse: bool = True):
    """``(out, lse)`` with flex attention; out (B, *spatial, heads, Dv), lse (B, *spatial, heads)."""
    B, H = q.shape[0], q.shape[-2]
    shape = tuple(int(n) for n in q.shape[1 : 1 + window.ndim])
    tab = _tables(shape, window, q.device)
    block_mask = _block_mask(shape, window, q.device)
    # (B, *spatial, H, C) -> (B, H, N, C) in the tiled token order.
    qp, kp, vp = (x.reshape(B, -1, H, x.shape[-1]).index_select(1, tab.perm).transpose(1, 2)
                  for x in (q, k, v))  # (B, H, N, C)
    score_mod = None
    if rpb is not None:
        score_mod = _score_mod(tab, rpb.flatten(1), window)
    aux = getattr(_flex(), "AuxRequest", None)  # torch >= 2.9 asks for the lse this way
    want_lse = ({} if not return_lse else {"return_aux": aux(lse=True)} if aux else {"return_lse": True})
    out = _flex_attention(q.device)(qp, kp, vp, score_mod=score_mod, block_mask=block_mask,
                                    scale=scale, **want_lse)  # (B, H, N, Dv)
    out, lse = out if return_lse else (out, None)  # lse: (B, H, N), or an AuxOutput holding it
    lse = getattr(lse, "lse", lse)
    out = out.transpose(1, 2).index_select(1, tab.inv).reshape(*q.shape[:-1], v.shape[-1])
    if lse is not None:
        lse = lse.transpose(1, 2).index_select(1, tab.inv).reshape(q.shape[:-1])
        lse = lse.to(compute_dtype(q.dtype))  # float32 for half inputs (beyond fp16's range)
    return out, lse
