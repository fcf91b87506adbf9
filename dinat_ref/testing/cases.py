"""The verifier's test cases: curated edge cases plus a seeded random sweep.

A :class:`Case` is one call of a neighborhood-attention kernel: a grid, a window
(kernel size, stride, dilation, causal flags per axis), a batch/heads/head-dim size,
and whether a relative positional bias (RPB) and an explicit scale are passed.
Its inputs are drawn from a seeded generator in float64, so a case is fully
reproducible from its fields.

The curated cases are the places where hand-written kernels usually go wrong:

* borders, where a naive ``i - (k // 2) * d`` clamp leaves the dilation group;
* ``k * d == L`` (one window per group) and ``L`` not divisible by ``d`` (ragged groups);
* even kernels (``k // 2`` keys left, ``k // 2 - 1`` right);
* ``stride == k`` and other strides (queries share their *leader's* window);
* causal on one axis only, and causal with stride;
* non-square grids and kernels (height/width mixed up), 3D grids, ``kernel_size == L``;
* RPB on non-square and dilated windows.

The random sweep follows NATTEN's own tests: random sizes, kernel sizes, strides,
dilations, causal flags, head dims and RPB, each a valid window by the rule's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import prod

import numpy as np

from dinat_ref.checks import check_window_args

__all__ = ["Case", "CaseInputs", "curated_cases", "random_cases", "default_cases"]


@dataclass(frozen=True)
class CaseInputs:
    """float64 inputs of one case, heads-last layout.

    Attributes:
        q, k, v: (B, *spatial, heads, head_dim).
        rpb: (heads, 2k0-1, ...) or None.
        d_out: (B, *spatial, heads, head_dim), the upstream gradient for backward checks.
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    rpb: np.ndarray | None
    d_out: np.ndarray


@dataclass(frozen=True)
class Case:
    """One kernel call to verify. Window fields are tuples with one entry per spatial axis.

    Attributes:
        name: short id, e.g. ``"2d-dilated-ragged"``.
        shape: spatial shape of the grid.
        kernel_size, stride, dilation, is_causal: the window, per axis.
        batch, heads, head_dim: the remaining input sizes.
        use_rpb: pass a relative positional bias of shape ``(heads, 2k-1 per axis)``.
        scale: passed as ``scale=``; None means the kernel's default ``head_dim ** -0.5``.
        seed: seed of the input generator.
        tolerance: overrides the per-dtype tolerance for this case (None: use the default).
    """

    name: str
    shape: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    is_causal: tuple[bool, ...] = ()
    batch: int = 1
    heads: int = 2
    head_dim: int = 8
    use_rpb: bool = False
    scale: float | None = None
    seed: int = 0
    tolerance: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Normalize scalars to per-axis tuples and apply the rule's limits now, so a bad
        # case fails where it is written, not in the middle of a run.
        ndim = len(self.shape)
        shape, ks, st, dil, causal = check_window_args(
            self.shape, self.kernel_size, self.stride or 1, self.dilation or 1,
            self.is_causal or False, where=f"Case {self.name!r}",
        )
        for name, value in zip(("shape", "kernel_size", "stride", "dilation", "is_causal"),
                               (shape, ks, st, dil, causal), strict=True):
            object.__setattr__(self, name, value)
        if min(self.batch, self.heads, self.head_dim) < 1 or ndim > 3:
            raise ValueError(f"Case {self.name!r}: batch, heads, head_dim must be >= 1 and ndim <= 3.")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_tokens(self) -> int:
        return prod(self.shape)

    @property
    def strided(self) -> bool:
        return any(s > 1 for s in self.stride)

    @property
    def causal(self) -> bool:
        return any(self.is_causal)

    def with_(self, **changes) -> Case:
        """A copy with some fields changed (e.g. ``case.with_(head_dim=16)``)."""
        return replace(self, **changes)

    def config(self) -> str:
        """One-line description for tables: ``x=9x11 k=3 s=1 d=2,3 causal=F,T B1 H2 D8 rpb``."""

        def fmt(t):
            t = tuple(int(x) if not isinstance(x, bool) else "FT"[x] for x in t)
            return str(t[0]) if len(set(t)) == 1 else ",".join(map(str, t))

        parts = [
            "x".join(map(str, self.shape)), f"k={fmt(self.kernel_size)}", f"s={fmt(self.stride)}",
            f"d={fmt(self.dilation)}",
        ]
        if self.causal:
            parts.append(f"causal={fmt(self.is_causal)}")
        parts.append(f"B{self.batch}H{self.heads}D{self.head_dim}")
        if self.use_rpb:
            parts.append("rpb")
        if self.scale is not None:
            parts.append(f"scale={self.scale:g}")
        return " ".join(parts)

    def inputs(self) -> CaseInputs:
        """Draw the case's float64 inputs (same seed, same numbers, on every machine)."""
        rng = np.random.default_rng(self.seed)
        full = (self.batch, *self.shape, self.heads, self.head_dim)  # (B, *spatial, heads, dim)
        q, k, v, d_out = (rng.standard_normal(full) for _ in range(4))
        rpb = None
        if self.use_rpb:
            rpb = rng.standard_normal((self.heads, *(2 * kk - 1 for kk in self.kernel_size)))
        return CaseInputs(q=q, k=k, v=v, rpb=rpb, d_out=d_out)


