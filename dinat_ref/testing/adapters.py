"""Adapters: call a kernel under test the same way, whatever its calling convention.

The verifier speaks one language internally: float64 NumPy arrays in the heads-last
layout ``(B, *spatial, heads, dim)``. A :class:`KernelAdapter` translates to and from
the kernel's own conventions:

* **fused** (NATTEN 0.21 style): ``fn(q, k, v, kernel_size=, stride=, dilation=,
  is_causal=, scale=[, rpb=]) -> out``;
* **unfused pair**: ``qk(q, k, kernel_size=, stride=, dilation=, is_causal=, scale=[, rpb=])
  -> logits (B, *spatial, heads, prod(kernel_size))`` and ``av(probs, v, kernel_size=,
  stride=, dilation=, is_causal=) -> out``; the adapter does the softmax in between;
* **layout** ``"heads_last"`` (NATTEN >= 0.20) or ``"heads_first"``, ``(B, heads, *spatial, dim)``
  (NATTEN <= 0.17 and many hand-written kernels);
* **arrays**: NumPy arrays, or torch tensors on any device (``array="torch", device="cuda"``).

The kernel's *declared limits* (:class:`KernelLimits`) say which cases it cannot run;
those are skipped and listed with the reason, never failed. Torch is imported only
when ``array="torch"`` is used.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dinat_ref.testing.cases import Case

__all__ = ["KernelLimits", "KernelAdapter", "KernelOutputError", "DTYPES"]

DTYPES = ("float64", "float32", "float16", "bfloat16")


class KernelOutputError(RuntimeError):
    """The kernel returned something that is not a valid output (shape, dtype, type)."""


@dataclass(frozen=True)
class KernelLimits:
    """What a kernel supports. Cases outside these limits are skipped, with the reason.

    Attributes:
        dims: numbers of spatial axes it implements (1, 2, 3).
        dtypes: dtypes to test, from ``float64, float32, float16, bfloat16``.
        head_dims: allowed head dims, or None for any.
        rpb: accepts ``rpb=`` (relative positional bias).
        causal: supports ``is_causal``.
        stride: supports ``stride > 1``.
        backward: check gradients. None: whenever the output carries autograd (torch only);
            True: require it; False: never.
    """

    dims: tuple[int, ...] = (1, 2, 3)
    dtypes: tuple[str, ...] = ("float32",)
    head_dims: tuple[int, ...] | None = None
    rpb: bool = True
    causal: bool = True
    stride: bool = True
    backward: bool | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad:
            raise ValueError(f"KernelLimits: dtypes={self.dtypes} has {bad}; choose from {DTYPES}.")
        if not set(self.dims) <= {1, 2, 3}:
            raise ValueError(f"KernelLimits: dims={self.dims} must be a subset of (1, 2, 3).")

    def sweep_options(self) -> dict:
        """The limits that shape the random sweep (see :func:`~dinat_ref.testing.cases.random_cases`)."""
        return dict(head_dims=self.head_dims, rpb=self.rpb, causal=self.causal, stride=self.stride)

    def skip_reason(self, case: Case) -> str | None:
        """Why ``case`` is outside these limits (every reason), or None when the kernel should run it."""
        if case.ndim not in self.dims:
            return f"{case.ndim}-D not supported (dims={self.dims})"
        reasons = []
        if self.head_dims is not None and case.head_dim not in self.head_dims:
            reasons.append(f"head_dim={case.head_dim} not in head_dims={self.head_dims}")
        if case.use_rpb and not self.rpb:
            reasons.append("rpb not supported")
        if case.causal and not self.causal:
            reasons.append("is_causal not supported")
        if case.strided and not self.stride:
            reasons.append("stride > 1 not supported")
        return "; ".join(reasons) or None


class KernelAdapter:
    """A kernel under test, callable on the verifier's float64 heads-last arrays.

    Args:
        fn: fused kernel ``fn(q, k, v, kernel_size=, stride=, dilation=, is_causal=, scale=[, rpb=])``.
        qk, av: the unfused pair instead of ``fn``.
        layout: ``"heads_last"`` ``(B, *spatial, heads, dim)`` or
            ``"heads_first"`` ``(B, heads, *spatial, dim)``.
        array: ``"numpy"`` or ``"torch"``: what the kernel takes and returns.
        device: torch device for the inputs (``"cpu"``, ``"cuda"``, ...).
        limits: the kernel's :class:`KernelLimits`.
        name: shown in reports (default: the function's name).
    """

    def __init__(self, fn: Callable | None = None, *, qk: Callable | None = None,
                 av: Callable | None = None, layout: str = "heads_last", array: str = "torch",
                 device: str = "cpu", limits: KernelLimits | None = None, name: str | None = None):
        if (fn is None) == (qk is None or av is None):
            raise ValueError("KernelAdapter: give either fn (fused) or both qk and av (unfused), not both.")
        for label, f in (("fn", fn), ("qk", qk), ("av", av)):
            if f is not None and not callable(f):
                raise TypeError(f"KernelAdapter: {label}={f!r} is not callable.")
        if layout not in ("heads_last", "heads_first"):
            raise ValueError(f"KernelAdapter: layout={layout!r} must be 'heads_last' or 'heads_first'.")
        if array not in ("numpy", "torch"):
            raise ValueError(f"KernelAdapter: array={array!r} must be 'numpy' or 'torch'.")
        self.fn, self.qk, self.av = fn, qk, av
        self.layout, self.array, self.device = layout, array, device
        self.limits = limits or KernelLimits()
        if array == "torch" and importlib.util.find_spec("torch") is None:
            raise ValueError("KernelAdapter: array='torch' but torch is not installed; "
                             "for a kernel on NumPy arrays pass array='numpy'.")
        if array == "numpy" and self.limits.backward:
            raise ValueError("KernelAdapter: backward=True needs array='torch' (NumPy has no autograd).")
        self.name = name or _name(fn if fn is not None else qk)

    # ------------------------------------------------------------------ conversions
    def skip_reason(self, case: Case, dtype: str) -> str | None:
        """Why the kernel cannot run ``case`` in ``dtype`` (limits, or NumPy's missing bfloat16)."""
        if dtype == "bfloat16" and self.array == "numpy":
            return "NumPy has no bfloat16"
        return self.limits.skip_reason(case)

    def to_native(self, x: np.ndarray, dtype: str, requires_grad: bool = False,
                  activation: bool = True) -> Any:
        """float64 array -> the kernel's array type and dtype; activations also to its layout.

        ``activation=False`` is for the RPB table, which has no heads-first/last variant.
        """
        if self.layout == "heads_first" and activation:
            x = np.moveaxis(x, -2, 1)  # (B, *spatial, heads, D) -> (B, heads, *spatial, D)
        if self.array == "numpy":
            return np.ascontiguousarray(x.astype(dtype))
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x)).to(device=self.device, dtype=getattr(torch, dtype))
        return t.requires_grad_(requires_grad)

    def to_float64(self, y: Any, activation: bool = True) -> np.ndarray:
        """The kernel's array -> float64 NumPy (activations back to heads-last)."""
        if self.array == "torch":
            y = y.detach().to("cpu").double().numpy()
        y = np.asarray(y, dtype=np.float64)
        if self.layout == "heads_first" and activation:
            y = np.moveaxis(y, 1, -2)  # (B, heads, *spatial, D) -> (B, *spatial, heads, D)
        return y

    def quantize(self, x: np.ndarray, dtype: str) -> np.ndarray:
        """``x`` rounded to ``dtype`` and back to float64: the inputs the kernel really sees."""
        return self.to_float64(self.to_native(x, dtype, activation=False), activation=False)

    # ------------------------------------------------------------------ calling
    def window_kwargs(self, case: Case) -> dict:
        return dict(kernel_size=case.kernel_size, stride=case.stride, dilation=case.dilation,
                    is_causal=case.is_causal)

    def call(self, case: Case, q: Any, k: Any, v: Any, rpb: Any, scale: float | None) -> Any:
        """Run the kernel on native inputs; returns its native output, validated."""
        window = self.window_kwargs(case)
        extra = {} if rpb is None else {"rpb": rpb}
        if self.fn is not None:
            out = self.fn(q, k, v, **window, scale=scale, **extra)
        else:
            logits = self.qk(q, k, **window, scale=scale, **extra)
            self._check(logits, (*q.shape[:-1], int(np.prod(case.kernel_size))), q, "qk logits")
            out = self.av(self._softmax(logits), v, **window)
        self._check(out, tuple(v.shape), v, "output")
        return out

    def _softmax(self, logits: Any) -> Any:
        """Softmax over the neighbor slots (the last axis), in the kernel's own array type."""
        if self.array == "torch":
            return logits.softmax(dim=-1)
        m = logits.max(axis=-1, keepdims=True)  # (..., 1)
        e = np.exp(logits - m)  # (..., K)
        return e / e.sum(axis=-1, keepdims=True)

    def _check(self, y: Any, shape: tuple, like: Any, what: str) -> None:
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            raise KernelOutputError(
                f"{what}: the kernel returned {type(y).__name__}, expected one array/tensor "
                f"of shape {shape}.")
        if tuple(y.shape) != tuple(shape):
            layout = "(B, heads, *spatial, " if self.layout == "heads_first" else "(B, *spatial, heads, "
            layout += "dim of v)" if what == "output" else "prod(kernel_size))"
            raise KernelOutputError(
                f"{what}: the kernel returned shape {tuple(y.shape)}, expected {tuple(shape)} {layout}.")
        if y.dtype != like.dtype:
            raise KernelOutputError(f"{what}: the kernel returned dtype {y.dtype}, expected {like.dtype} "
                                    f"(the dtype of its inputs).")
        if self.array == "torch" and getattr(y, "device", None) != getattr(like, "device", None):
            raise KernelOutputError(f"{what}: the kernel returned a tensor on {y.device}, "
                                    f"expected {like.device} (the device of its inputs).")

    def run(self, case: Case, q: np.ndarray, k: np.ndarray, v: np.ndarray, rpb: np.ndarray | None,
            dtype: str, scale: float | None = None) -> np.ndarray:
        """Forward pass on float64 heads-last arrays: cast, call, convert back to float64."""
        native = [self.to_native(x, dtype) for x in (q, k, v)]
        native_rpb = None if rpb is None else self.to_native(rpb, dtype, activation=False)
        out = self.call(case, *native, native_rpb, scale)
        return self.to_float64(out)

    def run_with_grad(self, case: Case, inputs, dtype: str) -> tuple[np.ndarray, dict | None]:
        """Forward (and backward when the kernel is differentiable) on the case's inputs.

        Returns:
            ``(out, grads)``: out float64 heads-last; grads ``{"dq", "dk", "dv"[, "drpb"]}``
            float64, or None when backward is not checked.
        """
        want_grad = self.array == "torch" and self.limits.backward is not False
        names = ["q", "k", "v"] + (["rpb"] if inputs.rpb is not None else [])
        native = {n: self.to_native(getattr(inputs, n), dtype, requires_grad=want_grad,
                                    activation=n != "rpb") for n in names}
        grad_mode = contextlib.nullcontext()
        if want_grad:
            import torch

            grad_mode = torch.enable_grad()  # even if the caller runs under torch.no_grad()
        with grad_mode:
            out = self.call(case, native["q"], native["k"], native["v"], native.get("rpb"), case.scale)
        out64 = self.to_float64(out)
        if not want_grad:
            return out64, None
        if not getattr(out, "requires_grad", False):
            if self.limits.backward:
                raise KernelOutputError("backward=True was declared but the output does not require "
                                        "grad (no autograd graph from q, k, v to the output).")
            return out64, None
        out.backward(self.to_native(inputs.d_out, dtype))
        grads = {}
        for n in names:
            g = native[n].grad  # None: autograd sees no path from n to the output, i.e. zero
            grads[f"d{n}"] = (np.zeros(getattr(inputs, n).shape) if g is None
                              else self.to_float64(g, activation=n != "rpb"))
        return out64, grads


def _name(fn: Callable) -> str:
    """A readable name: ``na2d(backend='torch')`` for a partial, else the qualified name."""
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"{_name(fn.func)}({', '.join(args)})"
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
