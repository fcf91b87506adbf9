"""Where a kernel under test differs from the reference: an error heatmap over the grid.

The verifier (:mod:`dinat_ref.testing`, which imports this module, never the other way)
measures, for every query cell, the worst
forward error over batch, heads and channels in units of the tolerance (above 1 the
case fails). This figure draws that map on the grid, log-scaled, with the first wrong
query boxed, and, when the diagnosis probed one, a second panel comparing the
query's neighborhood by the rule with the keys the kernel really attended to:

* green: attended, as the rule says;
* orange: missing (the rule says attend, the kernel did not);
* red: extra (the kernel attended, the rule says not).

1D grids are drawn as one row; 3D grids as the 2D slice through the query.
Built on ``matplotlib.figure.Figure`` directly, so no GUI backend is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_verify_errors"]


def _as_2d(grid: np.ndarray, query: tuple[int, ...] | None) -> tuple[np.ndarray, tuple[int, int] | None, str]:
    """A 1D/2D/3D grid -> a 2D image, the query's 2D position, and a note on the slice shown."""
    if grid.ndim == 1:
        return grid[None, :], (0, query[0]) if query else None, ""
    if grid.ndim == 2:
        return grid, tuple(query) if query else None, ""
    z = query[0] if query else 0
    return grid[z], tuple(query[1:]) if query else None, f" (slice [{z}, :, :])"


def plot_verify_errors(
    error_map: np.ndarray,
    query: Sequence[int] | None = None,
    expected: Sequence[Sequence[int]] | None = None,
    observed: Sequence[Sequence[int]] | None = None,
    title: str = "",
) -> Figure:
    """Draw the per-query error map (and optionally one query's expected vs observed keys).

    Args:
        error_map: (*spatial,) error per query in units of the tolerance (> 1 fails).
        query: grid coordinates of the query to box (the first wrong one).
        expected, observed: that query's neighbor coordinates by the rule / by the kernel.
        title: figure title.

    Returns:
        A matplotlib Figure (save it with ``fig.savefig(path)``).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    error_map = np.asarray(error_map, dtype=float)
    query = tuple(int(c) for c in query) if query is not None else None
    panels = 2 if expected is not None and observed is not None else 1
    fig = Figure(figsize=(5.2 * panels, 4.4), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]

    # Panel 1: log10 of the error in tolerances; finite, so NaN outputs show as the top color.
    finite = np.where(np.isfinite(error_map), error_map, 1e6)  # (*spatial,)
    img, q2, note = _as_2d(np.log10(np.maximum(finite, 1e-3)), query)
    ax = axes[0]
    im = ax.imshow(img, cmap="magma", vmin=-3, vmax=max(3.0, float(img.max())), interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="log10(error / tolerance); > 0 fails")
    ax.set_title(f"error per query{note}")
    if q2 is not None:
        ax.add_patch(Rectangle((q2[1] - 0.5, q2[0] - 0.5), 1, 1, fill=False, ec="cyan", lw=2))

    if panels == 2:
        # Panel 2: 0 neither, 1 both (correct), 2 missing, 3 extra.
        codes = np.zeros(error_map.shape, dtype=int)  # (*spatial,)
        exp_set, obs_set = {tuple(c) for c in expected}, {tuple(c) for c in observed}
        for c in exp_set | obs_set:
            codes[c] = 1 if (c in exp_set and c in obs_set) else (2 if c in exp_set else 3)
        cimg, q2, note = _as_2d(codes, query)
        ax = axes[1]
        cmap = ListedColormap(["#f2f2f2", "#3a9d4a", "#f0a030", "#d62828"])
        ax.imshow(cimg, cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
        ax.set_title(f"query {query}: green ok, orange missing, red extra{note}")
        if q2 is not None:
            ax.add_patch(Rectangle((q2[1] - 0.5, q2[0] - 0.5), 1, 1, fill=False, ec="black", lw=2))
    for ax in axes:
        ax.set_xlabel("x" if error_map.ndim > 1 else "position")
        ax.set_ylabel("y" if error_map.ndim > 1 else "")
    if title:
        fig.suptitle(title)
    return fig