def curated_cases(dims: tuple[int, ...] = (1, 2, 3)) -> list[Case]:
    """The hand-picked edge cases for the requested numbers of spatial axes."""
    one = [
        Case("1d-basic", (8,), (3,)),
        Case("1d-border-dilated", (9,), (3,), dilation=(2,), use_rpb=True, seed=1),
        Case("1d-kd-equals-L", (9,), (3,), dilation=(3,), seed=2),
        Case("1d-ragged-groups", (11,), (3,), dilation=(3,), scale=0.5, seed=3),
        Case("1d-even-kernel", (9,), (4,), use_rpb=True, seed=4),
        Case("1d-stride-equals-k", (10,), (3,), stride=(3,), seed=5),
        Case("1d-kernel-equals-L", (7,), (7,), seed=6),
        Case("1d-causal", (10,), (4,), is_causal=(True,), use_rpb=True, seed=7),
        Case("1d-causal-stride", (12,), (4,), stride=(2,), is_causal=(True,), seed=8),
    ]
    two = [
        Case("2d-nonsquare", (6, 9), (3, 3), use_rpb=True, seed=10),
        Case("2d-nonsquare-kernel", (7, 10), (3, 5), seed=11),
        Case("2d-dilated-ragged", (9, 11), (3, 3), dilation=(2, 3), scale=0.3, seed=12),
        Case("2d-even-kernel", (8, 7), (4, 2), use_rpb=True, seed=13),
        Case("2d-stride", (8, 9), (3, 3), stride=(2, 3), seed=14),
        Case("2d-causal-one-axis", (7, 8), (3, 3), is_causal=(True, False), use_rpb=True, seed=15),
        Case("2d-dilated-rpb", (10, 8), (3, 3), dilation=(3, 2), use_rpb=True, seed=16),
        Case("2d-kernel-equals-L", (5, 7), (5, 3), batch=2, seed=17),
    ]
    three = [
        Case("3d-basic", (4, 5, 6), (3, 3, 3), heads=1, seed=20),
        Case("3d-mixed", (4, 6, 7), (2, 3, 3), stride=(1, 2, 1), dilation=(1, 1, 2),
             use_rpb=True, seed=21),
        Case("3d-causal-first-axis", (5, 4, 6), (3, 2, 3), is_causal=(True, False, False), seed=22),
    ]
    by_dim = {1: one, 2: two, 3: three}
    return [c for d in dims for c in by_dim[d]]


def random_cases(n: int, seed: int = 0, dims: tuple[int, ...] = (1, 2, 3),
                 head_dims: tuple[int, ...] | None = None, rpb: bool = True, causal: bool = True,
                 stride: bool = True, dilation: bool = True, even_kernel: bool = True) -> list[Case]:
    """``n`` random valid cases, reproducible from ``seed`` (kept small: < 400 tokens).

    ``head_dims``, ``rpb``, ``causal``, ``stride``, ``dilation`` and ``even_kernel`` restrict
    the sweep to what a kernel supports (unsupported features are turned
    off: dilation 1, no stride, even kernel sizes one larger).
    """
    head_dims = tuple(head_dims or (4, 8, 16, 32))
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        ndim = int(rng.choice(dims))
        max_k, max_d = {1: (7, 4), 2: (5, 3), 3: (3, 2)}[ndim]
        ks = tuple(int(rng.integers(2, max_k + 1)) for _ in range(ndim))
        ks = ks if even_kernel else tuple(k + 1 - k % 2 for k in ks)
        dil = tuple(int(rng.integers(1, max_d + 1)) for _ in range(ndim))
        dil = dil if dilation else (1,) * ndim
        st = tuple(int(rng.integers(1, k + 1)) if rng.random() < 0.5 and stride else 1 for k in ks)
        shape = tuple(k * d + int(rng.integers(0, 6)) for k, d in zip(ks, dil, strict=True))
        flags = tuple(bool(rng.random() < 0.25) and causal for _ in range(ndim))
        cases.append(Case(
            f"random-{i:02d}", shape, ks, stride=st, dilation=dil, is_causal=flags,
            batch=int(rng.integers(1, 3)), heads=int(rng.integers(1, 3)),
            head_dim=int(rng.choice(head_dims)), use_rpb=bool(rng.random() < 0.5) and rpb,
            scale=None if rng.random() < 0.5 else round(float(rng.uniform(0.2, 1.0)), 3),
            seed=1000 + seed * 100 + i,
        ))
    return cases


def default_cases(dims: tuple[int, ...] = (1, 2, 3), n_random: int = 16, seed: int = 0,
                  **limits) -> list[Case]:
    """The default suite: every curated case for ``dims`` plus ``n_random`` random ones.

    ``limits`` (``head_dims``, ``rpb``, ``causal``, ``stride``, ``dilation``, ``even_kernel``)
    shape the random sweep; the
    curated cases stay as they are, and those outside the limits are skipped when run.
    """
    return curated_cases(dims) + random_cases(n_random, seed, dims, **limits)
