"""Diagnosis by probing: ask the kernel which keys it attends to, and how.

A failing output says *that* a kernel is wrong; probes say *how*. Each probe calls the
kernel on inputs built so that its output can be read back as attention weights:

* **Neighborhood probe.** With ``q = k = 0`` every logit is 0, so a correct kernel puts
  the uniform weight ``1 / |N(i)|`` on each neighbor of query ``i``. With values
  ``v_j = e_j`` (the one-hot vector of key ``j``) the output of query ``i`` *is* its
  weight row: ``out_i = sum_j p_ij e_j``. So the keys with nonzero output are the keys
  the kernel attended to. Head dims are small, so the one-hot basis is split into
  chunks of ``head_dim`` keys, one kernel call per chunk.
  Compared with the rule (:func:`dinat_ref.neighborhood.dense_mask`) this tells apart
  a *wrong window* (keys missing or extra), *causal leakage* (extra keys in the future
  on a causal axis) and a *wrong normalization* (the right keys, but the weights do
  not sum to one: the softmax ran over the wrong axis).
* **Scale probe.** With ``q_i = e_0 / s`` (``s`` the expected scale) and ``k_j = c_j e_0``
  the expected logits are ``c_j``, so ``log p_ij = (s_eff / s) c_j + const``; a
  least-squares line through the observed ``log p`` estimates the effective scale.
* **RPB probe.** With ``q = k = 0`` and a random RPB table the logits are the biases
  alone: ``log p_ij = b_ij + const``. The observed biases are matched against the rule's
  ``rpb[(k - 1) + (j - i) / d]`` and against the usual mistakes (offset sign flipped on
  one or all axes, axes swapped, bias ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dinat_ref.neighborhood import dense_mask, dilation_groups, neighbor_indices, rpb_indices
from dinat_ref.testing.adapters import KernelAdapter
from dinat_ref.testing.cases import Case
from dinat_ref.testing.report import CaseResult, Diagnosis
from dinat_ref.viz.terminal import render_cells, side_by_side

__all__ = ["probe_case", "observed_weights", "probe_neighborhoods", "probe_scale", "probe_rpb",
           "diagnose_result"]

_PRECISION = ["float64", "float32", "float16", "bfloat16"]


def probe_case(adapter: KernelAdapter, case: Case) -> tuple[Case, str]:
    """The case to probe with (batch 1, a head dim the kernel allows) and the most precise dtype.

    The head dim is the largest declared one up to 64 (fewer calls), else the case's own,
    which the kernel has just accepted.
    """
    runnable = [d for d in _PRECISION if d in adapter.limits.dtypes
                and not (d == "bfloat16" and adapter.array == "numpy")]
    dtype = runnable[0] if runnable else adapter.limits.dtypes[0]
    allowed = adapter.limits.head_dims
    if allowed:
        small = [h for h in allowed if h <= 64]
        head_dim = max(small) if small else min(allowed)
    else:
        head_dim = case.head_dim
    return case.with_(batch=1, head_dim=head_dim), dtype


def observed_weights(adapter: KernelAdapter, case: Case, q: np.ndarray, k: np.ndarray,
                     rpb: np.ndarray | None, dtype: str, scale: float | None) -> np.ndarray:
    """Read the kernel's attention weights back through one-hot values.

    Args:
        q, k: ``(1, *spatial, heads, D)`` probe inputs; rpb as the kernel takes it, or None.

    Returns:
        (heads, N, N): ``w[h, i, j]`` is the weight query ``i`` gave key ``j`` (flat, row-major).
    """
    N, H, D = case.num_tokens, case.heads, case.head_dim
    w = np.zeros((H, N, N))
    for first in range(0, N, D):  # one call per chunk of D keys
        cols = np.arange(first, min(first + D, N))  # the keys whose one-hot fits in this call
        v = np.zeros((N, H, D))  # (N, heads, D)
        v[cols, :, cols - first] = 1.0  # v_j = e_(j - first)
        out = adapter.run(case, q, k, v.reshape(1, *case.shape, H, D), rpb, dtype, scale)
        out = out.reshape(N, H, D)  # (N, heads, D)
        w[:, :, cols] = out[:, :, : len(cols)].transpose(1, 0, 2)  # (heads, N, chunk)
    return w


def _zeros(case: Case) -> np.ndarray:
    return np.zeros((1, *case.shape, case.heads, case.head_dim))  # (1, *spatial, heads, D)


def _tol(dtype: str) -> float:
    return {"float64": 1e-6, "float32": 1e-4, "float16": 1e-2, "bfloat16": 3e-2}[dtype]


def _expected_scale(case: Case) -> float:
    return case.head_dim ** -0.5 if case.scale is None else case.scale


def _window(case: Case) -> dict:
    return dict(kernel_size=case.kernel_size, stride=case.stride, dilation=case.dilation,
                is_causal=case.is_causal)


# ---------------------------------------------------------------------------- probes
def probe_neighborhoods(adapter: KernelAdapter, case: Case, dtype: str) -> np.ndarray:
    """Weights with ``q = k = 0`` (and a zero RPB when the case has one): (N, N), head 0."""
    rpb = np.zeros((case.heads, *(2 * k - 1 for k in case.kernel_size))) if case.use_rpb else None
    return observed_weights(adapter, case, _zeros(case), _zeros(case), rpb, dtype, case.scale)[0]


def probe_scale(adapter: KernelAdapter, case: Case, dtype: str) -> tuple[float, float]:
    """Estimate the scale the kernel really applies.

    Returns:
        ``(effective_scale, fit_residual)``; the residual is the largest distance of an observed
        ``log p`` from the fitted line (large: the logits are not ``scale * q . k`` at all).
    """
    s = _expected_scale(case)
    c = np.random.default_rng(7).uniform(-1.5, 1.5, case.num_tokens)  # c_j: target logit of key j
    q, k = _zeros(case), _zeros(case)
    q[..., 0] = 1.0 / s  # q_i = e_0 / s for every query and head
    k.reshape(case.num_tokens, case.heads, case.head_dim)[:, :, 0] = c[:, None]  # k_j = c_j e_0
    rpb = np.zeros((case.heads, *(2 * kk - 1 for kk in case.kernel_size))) if case.use_rpb else None
    w = observed_weights(adapter, case, q, k, rpb, dtype, case.scale)[0]  # (N, N)
    mask = dense_mask(case.shape, **_window(case))  # (N, N) the neighbors
    xs, ys = [], []
    for i in range(case.num_tokens):
        keys = np.flatnonzero(mask[i] & (w[i] > 1e-12))
        if len(keys) < 2:
            continue
        x, y = c[keys], np.log(w[i, keys])  # log p_ij = alpha * c_j + const_i
        xs.append(x - x.mean())
        ys.append(y - y.mean())
    if not xs:
        return float("nan"), float("inf")
    x, y = np.concatenate(xs), np.concatenate(ys)
    alpha = float((x * y).sum() / (x * x).sum())  # least squares through the centered points
    return alpha * s, float(np.abs(y - alpha * x).max())


def _rpb_hypotheses(case: Case) -> dict[str, np.ndarray]:
    """RPB index tables ``(N, K, ndim)`` for the rule and for the common mistakes."""
    idx = rpb_indices(case.shape, **_window(case))  # (N, K, ndim)
    top = np.array([2 * k - 2 for k in case.kernel_size])  # 2k - 2 per axis
    out = {"correct": idx,
           "offset sign flipped: rpb[(k-1) - (j-i)/d] instead of rpb[(k-1) + (j-i)/d]": top - idx}
    if case.ndim > 1:
        for a in range(case.ndim):
            flipped = idx.copy()
            flipped[..., a] = top[a] - idx[..., a]
            out[f"offset sign flipped on axis {a} only"] = flipped
        if case.kernel_size == case.kernel_size[::-1]:
            out["RPB axes swapped: the table is indexed with the axes in reverse order"] = idx[..., ::-1]
    return out


def probe_rpb(adapter: KernelAdapter, case: Case, dtype: str) -> tuple[str | None, dict]:
    """Match the kernel's biases against the rule and the usual mistakes.

    Returns:
        ``(verdict, details)``: verdict None when the biases are right, else the name of the
        mistake that explains them (or ``"unexplained"``); details has the first mismatch.
    """
    rpb = np.random.default_rng(11).uniform(-1, 1, (case.heads, *(2 * k - 1 for k in case.kernel_size)))
    w = observed_weights(adapter, case, _zeros(case), _zeros(case), rpb, dtype, case.scale)  # (H, N, N)
    keys, valid = neighbor_indices(case.shape, **_window(case))  # (N, K)
    heads, n_q = np.arange(case.heads)[:, None, None], np.arange(case.num_tokens)[None, :, None]
    observed = np.log(np.maximum(w[heads, n_q, keys[None]], 1e-30))  # (H, N, K) log p
    valid = np.broadcast_to(valid[None], observed.shape)

    def centered(b: np.ndarray) -> np.ndarray:  # remove the per-(head, query) constant (-lse)
        b = np.where(valid, b, 0.0)
        return np.where(valid, b - b.sum(-1, keepdims=True) / valid.sum(-1, keepdims=True), 0.0)

    obs = centered(observed)
    tol = 20 * _tol(dtype)
    hypotheses = {**_rpb_hypotheses(case), "RPB ignored: no bias is added": None}
    errors = {}
    for name, idx in hypotheses.items():
        if idx is None:
            bias = np.zeros_like(obs)
        else:
            bias = rpb[(slice(None), *(idx[..., a] for a in range(case.ndim)))]  # (H, N, K)
        errors[name] = np.abs(centered(bias) - obs)
    if errors["correct"].max() <= tol:
        return None, {}
    err = errors["correct"]
    h, n, t = np.unravel_index(int(np.argmax(err > tol)), err.shape)
    details = {"head": int(h), "query": int(n), "key": int(keys[n, t])}
    for name, e in errors.items():
        if name != "correct" and e.max() <= tol:
            return name, details
    return "unexplained", details


# ---------------------------------------------------------------------------- diagnosis
def _coords(flat: np.ndarray | list, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [tuple(int(c) for c in np.unravel_index(int(f), shape)) for f in flat]


def _grid(case: Case, query: int, expected: np.ndarray, observed: np.ndarray) -> tuple[str, list, list]:
    exp_c = _coords(np.flatnonzero(expected), case.shape)
    obs_c = _coords(np.flatnonzero(observed), case.shape)
    q = _coords([query], case.shape)[0]
    groups = dilation_groups(case.shape, case.dilation)
    text = side_by_side(
        render_cells(case.shape, q, exp_c, groups), render_cells(case.shape, q, obs_c, groups),
        titles=(f"expected: {len(exp_c)} keys (the rule)", f"observed: {len(obs_c)} keys (kernel)"))
    legend = "(Q) query  <Q> query not attended  [x] attended key in dilation group x"
    return text + "\n" + legend, exp_c, obs_c


def _window_hints(case: Case, observed: np.ndarray) -> list[str]:
    """Explain a wrong window by the rule with one parameter changed, when one matches."""
    variants = {
        "the stride is ignored (windows of stride 1)": dict(stride=1) if case.strided else None,
        "the dilation is ignored": dict(dilation=1) if max(case.dilation) > 1 else None,
        "the causal flag is ignored": dict(is_causal=False) if case.causal else None,
        "kernel_size/stride/dilation are applied to the wrong axes": dict(
            kernel_size=case.kernel_size[::-1], stride=case.stride[::-1], dilation=case.dilation[::-1])
        if case.ndim > 1 else None,
    }
    hints = []
    for words, change in variants.items():
        if change is None:
            continue
        try:
            alt = dense_mask(case.shape, **{**_window(case), **change})
        except ValueError:
            continue
        if np.array_equal(alt, observed):
            hints.append(f"The observed neighborhoods are exactly those of the rule if {words}.")
    return hints + _axis_hints(case, observed)


def _axis_rule(case: Case, a: int, length: int | None = None, params_of: int | None = None) -> np.ndarray:
    """The rule's 1-D mask (L, L) of axis ``a``, optionally as if the axis had ``length`` tokens
    and the window parameters of axis ``params_of``."""
    b = a if params_of is None else params_of
    return dense_mask((length or case.shape[a],), case.kernel_size[b], case.stride[b], case.dilation[b],
                      case.is_causal[b])


def _axes_exchanged(case: Case, obs: dict[int, np.ndarray], params: bool) -> bool:
    """True when each axis of a 2-D case behaves as the rule on the other axis' length (and parameters)."""
    for a in range(2):
        n_a, n_b = case.shape[a], case.shape[1 - a]
        try:
            alt = _axis_rule(case, a, n_b, 1 - a if params else a)  # (n_b, n_b)
        except ValueError:
            return False
        rows = min(n_a, n_b)
        expect = np.zeros((rows, n_a), dtype=bool)
        expect[:, : min(n_a, n_b)] = alt[:rows, : min(n_a, n_b)]
        if n_b > n_a:
            expect[:, n_a - 1] |= alt[:rows, n_a - 1:].any(axis=1)  # clamped onto the last token
        if not np.array_equal(obs[a][:rows], expect):
            return False
    return True


