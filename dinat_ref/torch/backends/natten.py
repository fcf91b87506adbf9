"""The ``natten`` backend: NATTEN 0.21's fused neighborhood-attention kernels.

NATTEN (https://github.com/SHI-Labs/NATTEN) ships fused NA kernels (CUTLASS on NVIDIA GPUs,
a ``flex_attention``-based path elsewhere) with the same layout as this package, heads last.
Since 0.20 it has no relative positional bias, so DiNAT's RPB layers cannot use it.
On CPU only its flex-fna path runs: forward only, fp32/fp16/bf16, head_dim a power of two,
and it is slow (it exists for correctness, not speed), so ``auto`` never picks it on CPU.
"""

from __future__ import annotations

import warnings

import torch

from dinat_ref.torch.backends.local import compute_dtype

NAME = "natten"
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _natten():
    """Import NATTEN lazily (it is optional) or return None."""
    try:
        import natten
    except Exception:  # noqa: BLE001 - a broken build is as good as absent
        return None
    return natten


def unavailable(req) -> str | None:
    """Why NATTEN cannot serve ``req`` (a :class:`dinat_ref.torch.functional.Request`), or None."""
    if _natten() is None:
        return "NATTEN is not installed (pip install --no-build-isolation natten==0.21.7)"
    if req.has_rpb:
        return "rpb is given, but NATTEN >= 0.20 has no relative positional bias"
    if req.dtype not in _FLOAT_DTYPES:
        return f"query/key/value dtype is {req.dtype}; NATTEN takes float32, float16 or bfloat16"
    if req.device.type == "cpu":
        if req.needs_grad:
            return "NATTEN on CPU is forward-only, and an input requires grad"
        d = req.head_dim
        if d & (d - 1):
            return f"head dim (query.shape[-1]) is {d}; NATTEN on CPU needs a power of two"
    elif req.device.type != "cuda":
        return f"NATTEN runs on CPU and CUDA, not {req.device.type}"
    if req.v_dim != req.head_dim:
        return f"value dim {req.v_dim} != query dim {req.head_dim}; NATTEN needs them equal"
    return None


def forward(q, k, v, window, scale: float, rpb=None, return_lse: bool = True):
    """``(out, lse)`` from ``natten.na{1,2,3}d``; lse is the natural-log log-sum-exp.

    ``rpb`` must be None (:func:`unavailable` refuses calls with one).
    """
    assert rpb is None, "NATTEN has no rpb"
    natten = _natten()
    fn = {1: natten.na1d, 2: natten.na2d, 3: natten.na3d}[window.ndim]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, lse = fn(
            q, k, v, kernel_size=window.kernel_size, stride=window.stride,
            dilation=window.dilation, is_causal=window.is_causal, scale=scale, return_lse=True,
        )  # (B, *spatial, heads, D), (B, *spatial, heads)
    return out, lse.to(compute_dtype(q.dtype))  # float32 for half inputs (beyond fp16's range)
