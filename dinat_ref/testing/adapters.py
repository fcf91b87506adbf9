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
* **arrays**: NumPy arrays, torch tensors on any device (``array="torch", device="cuda"``),
  or JAX arrays (``array="jax"``, CPU; float64 only with ``jax_enable_x64``);
* **backward**: autograd (torch), ``jax.vjp`` (JAX), or an explicit NATTEN-style backward
  kernel ``bwd(d_out, q, k, v, out, lse, kernel_size=, stride=, dilation=, is_causal=,
  scale=[, rpb=]) -> (dq, dk, dv[, drpb])``.

Every call is guarded against false passes: the output must be a new array of the
kernel's own array type (not one of its inputs, nor a view of one), and the inputs must
be unchanged afterwards (:class:`KernelMutationError` otherwise).

The kernel's *declared limits* (:class:`KernelLimits`) say which cases it cannot run;
those are skipped and listed with the reason, never failed. Torch and JAX are imported
only when their array type is used.
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

__all__ = ["KernelLimits", "KernelAdapter", "KernelOutputError", "KernelMutationError", "DTYPES",
           "ARRAYS"]

DTYPES = ("float64", "float32", "float16", "bfloat16")
ARRAYS = ("numpy", "torch", "jax")  # the array libraries a kernel can take; "auto" detects one


class KernelOutputError(RuntimeError):
    """The kernel returned something that is not a valid output (shape, dtype, type, aliasing)."""