def _observed_axis(case: Case, observed: np.ndarray, a: int) -> np.ndarray:
    """Axis ``a``'s part of a separable N-D mask: queries and keys on the line through the origin."""
    grid = observed.reshape(*case.shape, *case.shape)  # (*query coords, *key coords)
    nd = case.ndim
    out = np.zeros((case.shape[a], case.shape[a]), dtype=bool)
    for i in range(case.shape[a]):
        q = tuple(i if b == a else 0 for b in range(nd))
        keys = grid[q]  # (*key coords)
        out[i] = keys.any(axis=tuple(b for b in range(nd) if b != a))
    return out


def _axis_hints(case: Case, observed: np.ndarray) -> list[str]:
    """Name two classic per-axis mistakes in words: H/W exchanged, even window shifted by one."""
    hints = []
    axes = range(case.ndim)
    obs = {a: _observed_axis(case, observed, a) for a in axes}
    wrong = [a for a in axes if not np.array_equal(obs[a], _axis_rule(case, a))]
    if not wrong:
        return hints
    # Height/width exchanged: each axis takes its windows from an axis as long as the other one
    # (keys past the end clamped onto the last token, as a bounds-checked kernel does), with its
    # own window parameters, or with the other axis' ones too (the two axes' names mixed up).
    if case.ndim == 2 and case.shape[0] != case.shape[1]:
        h, w = case.shape
        for params in (False, True):
            if not _axes_exchanged(case, obs, params):
                continue
            also = (" and that axis' kernel_size/stride/dilation" if params else "")
            hints.append(f"The height and width axes are exchanged: axis 0 ({h} tokens) gets the windows of "
                         f"an axis of {w} tokens{also}, and axis 1 ({w} tokens) those of an axis of {h}"
                         f"{also}; check which length (and which kernel size) each axis reads.")
            break
    # Even kernel shifted by one: k/2 - 1 keys on the left and k/2 on the right (the rule, NATTEN's,
    # puts k/2 on the left). That window is the rule's mirrored along the axis.
    even = [a for a in wrong if case.kernel_size[a] % 2 == 0 and not case.is_causal[a]]
    if even and all(np.array_equal(obs[a], _axis_rule(case, a)[::-1, ::-1]) for a in wrong if a in even) \
            and set(even) == set(wrong):
        names = ", ".join(f"axis {a} (k={case.kernel_size[a]})" for a in even)
        hints.append(f"Even kernel window shifted by one on {names}: the kernel puts k/2 - 1 keys left of "
                     f"the query and k/2 right of it; NATTEN's rule puts k/2 left and k/2 - 1 right.")
    elif even and set(even) == set(wrong) and all(_legacy_border(case, a, obs[a]) for a in even):
        names = ", ".join(f"axis {a} (k={case.kernel_size[a]})" for a in even)
        hints.append(f"Even kernel on {names}: near the end of the axis the window is shifted one key too "
                     f"far back and leaves the query out. That is the border formula of older NATTEN "
                     f"releases, max(i - k//2, 0) + (i + k//2 >= L) * (L - i - k//2 - 1), written for odd "
                     f"kernels.")
    return hints


