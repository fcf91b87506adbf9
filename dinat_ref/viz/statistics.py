"""Plots of attention statistics: mean attention distance, entropy, rollout.

The numbers come from :mod:`dinat_ref.analysis`; this module only draws them.

* :func:`plot_head_statistic`: one dot per head, layers along x (the ViT paper's
  "mean attention distance" figure), for ``"distance"``, ``"entropy"`` or
  ``"normalized_entropy"``.
* :func:`plot_rollout`: a rollout map over the image, the query marked.
* :func:`statistics_figure`: the two statistics and one rollout side by side, for the
  digits checkpoint by default.

Stages, layers and heads are numbered from 0, as everywhere in :mod:`dinat_ref.viz`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from dinat_ref.analysis import LayerStatistics
from dinat_ref.viz.attention_maps import _check_image, upsample_cells
from dinat_ref.viz.style import (
    COLUMN_WIDTH,
    PAGE_WIDTH,
    FigureTarget,
    docstring,
    fit_titles,
    new_axes,
    new_figure,
    resolve_cmap,
    style_context,
)
from dinat_ref.viz.windows import OKABE_ITO

__all__ = ["plot_head_statistic", "plot_rollout", "statistics_figure"]

_LABELS = {
    "distance": "mean attention distance (pixels)",
    "entropy": "attention entropy (nats)",
    "normalized_entropy": "entropy / log(k*k)",
}


@docstring
def plot_head_statistic(
    stats: Sequence[LayerStatistics],
    metric: str = "distance",
    *,
    ax: Axes | None = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure:
    """One dot per head and layer, coloured by stage; a line through the layer means.

    Args:
        stats: from :func:`dinat_ref.analysis.model_attention_statistics`.
        metric: ``"distance"``, ``"entropy"`` or ``"normalized_entropy"``.
        %(axes_args)s

    Returns:
        The figure drawn on.
    """
    if metric not in _LABELS:
        raise ValueError(f"plot_head_statistic: metric={metric!r}; use one of {sorted(_LABELS)}.")
    if not stats:
        raise ValueError("plot_head_statistic: stats is empty; give model_attention_statistics(...)'s list.")
    with style_context(fontsize):
        ax = new_axes(ax, figsize, (COLUMN_WIDTH, 2.6), "plot_head_statistic")
        means = []
        for x, s in enumerate(stats):
            y = np.asarray(getattr(s, metric), dtype=float)  # (heads,)
            ax.scatter(np.full(len(y), x), y, s=14, color=OKABE_ITO[s.stage % len(OKABE_ITO)], zorder=3,
                       label=f"stage {s.stage}" if s.layer == 0 else None, linewidths=0)
            means.append(y.mean())
        ax.plot(range(len(stats)), means, color="0.5", linewidth=0.8, zorder=2, label="mean over heads")
        ax.set_xticks(range(len(stats)), [f"{s.stage}.{s.layer}\nd={s.dilation}" for s in stats],
                      fontsize="x-small")
        ax.tick_params(axis="y", labelsize="x-small")
        ax.set_xlabel("stage.layer", fontsize="small")
        ax.set_ylabel(_LABELS[metric], fontsize="small")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", frameon=False, loc="best")
    fit_titles(ax.figure)
    return ax.get_figure(root=True)


@docstring(scale="0 to the largest value")
def plot_rollout(
    image: np.ndarray,
    rollout: np.ndarray,
    cell_px: int,
    query_pixel: Sequence[int] | None = None,
    *,
    alpha: float = 0.7,
    ax: Axes | None = None,
    cmap: Any = None, norm: Normalize | None = None, vmin: float | None = None, vmax: float | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure:
    """A rollout map (one stage's grid) over the image it came from; cells at 0 are transparent.

    Args:
        image: (H, W) or (H, W, 3) floats in [0, 1].
        rollout: (h, w) from :func:`dinat_ref.analysis.model_attention_rollout`.
        cell_px: input pixels per grid cell (``4 * 2**stage``).
        query_pixel: marked with a red cross when given.
        alpha: opacity of the map.
        %(colour_args)s
        title: default: "attention rollout".
        %(axes_args)s

    Returns:
        The figure drawn on.
    """
    image = _check_image(image, "plot_rollout")
    rollout = np.asarray(rollout, dtype=float)
    if rollout.ndim != 2:
        raise ValueError(f"plot_rollout: rollout has shape {rollout.shape}; expected one (h, w) map.")
    gray = image if image.ndim == 2 else image @ np.array([0.299, 0.587, 0.114])
    with style_context(fontsize):
        ax = new_axes(ax, figsize, (COLUMN_WIDTH, 3.2), "plot_rollout")
        if norm is None:
            norm = Normalize(0.0 if vmin is None else vmin, float(rollout.max()) if vmax is None else vmax)
        ax.imshow(gray, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        up = upsample_cells(rollout, int(cell_px))
        im = ax.imshow(np.ma.masked_equal(up, 0.0), cmap=resolve_cmap(cmap), norm=norm, alpha=alpha,
                       interpolation="nearest", extent=(-0.5, up.shape[1] - 0.5, up.shape[0] - 0.5, -0.5))
        ax.set_xlim(-0.5, max(gray.shape[1], up.shape[1]) - 0.5)
        ax.set_ylim(max(gray.shape[0], up.shape[0]) - 0.5, -0.5)
        if query_pixel is not None:
            ax.plot([query_pixel[1]], [query_pixel[0]], marker="+", color="red", markersize=8,
                    markeredgewidth=1.5)
        ax.set_xticks([])
        ax.set_yticks([])
        bar = ax.figure.colorbar(im, ax=ax, shrink=0.8)
        bar.ax.tick_params(labelsize="x-small")
        ax.set_title("attention rollout" if title is None else title, fontsize="small")
    fit_titles(ax.figure)
    return ax.get_figure(root=True)


@docstring
def statistics_figure(
    model: Any = None,
    images: int = 64,
    rollout_stage: int = 0,
    query_pixel: Sequence[int] = (21, 21),
    digit_index: int = 1,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """Mean attention distance and entropy per head, and a rollout, for the digits checkpoint.

    Args:
        model: a model taking the digits' (B, 1, 48, 48) inputs (default: the committed
            checkpoint, :func:`dinat_ref.torch.digits.load_pretrained`).
        images: how many held-out test digits the statistics average over.
        rollout_stage: the stage whose layers the rollout runs through.
        query_pixel: (row, col) of the rollout's query on the test digit.
        digit_index: the test digit of the rollout (default: the zero of ``attention_digits``).
        %(figure_args)s

    Returns:
        The figure (or subfigure).
    """
    from dinat_ref.analysis import model_attention_rollout, model_attention_statistics
    from dinat_ref.torch import digits as train_digits

    model = train_digits.load_pretrained() if model is None else model
    _, _, x_test, _ = train_digits.load_digits_split()
    stats = model_attention_statistics(model, x_test[:images])
    cell = 4 * 2**rollout_stage
    query_cell = (query_pixel[0] // cell, query_pixel[1] // cell)
    rollout = model_attention_rollout(model, x_test[digit_index:digit_index + 1], rollout_stage, query_cell)
    image = train_digits.to_unit_range(x_test[digit_index, 0].numpy())
    with style_context(fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 2.6), "statistics_figure")
        a, b, c = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 0.9])
        plot_head_statistic(stats, "distance", ax=a)
        plot_head_statistic(stats, "normalized_entropy", ax=b)
        b.get_legend().remove()
        plot_rollout(image, rollout, cell, query_pixel, ax=c,
                     title=f"rollout through stage {rollout_stage}\n(test image {digit_index})")
        fig.suptitle(f"Tiny DiNAT on digits: per-head statistics over {len(x_test[:images])} test images",
                     fontsize="medium")
    fit_titles(fig)
    return fig