class KernelMutationError(RuntimeError):
    """The kernel wrote into its inputs (q, k, v, rpb or d_out): a kernel must leave them as they are."""


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
        dilation: supports ``dilation > 1``.
        even_kernel: supports even kernel sizes.
        backward: check gradients. None: whenever the output carries autograd (torch only);
            True: require it; False: never.
    """

    dims: tuple[int, ...] = (1, 2, 3)
    dtypes: tuple[str, ...] = ("float32",)
    head_dims: tuple[int, ...] | None = None
    rpb: bool = True
    causal: bool = True
    stride: bool = True
    dilation: bool = True
    even_kernel: bool = True
    backward: bool | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.dtypes if d not in DTYPES]
        if bad:
            raise ValueError(f"KernelLimits: dtypes={self.dtypes} has {bad}; choose from {DTYPES}.")
        if not set(self.dims) <= {1, 2, 3}:
            raise ValueError(f"KernelLimits: dims={self.dims} must be a subset of (1, 2, 3).")

    def sweep_options(self) -> dict:
        """The limits that shape the random sweep (see :func:`~dinat_ref.testing.cases.random_cases`)."""
        return dict(head_dims=self.head_dims, rpb=self.rpb, causal=self.causal, stride=self.stride,
                    dilation=self.dilation, even_kernel=self.even_kernel)

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
        if max(case.dilation) > 1 and not self.dilation:
            reasons.append("dilation > 1 not supported")
        if any(k % 2 == 0 for k in case.kernel_size) and not self.even_kernel:
            reasons.append("even kernel_size not supported")
        return "; ".join(reasons) or None


class KernelAdapter:
    """A kernel under test, callable on the verifier's float64 heads-last arrays.

    Args:
        fn: fused kernel ``fn(q, k, v, kernel_size=, stride=, dilation=, is_causal=, scale=[, rpb=])``.
        qk: the q.k half of an unfused pair instead of ``fn`` (see the module docstring).
        av: the attention.v half of the unfused pair.
        bwd: an explicit backward kernel ``bwd(d_out, q, k, v, out, lse, kernel_size=, stride=,
            dilation=, is_causal=, scale=[, rpb=]) -> (dq, dk, dv[, drpb])`` (NATTEN style), checked
            against the reference gradients. It gets the reference's ``out`` and ``lse``
            (``lse`` of shape ``(B, *spatial, heads)``, heads-first ``(B, heads, *spatial)``)
            rounded to the case's dtype, so a forward bug does not hide in the backward check.
        layout: ``"heads_last"`` ``(B, *spatial, heads, dim)`` or
            ``"heads_first"`` ``(B, heads, *spatial, dim)``.
        array: ``"numpy"``, ``"torch"`` or ``"jax"``: what the kernel takes and returns
            (:func:`~dinat_ref.testing.detect.detect_array` finds it when unknown).
        device: torch device for the inputs (``"cpu"``, ``"cuda"``, ...).
        limits: the kernel's :class:`KernelLimits`.
        name: shown in reports (default: the function's name).

    Raises:
        ValueError: on an unknown layout or array, a missing library, or ``backward=True``
            with NumPy arrays and no ``bwd``.
    """

    def __init__(self, fn: Callable | None = None, *, qk: Callable | None = None,
                 av: Callable | None = None, bwd: Callable | None = None, layout: str = "heads_last",
                 array: str = "torch", device: str = "cpu", limits: KernelLimits | None = None,
                 name: str | None = None):
        if (fn is None) == (qk is None or av is None):
            raise ValueError("KernelAdapter: give either fn (fused) or both qk and av (unfused), not both.")
        for label, f in (("fn", fn), ("qk", qk), ("av", av), ("bwd", bwd)):
            if f is not None and not callable(f):
                raise TypeError(f"KernelAdapter: {label}={f!r} is not callable.")
        if layout not in ("heads_last", "heads_first"):
            raise ValueError(f"KernelAdapter: layout={layout!r} must be 'heads_last' or 'heads_first'.")
        if array not in ARRAYS:
            raise ValueError(f"KernelAdapter: array={array!r} must be one of {ARRAYS} "
                             f"(verify() also takes 'auto' to detect it).")
        self.fn, self.qk, self.av, self.bwd = fn, qk, av, bwd
        self.layout, self.array, self.device = layout, array, device
        self.limits = limits or KernelLimits()
        if array in ("torch", "jax") and not installed(array):
            raise ValueError(f"KernelAdapter: array={array!r} but {array} is not installed; "
                             f"for a kernel on NumPy arrays pass array='numpy'.")
        if array == "numpy" and self.limits.backward and bwd is None:
            raise ValueError("KernelAdapter: backward=True with array='numpy' needs an explicit backward "
                             "kernel (bwd=); NumPy has no autograd.")
        if array != "torch" and device != "cpu":
            raise ValueError(f"KernelAdapter: device={device!r} applies to torch tensors only; "
                             f"array={array!r} runs on the CPU.")
        self.name = name or _name(fn if fn is not None else qk)

    # ------------------------------------------------------------------ conversions
    def skip_reason(self, case: Case, dtype: str) -> str | None:
        """Why the kernel cannot run ``case`` in ``dtype`` (limits, or the array library's dtypes)."""
        if dtype == "bfloat16" and self.array == "numpy":
            return "NumPy has no bfloat16"
        if dtype == "float64" and self.array == "jax":
            import jax

            if not jax.config.jax_enable_x64:
                return "JAX runs float64 only with jax.config.update('jax_enable_x64', True)"
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
        if self.array == "jax":
            import jax.numpy as jnp

            return jnp.asarray(np.ascontiguousarray(x), dtype=getattr(jnp, dtype))
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

    # ------------------------------------------------------------------ guards against false passes
    def is_native(self, y: Any) -> bool:
        """True when ``y`` is an array of the kernel's own library (a JAX tracer counts)."""
        if self.array == "numpy":
            return isinstance(y, np.ndarray)
        if self.array == "jax":
            import jax

            return isinstance(y, jax.Array)
        import torch

        return isinstance(y, torch.Tensor)

    def _snapshot(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Copies of the native inputs, to find out later whether the kernel wrote into them."""
        if self.array == "jax":
            return {}  # JAX arrays are immutable
        if self.array == "numpy":
            return {n: x.copy() for n, x in inputs.items() if x is not None}
        return {n: x.detach().clone() for n, x in inputs.items() if x is not None}

    def _check_unchanged(self, inputs: dict[str, Any], before: dict[str, Any]) -> None:
        changed = []
        for n, old in before.items():
            new = inputs[n]
            if self.array == "numpy":
                same = new.shape == old.shape and np.array_equal(new, old)
            else:
                import torch

                same = new.shape == old.shape and torch.equal(new.detach(), old)
            if not same:
                changed.append(n)
        if changed:
            raise KernelMutationError(
                f"the kernel modified its input(s) {', '.join(changed)} in place; a kernel must leave "
                f"q, k, v (and rpb) unchanged (write the output into new memory).")

    def _check_fresh(self, y: Any, inputs: dict[str, Any], what: str) -> None:
        """The output must be new memory, not an input or a view of one."""
        for n, x in inputs.items():
            if x is None:
                continue
            if y is x:
                shared = True
            elif self.array == "numpy":
                shared = np.may_share_memory(y, x)
            elif self.array == "torch":
                shared = (y.device == x.device and y.untyped_storage().data_ptr()
                          == x.untyped_storage().data_ptr() and y.numel() > 0)
            else:
                shared = False
            if shared:
                raise KernelOutputError(
                    f"{what}: the kernel returned its input {n} (or a view of its memory) instead of a "
                    f"new array; a correct output never aliases the inputs.")

    # ------------------------------------------------------------------ calling
    def window_kwargs(self, case: Case) -> dict:
        return dict(kernel_size=case.kernel_size, stride=case.stride, dilation=case.dilation,
                    is_causal=case.is_causal)

    def call(self, case: Case, q: Any, k: Any, v: Any, rpb: Any, scale: float | None) -> Any:
        """Run the kernel on native inputs; returns its native output, validated."""
        window = self.window_kwargs(case)
        extra = {} if rpb is None else {"rpb": rpb}
        inputs = {"q": q, "k": k, "v": v, "rpb": rpb}
        if self.fn is not None:
            out = self.fn(q, k, v, **window, scale=scale, **extra)
        else:
            logits = self.qk(q, k, **window, scale=scale, **extra)
            self._check(logits, (*q.shape[:-1], int(np.prod(case.kernel_size))), q, "qk logits")
            self._check_fresh(logits, inputs, "qk logits")
            out = self.av(self._softmax(logits), v, **window)
        self._check(out, tuple(v.shape), v, "output", case)
        self._check_fresh(out, inputs, "output")
        return out

    def _softmax(self, logits: Any) -> Any:
        """Softmax over the neighbor slots (the last axis), in the kernel's own array type."""
        if self.array == "torch":
            return logits.softmax(dim=-1)
        if self.array == "jax":
            import jax

            return jax.nn.softmax(logits, axis=-1)
        m = logits.max(axis=-1, keepdims=True)  # (..., 1)
        e = np.exp(logits - m)  # (..., K)
        return e / e.sum(axis=-1, keepdims=True)

    def _check(self, y: Any, shape: tuple, like: Any, what: str, case: Case | None = None) -> None:
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            raise KernelOutputError(
                f"{what}: the kernel returned {type(y).__name__}, expected one array/tensor "
                f"of shape {shape}.")
        if not self.is_native(y):
            raise KernelOutputError(
                f"{what}: the kernel returned a {type(y).__module__}.{type(y).__name__} for {self.array} "
                f"inputs; it must return the same kind of array it is given.")
        if tuple(y.shape) != tuple(shape):
            layout = "(B, heads, *spatial, " if self.layout == "heads_first" else "(B, *spatial, heads, "
            layout += "dim of v)" if what == "output" else "prod(kernel_size))"
            hint = _strided_hint(tuple(y.shape), tuple(shape), case, self.layout) if case else ""
            raise KernelOutputError(
                f"{what}: the kernel returned shape {tuple(y.shape)}, expected {tuple(shape)} {layout}."
                f"{hint}")
        if y.dtype != like.dtype:
            raise KernelOutputError(f"{what}: the kernel returned dtype {y.dtype}, expected {like.dtype} "
                                    f"(the dtype of its inputs).")
        if self.array == "torch" and getattr(y, "device", None) != getattr(like, "device", None):
            raise KernelOutputError(f"{what}: the kernel returned a tensor on {y.device}, "
                                    f"expected {like.device} (the device of its inputs).")

    def run(self, case: Case, q: np.ndarray, k: np.ndarray, v: np.ndarray, rpb: np.ndarray | None,
            dtype: str, scale: float | None = None) -> np.ndarray:
        """Forward pass on float64 heads-last arrays: cast, call, convert back to float64."""
        native = {"q": self.to_native(q, dtype), "k": self.to_native(k, dtype),
                  "v": self.to_native(v, dtype),
                  "rpb": None if rpb is None else self.to_native(rpb, dtype, activation=False)}
        before = self._snapshot(native)
        out = self.call(case, native["q"], native["k"], native["v"], native["rpb"], scale)
        self._check_unchanged(native, before)
        return self.to_float64(out)

    def run_with_grad(self, case: Case, inputs, dtype: str, reference: tuple | None = None
                      ) -> tuple[np.ndarray, dict | None]:
        """Forward (and backward when the kernel is differentiable) on the case's inputs.

        Args:
            case, dtype: what to run.
            inputs: the case's :class:`~dinat_ref.testing.cases.CaseInputs`, already rounded to ``dtype``.
            reference: ``(out, lse)`` of the float64 reference, needed by an explicit ``bwd``.

        Returns:
            ``(out, grads)``: out float64 heads-last; grads ``{"dq", "dk", "dv"[, "drpb"]}``
            float64, or None when backward is not checked.
        """
        names = ["q", "k", "v"] + (["rpb"] if inputs.rpb is not None else [])
        if self.bwd is not None:
            return self._run_explicit_backward(case, inputs, dtype, names, reference)
        if self.array == "jax":
            return self._run_jax(case, inputs, dtype, names)
        want_grad = self.array == "torch" and self.limits.backward is not False
        native = {n: self.to_native(getattr(inputs, n), dtype, requires_grad=want_grad,
                                    activation=n != "rpb") for n in names}
        before = self._snapshot(native)
        grad_mode = contextlib.nullcontext()
        if want_grad:
            import torch

            grad_mode = torch.enable_grad()  # even if the caller runs under torch.no_grad()
        with grad_mode:
            out = self.call(case, native["q"], native["k"], native["v"], native.get("rpb"), case.scale)
        self._check_unchanged(native, before)
        out64 = self.to_float64(out)
        if not want_grad:
            return out64, None
        if not getattr(out, "requires_grad", False):
            if self.limits.backward:
                raise KernelOutputError("backward=True was declared but the output does not require "
                                        "grad (no autograd graph from q, k, v to the output).")
            return out64, None
        out.backward(self.to_native(inputs.d_out, dtype))
        self._check_unchanged(native, before)
        grads = {}
        for n in names:
            g = native[n].grad  # None: autograd sees no path from n to the output, i.e. zero
            grads[f"d{n}"] = (np.zeros(getattr(inputs, n).shape) if g is None
                              else self.to_float64(g, activation=n != "rpb"))
        return out64, grads

    def _run_jax(self, case: Case, inputs, dtype: str, names: list[str]) -> tuple[np.ndarray, dict | None]:
        """JAX: forward, and the gradients through ``jax.vjp`` unless backward is off."""
        import jax

        native = [self.to_native(getattr(inputs, n), dtype, activation=n != "rpb") for n in names]

        def forward(*xs):
            q, k, v, *rest = xs
            return self.call(case, q, k, v, rest[0] if rest else None, case.scale)

        if self.limits.backward is False:
            return self.to_float64(forward(*native)), None
        try:
            out, pullback = jax.vjp(forward, *native)
        except (KernelOutputError, KernelMutationError):
            raise
        except Exception as err:  # not traceable (e.g. it converts to NumPy): forward only
            if self.limits.backward:
                raise KernelOutputError(f"backward=True was declared but jax.vjp cannot trace the kernel: "
                                        f"{type(err).__name__}: {err}") from err
            return self.to_float64(forward(*native)), None
        cotangents = pullback(self.to_native(inputs.d_out, dtype))
        grads = {f"d{n}": self.to_float64(g, activation=n != "rpb")
                 for n, g in zip(names, cotangents, strict=True)}
        return self.to_float64(out), grads

    def _run_explicit_backward(self, case: Case, inputs, dtype: str, names: list[str],
                               reference: tuple | None) -> tuple[np.ndarray, dict]:
        """Forward through the kernel, gradients through the user's ``bwd`` on the reference's out/lse."""
        out64 = self.run(case, inputs.q, inputs.k, inputs.v, inputs.rpb, dtype, case.scale)
        if reference is None:
            raise ValueError("KernelAdapter: an explicit bwd needs the reference (out, lse).")
        ref_out, lse = reference  # (B, *spatial, heads, D), (B, *spatial, heads)
        native = {n: self.to_native(getattr(inputs, n), dtype, activation=n != "rpb") for n in names}
        d_out, out = self.to_native(inputs.d_out, dtype), self.to_native(ref_out, dtype)
        lse_native = self.to_native(lse[..., None], dtype)[..., 0]  # the layout move, then drop D
        before = self._snapshot({**native, "d_out": d_out, "out": out})
        extra = {"rpb": native["rpb"]} if "rpb" in native else {}
        grads = self.bwd(d_out, native["q"], native["k"], native["v"], out, lse_native,
                         **self.window_kwargs(case), scale=case.scale, **extra)
        self._check_unchanged({**native, "d_out": d_out, "out": out}, before)
        if not isinstance(grads, (tuple, list)) or len(grads) not in (3, 4):
            raise KernelOutputError(f"bwd: the kernel returned {type(grads).__name__}, expected a tuple "
                                    f"(dq, dk, dv) or (dq, dk, dv, drpb).")
        if "rpb" in native and len(grads) != 4:
            raise KernelOutputError("bwd: the case has an rpb but the kernel returned no drpb "
                                    "(3 gradients, expected 4).")
        result = {}
        for n, g in zip(names, grads, strict=False):
            self._check(g, tuple(native[n].shape), native[n], f"bwd d{n}")
            result[f"d{n}"] = self.to_float64(g, activation=n != "rpb")
        return out64, result


def installed(name: str) -> bool:
    """True when the package ``name`` can be imported (False when missing or blocked)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # sys.modules[name] is None: blocked on purpose
        return False


def _strided_hint(got: tuple, want: tuple, case: Case, layout: str) -> str:
    """Name an output on the strided grid (one query per stride group) when that is what it is."""
    if not case.strided:
        return ""
    spatial = slice(2, -1) if layout == "heads_first" else slice(1, -2)
    sub = tuple(-(-n // s) for n, s in zip(case.shape, case.stride, strict=True))  # ceil(L / s)
    if got[spatial] == sub and got[:1] == want[:1] and got[-1] == want[-1]:
        return (f" This is the strided grid {sub} (ceil(L / stride) per axis): this kernel subsamples "
                f"queries by stride, one output per stride group, whereas NATTEN's stride keeps every "
                f"query and shares one window among the stride group.")
    return ""


def _name(fn: Callable) -> str:
    """A readable name: ``na2d(backend='torch')`` for a partial, else the qualified name."""
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"{_name(fn.func)}({', '.join(args)})"
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
