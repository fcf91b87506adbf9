"""Neighborhood attention in PyTorch: one API, several backends, picked per call.

The functions mirror :mod:`dinat_ref.numpy` exactly (names, arguments, heads-last layout
``(B, *spatial, heads, dim)``, ``rpb`` of shape ``(heads, 2k0-1, ...)``, natural-log ``lse``),
plus a ``backend`` keyword:

=========  ===========================================================================
backend    what runs
=========  ===========================================================================
"torch"    :mod:`.backends.tiled`: pure torch, any device and float dtype, autograd.
"flex"     :mod:`.backends.flex`: ``flex_attention`` + a block mask from the rule (GPU).
"natten"   :mod:`.backends.natten`: NATTEN 0.21 fused kernels (no rpb).
"auto"     the fastest backend that can serve the call (see :func:`explain_backend`).
=========  ===========================================================================

Every call is checked before any work (:func:`dinat_ref.checks.check_attention_args` for
shapes/dtypes/devices, then the backend's own limits); a call no backend can serve raises a
``ValueError`` that says why and which backend would work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from dinat_ref.checks import Bools, Ints, Window, check_attention_args, check_probs_args
from dinat_ref.torch.backends import flex as flex_backend
from dinat_ref.torch.backends import local
from dinat_ref.torch.backends import natten as natten_backend
from dinat_ref.torch.backends import tiled as torch_backend

__all__ = [
    "BACKENDS", "Request", "BackendChoice", "explain_backend",
    "na_forward", "na_qk", "na_av",
    "na1d", "na2d", "na3d", "na1d_qk", "na2d_qk", "na3d_qk", "na1d_av", "na2d_av", "na3d_av",
]

log = logging.getLogger(__name__)

# name -> backend module; each has NAME, unavailable(req) -> str | None, forward(...).
BACKENDS = {"torch": torch_backend, "flex": flex_backend, "natten": natten_backend}
_FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Request:
    """What a backend needs to know to say yes or no (no tensors, only their description)."""

    na_dim: int
    spatial: tuple[int, ...]
    window: Window
    heads: int
    head_dim: int
    v_dim: int
    dtype: torch.dtype
    device: torch.device
    has_rpb: bool
    needs_grad: bool
    return_lse: bool


@dataclass
class BackendChoice:
    """The outcome of backend selection: which backend runs and why the others do not.

    Attributes:
        chosen: the backend that runs, or None if none can.
        requested: the ``backend`` argument ("auto" or a name).
        reasons: backend name -> "chosen" / why it was skipped, in preference order.
    """

    chosen: str | None
    requested: str
    reasons: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"backend={self.requested!r} -> {self.chosen or 'none'}"]
        lines += [f"  {name:<7} {why}" for name, why in self.reasons.items()]
        return "\n".join(lines)


def _preference(device: torch.device) -> list[str]:
    """Fastest first. CPU: measured (benchmarks/bench_torch_na.py), the tiled torch path wins by
    far. CUDA: fused kernels first (benchmarks/gpu_check.py times all three on a GPU)."""
    if device.type == "cuda":
        return ["natten", "flex", "torch"]
    return ["torch", "flex", "natten"]


def _auto_skip(name: str, req: Request) -> str | None:
    """Reasons ``auto`` skips a backend that could technically run (it would be slow)."""
    if req.device.type == "cpu" and name == "natten":
        return ("works on CPU (forward only) but is hundreds of times slower than 'torch' there; "
                "ask for backend='natten' explicitly")
    if req.device.type == "cpu" and name == "flex":
        return flex_backend.CPU_AUTO_SKIP
    return None


def _choose(req: Request, backend: str) -> BackendChoice:
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(
            f"backend={backend!r} is not one of 'auto', {', '.join(repr(b) for b in BACKENDS)}."
        )
    choice = BackendChoice(chosen=None, requested=backend)
    for name in _preference(req.device):
        why_not = BACKENDS[name].unavailable(req)
        slow = _auto_skip(name, req) if backend == "auto" else None
        if why_not is not None:
            choice.reasons[name] = f"skipped: {why_not}"
        elif slow is not None:
            choice.reasons[name] = f"not picked by auto: {slow}"
        elif choice.chosen is None and backend in ("auto", name):
            choice.chosen = name
            choice.reasons[name] = "chosen"
        else:
            choice.reasons[name] = ("available (slower here)" if backend == "auto"
                                    else "available (not requested)")
    return choice


def _request(q, k, v, na_dim, kernel_size, stride, dilation, is_causal, scale, rpb,
             return_lse, where) -> Request:
    """Run every argument check (shared + torch-specific) and describe the call."""
    for name, x in (("query", q), ("key", k), ("value", v), ("rpb", rpb)):
        if x is not None and not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__} "
                            f"(use dinat_ref.numpy for NumPy arrays).")
    window = check_attention_args(
        q, k, v, na_dim, kernel_size, stride, dilation, is_causal, rpb, scale, where)
    if q.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{where}: query has dtype {q.dtype}; neighborhood attention needs a floating "
                         f"dtype (float64, float32, float16 or bfloat16).")
    needs_grad = torch.is_grad_enabled() and any(
        x is not None and x.requires_grad for x in (q, k, v, rpb))
    return Request(
        na_dim=na_dim, spatial=tuple(int(n) for n in q.shape[1 : 1 + na_dim]), window=window,
        heads=int(q.shape[-2]),
        head_dim=int(q.shape[-1]), v_dim=int(v.shape[-1]), dtype=q.dtype, device=q.device,
        has_rpb=rpb is not None, needs_grad=needs_grad, return_lse=bool(return_lse))


def _raise_none(choice: BackendChoice, where: str) -> None:
    working = [n for n, why in choice.reasons.items() if not why.startswith("skipped")]
    hint = (f"backend={working[0]!r} would work" if working
            else "no backend on this machine can serve it")
    why = choice.reasons.get(choice.requested, "no backend applies").removeprefix("skipped: ")
    raise ValueError(f"{where}: backend={choice.requested!r} cannot serve this call: {why}; {hint}."
                     f"\n{choice}")


def explain_backend(q, k, v, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
                    is_causal: Bools = False, scale: float | None = None, rpb=None,
                    return_lse: bool = False, backend: str = "auto") -> BackendChoice:
    """Which backend ``na{n}d(q, k, v, ...)`` would run, and why each other one is skipped.

    ``n`` is read from ``q.ndim - 3``. Prints nicely: ``print(explain_backend(q, k, v, 7))``.
    """
    if not isinstance(q, torch.Tensor) or not 4 <= q.ndim <= 6:
        got = f"shape {tuple(q.shape)}" if isinstance(q, torch.Tensor) else type(q).__name__
        raise ValueError(f"explain_backend: query must be a (batch, *spatial, heads, dim) tensor with "
                         f"1 to 3 spatial axes, got {got}.")
    na_dim = q.ndim - 3
    req = _request(q, k, v, na_dim, kernel_size, stride, dilation, is_causal, scale, rpb,
                   return_lse, f"na{na_dim}d")
    return _choose(req, backend)


# ----------------------------------------------------------------------------------------
# The N-D operators
# ----------------------------------------------------------------------------------------

def na_forward(q, k, v, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
               is_causal: Bools = False, scale: float | None = None, rpb=None,
               return_lse: bool = False, backend: str = "auto", *, na_dim: int):
    """Neighborhood attention ``out = softmax((scale q) . k_nb + rpb) . v_nb``.

    Args:
        q, k: (B, *spatial, heads, dim). v: (B, *spatial, heads, dim_v).
        kernel_size, stride, dilation, is_causal: per axis, an int/bool or a tuple (see
            :mod:`dinat_ref.neighborhood`).
        scale: multiplies q; None means ``dim ** -0.5``.
        rpb: (heads, 2k0-1, ...) relative positional bias, or None.
        return_lse: also return the natural-log log-sum-exp of the logits.
        backend: "auto", "torch", "flex" or "natten".

    Returns:
        out (B, *spatial, heads, dim_v), and with ``return_lse`` also lse (B, *spatial, heads),
        float32 for half inputs (logits, softmax and lse are computed in float32 for them).
        A NaN or inf input only reaches the queries whose neighborhood holds it, as in
        :mod:`dinat_ref.numpy`; a query whose logits are all ``-inf`` gets output 0 and lse
        ``-inf``; batch 0 or heads 0 give empty outputs.
    """
    where = f"na{na_dim}d"
    req = _request(q, k, v, na_dim, kernel_size, stride, dilation, is_causal, scale, rpb,
                   return_lse, where)
    choice = _choose(req, backend)
    if choice.chosen is None:
        _raise_none(choice, where)
    log.debug("%s: %s", where, choice)
    scale = req.head_dim ** -0.5 if scale is None else float(scale)
    if q.numel() == 0:  # batch 0 or heads 0
        out, lse = _empty(q, k, v, rpb)
    else:
        out, lse = local.attend(BACKENDS[choice.chosen].forward, q, k, v, req.window, scale, rpb,
                                req.return_lse)
    return (out, lse) if return_lse else out


def _empty(q, k, v, rpb) -> tuple[torch.Tensor, torch.Tensor]:
    """The outputs of a call with batch 0 or heads 0: empty, but part of the graph (zero grads)."""
    tie = sum(x.sum() for x in (q, k, v, rpb) if x is not None) * 0  # () 0, reaches every input
    out = v.new_zeros(v.shape) + tie  # (B, *spatial, H, Dv), no elements
    return out, q.new_zeros(q.shape[:-1]) + tie  # lse (B, *spatial, H)


def _qkav_backend(backend: str, where: str) -> None:
    if backend not in ("auto", "torch"):
        why = ("is not one of 'auto', 'torch', 'flex', 'natten'" if backend not in BACKENDS
               else "has no unfused qk/av (it only runs the fused forward)")
        raise ValueError(f"{where}: backend={backend!r} {why}; use backend='torch' (or 'auto').")


def na_qk(q, k, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
          scale: float | None = None, rpb=None, backend: str = "auto", *, na_dim: int):
    """Logits in neighborhood layout: (B, *spatial, heads, prod(kernel_size)), masked slots -inf.

    Only the torch backend has it (the fused kernels never materialize the logits).
    """
    where = f"na{na_dim}d_qk"
    _qkav_backend(backend, where)
    req = _request(q, k, k, na_dim, kernel_size, stride, dilation, is_causal, scale, rpb,
                   False, where)
    scale = req.head_dim ** -0.5 if scale is None else float(scale)
    if q.numel() == 0:  # batch 0 or heads 0
        tie = sum(x.sum() for x in (q, k, rpb) if x is not None) * 0  # () 0, reaches every input
        return q.new_zeros(*q.shape[:-1], req.window.slots) + tie
    return torch_backend.qk(q, k, req.window, scale, rpb)


def na_av(probs, v, kernel_size: Ints, stride: Ints = 1, dilation: Ints = 1,
          is_causal: Bools = False, backend: str = "auto", *, na_dim: int):
    """``out_n = sum_t probs[n, t] v[neighbor t of n]``: (B, *spatial, heads, dim).

    Args:
        probs: (B, *spatial, heads, prod(kernel_size)), e.g. a softmax of :func:`na_qk`.
        v: (B, *spatial, heads, dim).
    """
    where = f"na{na_dim}d_av"
    _qkav_backend(backend, where)
    for name, x in (("attention", probs), ("value", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(x).__name__}.")
    window = check_probs_args(probs, v, na_dim, kernel_size, stride, dilation, is_causal, where)
    if probs.device != v.device:
        raise ValueError(f"{where}: attention is on {probs.device} but value is on {v.device}; "
                         f"use one device.")
    if v.numel() == 0:
        return v.new_zeros(v.shape) + (probs.sum() + v.sum()) * 0
    return local.weigh(torch_backend.av, probs, v, window)


# ----------------------------------------------------------------------------------------
# 1D / 2D / 3D names, as in NATTEN: the arguments are those of the N-D functions above
# ----------------------------------------------------------------------------------------

def na1d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False, backend="auto"):
    """1-D neighborhood attention on ``(B, L, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse,
                      backend, na_dim=1)


