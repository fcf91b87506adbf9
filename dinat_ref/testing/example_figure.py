"""The verifier's example figure: the error heatmap of a kernel whose bug is known exactly.

``zero_padded_na`` is a common first attempt at NA, wrong at the borders: it centers
every window on its query and drops the keys that fall off the grid (zero padding)
instead of shifting the window inward. Interior queries pass; queries within
``(k // 2) * d`` of a border attend to fewer keys than the rule says, and the heatmap
shows exactly that frame. ``dinat-ref figures --only verify_errors`` draws it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["zero_padded_na", "save_example"]


def zero_padded_na(q, k, v, kernel_size, stride=1, dilation=1, is_causal=False, scale=None):
    """NA with zero-padded (centered, cut-off) windows: the wrong border behavior, on purpose.

    Dense over all N x N pairs: fine for the verifier's small grids. Heads-last NumPy arrays.
    """
    spatial = q.shape[1:-2]
    ndim = len(spatial)
    ks = np.broadcast_to(kernel_size, (ndim,))
    ds = np.broadcast_to(dilation, (ndim,))
    coords = np.indices(spatial).reshape(ndim, -1).T  # (N, ndim)
    diff = coords[None, :, :] - coords[:, None, :]  # (N, N, ndim) key - query
    mask = ((np.abs(diff) <= (ks // 2) * ds) & (diff % ds == 0)).all(-1)  # (N, N)
    b, heads, dim = q.shape[0], q.shape[-2], q.shape[-1]
    qf, kf, vf = (x.reshape(b, -1, heads, x.shape[-1]) for x in (q, k, v))  # (B, N, heads, D)
    s = np.einsum("bnhd,bmhd->bhnm", qf * (dim ** -0.5 if scale is None else scale), kf)  # (B, h, N, N)
    s = np.where(mask, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhnm,bmhd->bnhd", p, vf).reshape(v.shape)


def save_example(out_dir: str | Path) -> str:
    """Write ``verify_errors.png`` (heatmap of :func:`zero_padded_na`) into ``out_dir``; return the path."""
    from dinat_ref.testing.runner import verify
    from dinat_ref.viz.style import save_figure
    from dinat_ref.viz.verify_errors import plot_verify_errors

    report = verify(zero_padded_na, array="numpy", dims=(2,), dtypes=("float64",), rpb=False,
                    causal=False, stride=False, progress=False, name="zero_padded_na")
    d = report.diagnosis
    result = next(r for r in report.failures if d is not None and r.case == d.case)
    fig = plot_verify_errors(
        result.error_map, query=d.query, expected=d.expected, observed=d.observed,
        title=f"a kernel that zero-pads at the borders: {result.case.name} ({result.case.config()})",
    )
    return str(save_figure(fig, out_dir, "verify_errors"))
