"""Which array library does a kernel take? Ask it, on one small case.

A kernel written with NumPy fails on torch tensors (``Can't call numpy() on Tensor that
requires grad``), a torch kernel fails on NumPy arrays, a JAX kernel returns JAX arrays
whatever it is given. So the verifier does not guess: it calls the kernel once on a
small case (the first of its declared dims, k=3, no RPB, stride, dilation or causal)
with inputs of each installed library, in the order torch, JAX, NumPy, and keeps those
for which the kernel runs and returns an array of the same library with the right
shape. When several work (a kernel written for any array), torch wins, then JAX:
their autograd lets the verifier check gradients too.

When none works, :class:`ArrayDetection` keeps what each attempt raised, and
:meth:`ArrayDetection.explain` says which flag fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dinat_ref.testing.adapters import ARRAYS, KernelAdapter, KernelLimits, installed
from dinat_ref.testing.cases import Case

__all__ = ["ArrayDetection", "detect_array", "detection_case"]

_ORDER = ("torch", "jax", "numpy")  # preference when several work: autograd first


@dataclass
class ArrayDetection:
    """The outcome of :func:`detect_array`.

    Attributes:
        array: the library chosen, or None when the kernel ran on none.
        works: every library the kernel ran on, in order of preference.
        errors: library -> what the kernel raised (or returned) on that library's inputs.
        case: the small case used.
    """

    array: str | None
    works: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    case: Case | None = None

    def note(self) -> str:
        """One line for the report, e.g. ``array: numpy (detected; torch: TypeError: ...)``."""
        others = [f"{a}: {_short(e)}" for a, e in self.errors.items()]
        also = [a for a in self.works if a != self.array]
        text = f"array: {self.array} (detected on case {self.case.config()}"
        if also:
            text += f"; also runs on {', '.join(also)}"
        if others:
            text += f"; {'; '.join(others)}"
        return text + ")"

    def explain(self) -> str:
        """Why no library was picked: each attempt's error, and the flags that may fit."""
        lines = [f"The kernel ran on none of the array libraries tried (one small case, "
                 f"{self.case.config()}, no rpb=):"]
        lines += [f"  --array {a}: {e}" for a, e in self.errors.items()]
        text = " ".join(self.errors.values())
        hints = []
        if "unexpected keyword argument" in text or "positional argument" in text:
            hints.append("the call is fn(q, k, v, kernel_size=, stride=, dilation=, is_causal=, scale=): "
                         "wrap the kernel to take these keywords (or use --qk/--av for an unfused pair)")
        if "shape" in text:
            hints.append("if it takes (B, heads, *spatial, dim), add --layout heads_first")
        if "dtype" in text or "Half" in text or "Float" in text:
            hints.append("if it needs another dtype, choose it with --dtypes (e.g. --dtypes float16)")
        if "cuda" in text.lower() or "device" in text:
            hints.append("if it runs on a GPU only, add --device cuda")
        hints.append("to skip detection and see every case's error, force one with "
                     + " / ".join(f"--array {a}" for a in ARRAYS))
        return "\n".join(lines) + "\nWhat may fit: " + "; ".join(hints) + "."


def detection_case(limits: KernelLimits) -> Case:
    """The small case detection runs: the smallest declared dims, k=3 (no extras)."""
    ndim = min(limits.dims)
    shape = {1: (8,), 2: (6, 7), 3: (4, 5, 6)}[ndim]
    head_dim = limits.head_dims[0] if limits.head_dims else 8
    return Case("detect-array", shape, (3,) * ndim, heads=1, head_dim=head_dim, seed=99)


def installed_arrays() -> list[str]:
    """The array libraries importable here, in order of preference."""
    return [a for a in _ORDER if a == "numpy" or installed(a)]


def detect_array(fn: Callable | None = None, *, qk: Callable | None = None, av: Callable | None = None,
                 layout: str = "heads_last", device: str = "cpu", limits: KernelLimits | None = None,
                 candidates: tuple[str, ...] | None = None) -> ArrayDetection:
    """Call the kernel on one small case with each library's arrays; keep what works.

    Args:
        fn: the fused kernel (or ``qk`` and ``av``, the unfused pair).
        qk: the q.k half of an unfused pair.
        av: the attention.v half of an unfused pair.
        layout: ``"heads_last"`` or ``"heads_first"``.
        device: torch device (NumPy and JAX attempts run on the CPU).
        limits: the kernel's limits: dims, dtypes and head dims shape the small case.
        candidates: libraries to try (default: every installed one of numpy, torch, jax).

    Returns:
        An :class:`ArrayDetection`; its ``array`` is None when the kernel ran on none.
    """
    limits = limits or KernelLimits()
    case = detection_case(limits)
    inputs = case.inputs()
    result = ArrayDetection(None, case=case)
    for array in candidates or installed_arrays():
        if array not in ARRAYS:
            raise ValueError(f"detect_array: unknown array library {array!r}; choose from {ARRAYS}.")
        dtypes = [d for d in limits.dtypes if not (array == "numpy" and d == "bfloat16")
                  and not (array == "jax" and d == "float64")]
        if not dtypes:
            result.errors[array] = f"none of the dtypes {limits.dtypes} runs on {array}"
            continue
        dtype = "float32" if "float32" in dtypes else dtypes[0]
        try:
            adapter = KernelAdapter(fn, qk=qk, av=av, layout=layout, array=array,
                                    device=device if array == "torch" else "cpu",
                                    limits=KernelLimits(dims=limits.dims, dtypes=limits.dtypes,
                                                        backward=False))
            adapter.run(case, inputs.q, inputs.k, inputs.v, None, dtype)
        except BaseException as err:  # noqa: B036 - a kernel may raise anything, SystemExit included
            result.errors[array] = f"{type(err).__name__}: {_first_line(err)}"
            continue
        result.works.append(array)
    result.array = result.works[0] if result.works else None
    return result


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.split("\n")[0] if text else "(no message)"


def _short(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