def na2d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False, backend="auto"):
    """2-D neighborhood attention on ``(B, H, W, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse,
                      backend, na_dim=2)


def na3d(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
         return_lse=False, backend="auto"):
    """3-D neighborhood attention on ``(B, D, H, W, heads, dim)``; see :func:`na_forward`."""
    return na_forward(q, k, v, kernel_size, stride, dilation, is_causal, scale, rpb, return_lse,
                      backend, na_dim=3)


def na1d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
            backend="auto"):
    """1-D logits in neighborhood layout, ``(B, L, heads, k)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, backend, na_dim=1)


def na2d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
            backend="auto"):
    """2-D logits in neighborhood layout, ``(B, H, W, heads, k0 * k1)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, backend, na_dim=2)


def na3d_qk(q, k, kernel_size, stride=1, dilation=1, is_causal=False, scale=None, rpb=None,
            backend="auto"):
    """3-D logits in neighborhood layout, ``(B, D, H, W, heads, k0 * k1 * k2)``; see :func:`na_qk`."""
    return na_qk(q, k, kernel_size, stride, dilation, is_causal, scale, rpb, backend, na_dim=3)


def na1d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False, backend="auto"):
    """1-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, backend, na_dim=1)


def na2d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False, backend="auto"):
    """2-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, backend, na_dim=2)


def na3d_av(probs, v, kernel_size, stride=1, dilation=1, is_causal=False, backend="auto"):
    """3-D weighted sum of neighbor values; see :func:`na_av`."""
    return na_av(probs, v, kernel_size, stride, dilation, is_causal, backend, na_dim=3)