def _legacy_border(case: Case, a: int, observed_axis: np.ndarray) -> bool:
    """True when axis ``a``'s windows are the odd-kernel border formula applied to an even kernel."""
    L, k = case.shape[a], case.kernel_size[a]
    if case.dilation[a] != 1 or case.stride[a] != 1 or case.is_causal[a] or k >= L:
        return False
    legacy = np.zeros((L, L), dtype=bool)
    for i in range(L):
        start = max(i - k // 2, 0) + (i + k // 2 >= L) * (L - i - k // 2 - 1)
        legacy[i, start:start + k] = True
    return np.array_equal(observed_axis, legacy)


def diagnose_result(adapter: KernelAdapter, result: CaseResult) -> Diagnosis:
    """Explain a FAIL/ERROR result in words (probing the kernel for FAILs)."""
    case = result.case
    if result.status == "ERROR":
        if result.message.startswith("input mutated"):
            return Diagnosis("mutates_inputs", f"The kernel writes into its inputs: {result.message}. "
                             f"Its output is not trusted, whatever its numbers.", case, result.dtype)
        if "subsamples queries by stride" in result.message:
            return Diagnosis("strided_output", f"This kernel subsamples queries by stride: "
                             f"{result.message}", case, result.dtype)
        hint = ""
        if "unexpected keyword argument 'rpb'" in result.message:
            hint = (" It takes no rpb=: declare that with --no-rpb (rpb=False) and the cases with a "
                    "relative positional bias are skipped and listed instead.")
        return Diagnosis("error", f"The kernel could not run this case: {result.message}.{hint}",
                         case, result.dtype)
    if result.fwd_abs is not None and result.first_wrong_query is None and result.bwd_abs is not None:
        return Diagnosis("wrong_backward", f"The forward pass matches the reference but the gradients do "
                         f"not: {result.message}. Check the backward pass (or the autograd graph).",
                         case, result.dtype)
    pcase, dtype = probe_case(adapter, case)
    try:
        return _diagnose_forward(adapter, result, pcase, dtype)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: B036 - the kernel failed on a probe input (SystemExit too)
        return Diagnosis("other", f"{result.message}. Probing the kernel failed: {type(err).__name__}: {err}",
                         case, result.dtype)


@dataclass
class _Probed:
    """What the neighborhood probe saw, shared by the hypotheses below."""

    adapter: KernelAdapter
    result: CaseResult
    pcase: Case  # the case the probes run (batch 1, a head dim the kernel allows)
    dtype: str
    w: np.ndarray  # (N, N) weights with q = k = 0 (all logits equal), head 0
    observed: np.ndarray  # (N, N) keys the kernel attended to
    expected: np.ndarray  # (N, N) keys the rule says

    @property
    def case(self) -> Case:
        return self.result.case

    @property
    def base(self) -> dict:
        return dict(case=self.case, dtype=self.result.dtype)

    @property
    def first_flat(self) -> int | None:
        q = self.result.first_wrong_query
        return int(np.ravel_multi_index(q, self.case.shape)) if q else None

    def at(self, n: int) -> dict:
        """The query/expected/observed/grid fields of a diagnosis about query ``n`` (flat)."""
        grid, exp_c, obs_c = _grid(self.case, n, self.expected[n], self.observed[n])
        return dict(query=_coords([n], self.case.shape)[0], expected=exp_c, observed=obs_c, grid=grid)


def _diagnose_forward(adapter: KernelAdapter, result: CaseResult, pcase: Case, dtype: str) -> Diagnosis:
    """Probe the neighborhoods, then try the hypotheses in order; the first that explains it wins."""
    case = result.case
    w = probe_neighborhoods(adapter, pcase, dtype)  # (N, N) weights with all logits equal
    row_max = np.nan_to_num(w, nan=0.0, posinf=0.0).max(axis=1, keepdims=True)  # (N, 1)
    probed = _Probed(adapter, result, pcase, dtype, w,
                     observed=w > np.maximum(0.1 * row_max, 1e-6),
                     expected=dense_mask(case.shape, **_window(case)))
    for hypothesis in (_nan_outputs, _wrong_window, _wrong_normalization, _wrong_scale, _wrong_rpb):
        diagnosis = hypothesis(probed)
        if diagnosis is not None:
            return diagnosis
    return _precision_or_elsewhere(probed)


def _nan_outputs(p: _Probed) -> Diagnosis | None:
    """NaN/inf on the probe or on the case's inputs."""
    shape, N, first_bad = p.case.shape, p.case.num_tokens, p.result.first_wrong_query
    bad_rows = np.flatnonzero(~np.isfinite(p.w).all(axis=1))  # queries with NaN/inf outputs
    error_map = p.result.error_map
    if not len(bad_rows) and (error_map is None or np.isfinite(error_map).all()):
        return None
    where = (f"on the probe input q = k = 0 (first at query {_coords(bad_rows[:1], shape)[0]}, "
             f"{len(bad_rows)} of {N} queries)" if len(bad_rows)
             else f"on this case's inputs (first at query {first_bad}), though not on the probe inputs")
    return Diagnosis("nan", f"The kernel returns NaN/inf {where}: look for a division by a zero "
                     f"softmax sum (a row with every slot masked), an overflow in exp without the "
                     f"max subtracted, or output memory that is never written.", **p.base)


def _wrong_window(p: _Probed) -> Diagnosis | None:
    """Keys missing or extra: a wrong window, or causal leakage into the future."""
    case, shape, N = p.case, p.case.shape, p.case.num_tokens
    wrong = np.flatnonzero((p.observed != p.expected).any(axis=1))  # queries with a wrong neighborhood
    if not len(wrong):
        return None
    n = p.first_flat if p.first_flat in set(wrong.tolist()) else int(wrong[0])
    fields = p.at(n)
    qc, exp_c, obs_c = fields["query"], fields["expected"], fields["observed"]
    extra = _coords(np.flatnonzero(p.observed[n] & ~p.expected[n]), shape)
    missing = _coords(np.flatnonzero(p.expected[n] & ~p.observed[n]), shape)
    future = [c for c in extra  # later than the query on some causal axis
              if any(ca and kc > qcc for ca, kc, qcc in zip(case.is_causal, c, qc, strict=True))]
    counts = (f"{len(wrong)} of {N} queries have a wrong neighborhood, the first (row-major) "
              f"being query {_coords(wrong[:1], shape)[0]}")
    if future:
        kind = "causal_leakage"
        text = (f"Causal leakage: query {qc} attends to {len(future)} future key(s) {future} on a causal "
                f"axis (is_causal={case.is_causal}); a causal query sees only itself and earlier keys. "
                f"{counts}.")
    else:
        kind = "wrong_window"
        text = (f"Wrong window: query {qc} attends to {len(obs_c)} keys, the rule gives {len(exp_c)}. "
                f"Extra keys: {extra or 'none'}; missing keys: {missing or 'none'}. {counts}.")
        if not obs_c:
            text += (" With one-hot values its output is all zero: it attends to nothing, or never "
                     "writes its output.")
        groups = dilation_groups(shape, case.dilation).ravel()
        other = [c for c in extra if groups[np.ravel_multi_index(c, shape)] != groups[n]]
        if other:
            text += (f" {len(other)} extra key(s) lie in another dilation group than the query's "
                     f"(with dilation d a query only sees keys j with j % d == i % d).")
    hints = _window_hints(case, p.observed)
    if hints:
        text += " " + " ".join(hints)
    return Diagnosis(kind, text, **fields, **p.base)


def _wrong_normalization(p: _Probed) -> Diagnosis | None:
    """Right keys, but with equal logits the weights are not 1/|N(i)| each (summing to 1)."""
    N, expected, w = p.case.num_tokens, p.expected, p.w
    # Small deviations are precision, not structure: a wrong softmax axis or a doubled slot
    # moves the sum or the spread by at least a few percent.
    sums = w.sum(axis=1)  # (N,) total weight of each query
    tol = max(10 * _tol(p.dtype), 0.01)
    spread = np.array([np.ptp(w[i, expected[i]]) * expected[i].sum() for i in range(N)])  # / mean weight
    if np.abs(sums - 1).max() <= tol and spread.max() <= 5 * tol:
        return None
    i = int(np.argmax(np.maximum(np.abs(sums - 1), spread) > tol))
    ic = _coords([i], p.case.shape)[0]
    return Diagnosis("wrong_normalization", (
        f"Right keys, wrong weights: with q = k = 0 every neighbor should get weight "
        f"1/{expected[i].sum()} and the weights of a query should sum to 1, but query {ic}'s "
        f"weights sum to {sums[i]:.4g} "
        f"and range from {w[i, expected[i]].min():.4g} to {w[i, expected[i]].max():.4g}. "
        f"The softmax is not normalized over the query's neighbors (wrong axis?), or a slot is "
        f"counted twice."), **p.at(p.first_flat or 0), **p.base)


def _wrong_scale(p: _Probed) -> Diagnosis | None:
    """Right keys and normalization, but the logits are not ``scale * q . k``."""
    case, pcase = p.case, p.pcase
    s_eff, residual = probe_scale(p.adapter, pcase, p.dtype)
    s_exp = _expected_scale(pcase)
    if np.isfinite(s_eff) and abs(s_eff / s_exp - 1) <= 0.02 and residual <= 0.05:
        return None
    text = (f"Right keys and normalization, wrong scale: the kernel behaves as if "
            f"scale = {s_eff:.4g}, expected {s_exp:.4g} (ratio {s_eff / s_exp:.3g}; "
            f"scale={case.scale} was passed, None meaning head_dim ** -0.5).")
    if abs(s_eff - 1) < 0.02:
        text += " It looks like no scale is applied at all."
    elif case.scale is not None and abs(s_eff - pcase.head_dim ** -0.5) < 0.02 * s_eff:
        text += " It looks like the default head_dim ** -0.5 is used instead of the given scale."
    elif abs(s_eff - s_exp**2) < 0.02 * s_exp**2:
        text += " It looks like the scale is applied twice."
    if residual > 0.05:
        text += (f" The observed log-weights are not a linear function of q . k "
                 f"(residual {residual:.3g}): the logits are not scale * q . k.")
    return Diagnosis("wrong_scale", text, **p.at(p.first_flat or 0), **p.base)


def _wrong_rpb(p: _Probed) -> Diagnosis | None:
    """Right keys, normalization and scale, but the biases are not ``rpb[(k-1) + (j-i)/d]``."""
    if not p.case.use_rpb:
        return None
    verdict, details = probe_rpb(p.adapter, p.pcase, p.dtype)
    if verdict is None:
        return None
    shape = p.case.shape
    where = ""
    if details:
        qd, kd = _coords([details["query"]], shape)[0], _coords([details["key"]], shape)[0]
        where = f" First wrong bias: head {details['head']}, query {qd}, key {kd}."
    explained = (
        f"The observed biases match a known mistake: {verdict}." if verdict != "unexplained"
        else "The observed biases match no known mistake (sign flips, swapped axes, no bias).")
    return Diagnosis("wrong_rpb", f"Right keys, normalization and scale, wrong relative positional "
                     f"bias: query i should add rpb[(k-1) + (j-i)/d] (per axis) to key j. "
                     f"{explained}{where}", **p.at(p.first_flat or 0), **p.base)


def _precision_or_elsewhere(p: _Probed) -> Diagnosis:
    """Every probe agrees with the rule: a precision issue, or a mistake the probes cannot see."""
    result, case = p.result, p.case
    fields = p.at(p.first_flat or 0)
    rpb = " and RPB" if case.use_rpb else ""
    error_map = result.error_map
    if error_map is not None and np.isfinite(error_map).all() and error_map.max() < 100:
        return Diagnosis("numerical", (
            f"The probes find the neighborhood, normalization, scale{rpb} right, and the outputs are off "
            f"by at most {result.fwd_abs:.3g} (< 100x the tolerance {result.tolerance:g}), first at query "
            f"{fields['query']}: a precision issue (accumulation dtype?), or a tolerance too tight for "
            f"{result.dtype}."), **fields, **p.base)
    return Diagnosis("other", (
        f"{result.message}. The probes find the neighborhood, normalization, scale{rpb} right, so the "
        f"mistake is elsewhere: in how values are combined, in q . k itself (e.g. the wrong key vector "
        f"for a slot), or it only shows with batch > 1 or several heads."), **fields, **p.base)
