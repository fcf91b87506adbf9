"""Pictures of exact receptive fields: how NA and DiNA layers grow what a token can see.

Paper: DiNAT, https://arxiv.org/abs/2209.15001 (Sec. 3 and Fig. 4 on receptive fields).
Every number drawn comes from :mod:`dinat_ref.receptive_field`, which composes the
neighborhoods of :mod:`dinat_ref.neighborhood` exactly (boolean matrix products).

Layers and stages are numbered from 0 in every label, as in the API
(``model_attention(layers=[(stage, layer)])``) and the state-dict names
(``encoder.levels.{stage}.layers.{layer}``).

* :func:`plot_rf_growth`: one query, layer by layer (frames as rows), several stacks.
* :func:`plot_rf_per_query`: every query after the whole stack, with the formula.
* :func:`plot_rf_2d`: the same on a 2-D grid, small multiples per layer.
* :func:`plot_preset_rf` / :func:`plot_preset_table`: each DiNAT stage, DiNAT vs NA-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from dinat_ref.receptive_field import (
    _preset,
    analytic_extent,
    format_dilations,
    preset_stage_rfs,
    receptive_field,
    receptive_fields_1d,
    rf_stats,
    stage_lengths,
)
from dinat_ref.viz.style import (
    PAGE_WIDTH,
    FigureTarget,
    docstring,
    draw_cells,
    figure_width,
    fit_titles,
    new_figure,
    style_context,
    wrap,
)
from dinat_ref.viz.windows import OKABE_ITO

__all__ = ["DEFAULT_STACKS", "DEFAULT_STACKS_2D", "plot_rf_growth", "plot_rf_per_query", "plot_rf_2d",
           "plot_preset_rf", "plot_preset_table"]

# The paper's comparison: three NA layers vs NA, DiNA (dilation 8), NA, on 56 tokens (stage 0 at 224).
DEFAULT_STACKS: dict[str, tuple[int, ...]] = {"NA [1, 1, 1]": (1, 1, 1), "NA-DiNA-NA [1, 8, 1]": (1, 8, 1)}
# On 28x28 (stage 1 at 224) DiNAT's dilation is 4: k * d = 28 fits the axis without padding.
DEFAULT_STACKS_2D: dict[str, tuple[int, ...]] = {"NA [1, 1, 1]": (1, 1, 1),
                                                 "NA-DiNA-NA [1, 4, 1]": (1, 4, 1)}
_NA_COLOR, _DINA_COLOR = OKABE_ITO[5], OKABE_ITO[0]  # vermillion, blue
_OFF = "#EEEEEE"


def _stack_colors(n: int) -> list[str]:
    return [_NA_COLOR, _DINA_COLOR, OKABE_ITO[2], OKABE_ITO[3], OKABE_ITO[1]][:n] if n <= 5 else \
        [OKABE_ITO[i % len(OKABE_ITO)] for i in range(n)]


def _hex_rgb(color: str) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(color))


def _window_text(kernel_size: int, stride: int, is_causal: bool) -> str:
    """'k=7', plus the stride and causality when they are not the defaults."""
    return f"k={kernel_size}" + (f", s={stride}" if stride > 1 else "") + (", causal" if is_causal else "")


def _layer_text(d: int, kernel_size: int, length: int) -> str:
    """'d=8', plus 'padded to 56' when DiNAT pads the axis up to ``k * d`` for this layer."""
    return f"d={d}" + (f", padded to {kernel_size * d}" if kernel_size * d > length else "")


def _small_integer_ticks(ax: Axes) -> None:
    """A few integer ticks on both axes (token indices and counts), in small print."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.tick_params(labelsize="x-small", length=2)


def _check_stacks(stacks, where: str) -> dict[str, tuple[int, ...]]:
    stacks = dict(stacks)
    if not stacks:
        raise ValueError(f"{where}: stacks is empty; give name -> per-layer dilations.")
    for name, dils in stacks.items():
        if len(dils) == 0 or any(int(d) < 1 for d in dils):
            raise ValueError(f"{where}: stacks[{name!r}]={list(dils)}; give one dilation >= 1 per layer.")
    return {name: tuple(int(d) for d in dils) for name, dils in stacks.items()}


@docstring
def plot_rf_growth(
    length: int = 56,
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
    query: int | None = None,
    *,
    stride: int = 1, is_causal: bool = False,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """One query's exact receptive field after each layer, for several layer stacks.

    Each stack gets a panel; row ``l`` of the panel lights the input tokens that can
    change the query's output after ``l`` layers (row 0: the query alone). The right
    margin gives the exact count and, for non-causal layers, the formula's span
    ``1 + (k - 1) * sum(d)``. A layer with ``k * d`` longer than the axis is run the way
    DiNAT runs it, on the axis padded to ``k * d``; its row says so.

    Args:
        length: tokens on the axis (default 56, DiNAT's stage 0 at 224x224).
        kernel_size: k (default 7).
        stacks: name -> per-layer dilations (default: three NA layers vs NA-DiNA-NA [1, 8, 1]).
        query: the query token (default: the middle).
        stride, is_causal: every layer's stride and causality.
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    stacks = _check_stacks(DEFAULT_STACKS if stacks is None else stacks, "plot_rf_growth")
    query = length // 2 if query is None else int(query)
    if not 0 <= query < length:
        raise ValueError(f"plot_rf_growth: query={query} is not a token of an axis of {length}.")
    colors = _stack_colors(len(stacks))
    n_rows = [len(d) + 1 for d in stacks.values()]
    with style_context(fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 0.22 * sum(n_rows) + 0.55 * len(stacks) + 0.7),
                         "plot_rf_growth")
        axes = fig.subplots(len(stacks), 1, height_ratios=n_rows, squeeze=False)[:, 0]
        for ax, (name, dils), color in zip(axes, stacks.items(), colors, strict=True):
            rfs = receptive_fields_1d(length, kernel_size, list(dils), stride, is_causal)  # (layers, L, L)
            rows = np.concatenate([np.eye(length, dtype=bool)[query][None], rfs[:, query]])  # (layers+1, L)
            img = np.where(rows[:, :, None], _hex_rgb(color), _hex_rgb(_OFF))  # (layers+1, L, 3)
            draw_cells(ax, img, aspect=None)
            ax.set_yticks(range(len(rows)), ["query"] + [f"layer {i} ({_layer_text(d, kernel_size, length)})"
                                                         for i, d in enumerate(dils)], fontsize="x-small")
            ax.add_patch(Rectangle((query - 0.5, -0.5), 1, len(rows), fill=False, edgecolor="black",
                                   linewidth=1.0))
            for r, row in enumerate(rows[1:], start=1):
                lit = np.nonzero(row)[0]
                n, extent = int(row.sum()), int(lit[-1] - lit[0] + 1)
                note = f"{n}" + (" = all" if n == length else "")
                note += "" if extent == n else f", span {extent}"
                if not is_causal and stride == 1:
                    note += f" (formula {analytic_extent(kernel_size, dils[:r])})"
                ax.annotate(note, (1.0, r), xycoords=("axes fraction", "data"), xytext=(3, 0),
                            textcoords="offset points", va="center", ha="left", fontsize="x-small")
            ax.set_title(f"{name}: {_window_text(kernel_size, stride, is_causal)}, query {query}",
                         fontsize="small", loc="left")
            ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
            ax.tick_params(labelsize="x-small", length=2)
        axes[-1].set_xlabel(f"input token j of {length} (lit: can change the query's output)",
                            fontsize="small")
        fig.suptitle("Exact receptive field, layer by layer (tokens in the field)", fontsize="medium")
    fit_titles(fig)
    return fig


@docstring
def plot_rf_per_query(
    length: int = 56,
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
    *,
    stride: int = 1, is_causal: bool = False,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """Every query's receptive field after the whole stack, and its size against the formula.

    Left: one ``L x L`` matrix per stack (row = query, lit = input tokens in its field).
    Right: field size per query, with the formula ``min(L, 1 + (k - 1) sum d)`` dashed;
    they part near the borders, where windows shift inward instead of growing outward.

    Args:
        length: tokens on the axis.
        kernel_size: k.
        stacks: name -> per-layer dilations (default: three NA layers vs NA-DiNA-NA [1, 8, 1]).
        stride, is_causal: every layer's stride and causality.
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    stacks = _check_stacks(DEFAULT_STACKS if stacks is None else stacks, "plot_rf_per_query")
    colors = _stack_colors(len(stacks))
    with style_context(fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 3.4), "plot_rf_per_query")
        axes = fig.subplots(1, len(stacks) + 1, squeeze=False,
                            width_ratios=[1.0] * len(stacks) + [1.4])[0]
        ax_n = axes[-1]
        q = np.arange(length)
        for ax, (name, dils), color in zip(axes[:-1], stacks.items(), colors, strict=True):
            rf = receptive_fields_1d(length, kernel_size, list(dils), stride, is_causal)[-1]  # (L, L)
            draw_cells(ax, np.where(rf[:, :, None], _hex_rgb(color), _hex_rgb(_OFF)), max_edge=0.0)
            ax.set_title(name, fontsize="small")
            ax.set_xlabel("input token j", fontsize="small")
            ax.set_ylabel("query i", fontsize="small")
            _small_integer_ticks(ax)
            ax_n.plot(q, rf_stats(rf).count, color=color, linewidth=1.6, label=f"{name}: exact")
            if not is_causal and stride == 1:
                formula = min(length, analytic_extent(kernel_size, dils))
                ax_n.axhline(formula, color=color, linestyle="--", linewidth=1.0,
                             label=f"formula: {formula}")
        ax_n.set_xlabel("query i", fontsize="small")
        ax_n.set_ylabel("tokens in the field", fontsize="small")
        ax_n.set_ylim(0, length * 1.05)
        ax_n.set_xlim(-0.5, length - 0.5)
        ax_n.tick_params(labelsize="x-small")
        ax_n.grid(alpha=0.3)
        ax_n.set_title("size per query", fontsize="small")
        fig.legend(*ax_n.get_legend_handles_labels(), loc="outside lower center", ncol=2,
                   fontsize="x-small", frameon=False)
        fig.suptitle(f"Receptive field of every query after the stack "
                     f"({_window_text(kernel_size, stride, is_causal)}, {length} tokens)", fontsize="medium")
    fit_titles(fig)
    return fig


@docstring
def plot_rf_2d(
    shape: Sequence[int] = (28, 28),
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
    query: Sequence[int] | None = None,
    *,
    stride: int = 1, is_causal: bool = False,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """A 2-D query's receptive field after each layer, small multiples (rows: stacks).

    On a grid the field is the product of the per-axis fields, so it is a rectangle
    (with holes after a lone dilated layer).

    Args:
        shape: the grid (default 28x28, DiNAT's stage 1 at 224x224).
        kernel_size: k on both axes.
        stacks: name -> per-layer dilations (default: three NA layers vs NA-DiNA-NA
            [1, 4, 1], DiNAT's dilation on 28x28; a layer with ``k * d`` longer than an
            axis runs on the padded axis and its title says so).
        query: the query cell (default: the middle).
        stride: every layer's stride, both axes.
        is_causal: every layer causal on both axes.
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    stacks = _check_stacks(DEFAULT_STACKS_2D if stacks is None else stacks, "plot_rf_2d")
    shape = tuple(int(n) for n in shape)
    query = tuple(n // 2 for n in shape) if query is None else tuple(int(c) for c in query)
    colors = _stack_colors(len(stacks))
    n_cols = max(len(d) for d in stacks.values())
    flat_q = int(np.ravel_multi_index(query, shape))
    with style_context(fontsize):
        side = PAGE_WIDTH / n_cols
        fig = new_figure(fig, figsize, (PAGE_WIDTH, min(9.0, (side + 0.3) * len(stacks) + 0.6)), "plot_rf_2d")
        axes = fig.subplots(len(stacks), n_cols, squeeze=False)
        for r, ((name, dils), color) in enumerate(zip(stacks.items(), colors, strict=True)):
            for layer in range(n_cols):
                ax = axes[r, layer]
                if layer >= len(dils):
                    ax.set_visible(False)
                    continue
                rf = receptive_field(shape, kernel_size, list(dils[: layer + 1]), stride,
                                     is_causal)[flat_q].reshape(shape)  # (H, W)
                draw_cells(ax, np.where(rf[:, :, None], _hex_rgb(color), _hex_rgb(_OFF)), max_edge=0.0)
                ax.add_patch(Rectangle((query[1] - 0.5, query[0] - 0.5), 1, 1, color="black"))
                pad = "" if kernel_size * dils[layer] <= min(shape) else \
                    f", padded to {kernel_size * dils[layer]}"
                ax.set_title(f"{name}\nlayer {layer} (d={dils[layer]}{pad}): {int(rf.sum())} cells",
                             fontsize="x-small")
                _small_integer_ticks(ax)
                if layer == 0:
                    ax.set_ylabel("row", fontsize="small")
                if r == len(stacks) - 1:
                    ax.set_xlabel("column", fontsize="small")
        fig.suptitle(f"Exact 2-D receptive field of query {query} on {shape[0]}x{shape[1]}, "
                     f"{_window_text(kernel_size, stride, is_causal)} (black: the query)", fontsize="medium")
    fit_titles(fig)
    return fig


@docstring
def plot_preset_rf(
    presets: Sequence[str] = ("mini", "tiny", "large-384"),
    image_size: int | None = None,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """Per-stage receptive field of DiNAT presets, layer by layer, against an NA-only model.

    Rows: presets; columns: stages (numbered from 0). Each panel: tokens (per axis) in the
    field of the middle query and of the worst-placed query after each layer of the stage,
    for the preset's dilations (blue) and for the same depth with every dilation 1
    (vermillion). The grey line is the axis length: reaching it means every token is seen.

    Args:
        presets: names from :data:`dinat_ref.config.PRESETS`.
        image_size: input resolution (default: each preset's training resolution).
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    presets = list(presets)
    n_stages = max(len(_preset(p)[0]) for p in presets)
    with style_context(fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 1.9 * len(presets) + 0.9), "plot_preset_rf")
        axes = fig.subplots(len(presets), n_stages, squeeze=False)
        for r, p in enumerate(presets):
            depths, k, dilations, resolution = _preset(p)
            size = resolution if image_size is None else image_size
            for s, (L, dils) in enumerate(zip(stage_lengths(size, len(depths)), dilations, strict=True)):
                _draw_preset_stage(axes[r, s], L, k, dils)
                axes[r, s].set_title(f"stage {s}: {L}x{L}, k={k}\nd={format_dilations(dils)}",
                                     fontsize="x-small")
                if s == 0:
                    axes[r, s].set_ylabel(f"{p} at {size}\ntokens seen per axis", fontsize="x-small")
                if r == len(presets) - 1:
                    axes[r, s].set_xlabel("layers of the stage", fontsize="x-small")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="x-small", frameon=False)
        fig.suptitle("Exact receptive field in each stage's tokens, per axis (2-D field = square)",
                     fontsize="medium")
    fit_titles(fig)
    return fig


def _draw_preset_stage(ax: Axes, L: int, k: int, dils: Sequence[int]) -> None:
    """One stage: middle and worst query, the preset's dilations vs all dilations 1."""
    x = np.arange(0, len(dils) + 1)
    for label, ds, color in (("DiNAT", dils, _DINA_COLOR), ("NA only", [1] * len(dils), _NA_COLOR)):
        counts = receptive_fields_1d(L, k, list(ds)).sum(axis=2)  # (layers, L)
        ax.plot(x, np.concatenate([[1], counts[:, L // 2]]), color=color, marker="o", markersize=2.5,
                linewidth=1.4, label=f"{label}: middle query")
        ax.plot(x, np.concatenate([[1], counts.min(axis=1)]), color=color, linestyle=":", linewidth=1.2,
                label=f"{label}: worst query")
    ax.axhline(L, color="0.5", linewidth=0.8, label="the whole axis")
    ax.set_ylim(0, L * 1.15)
    _small_integer_ticks(ax)
    ax.grid(alpha=0.3)


def plot_preset_table(
    presets: Sequence[str] | None = None,
    image_size: int | None = None,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """:func:`dinat_ref.receptive_field.preset_table` as a picture (stages numbered from 0).

    Args:
        presets: names from :data:`dinat_ref.config.PRESETS` (default: every preset).
        image_size: input resolution (default: each preset's training resolution).
        fig: draw into this Figure, SubFigure or SubplotSpec (default: a new figure).
        figsize: size of the new figure (default: 7 in wide).
        fontsize: base font size in points (default 6.5; table cells get smaller type where
            the longest entry of a column would not fit it).

    Returns:
        The figure (or subfigure) drawn on.
    """
    from dinat_ref.config import PRESETS

    presets = list(PRESETS) if presets is None else list(presets)
    header = ["preset", "input", "stage", "tokens\n(padded)", "k", "dilations", "1+(k-1)\nsum d",
              "middle\nquery", "all queries\nmin..max", "whole axis\nafter layer", "NA only:\nmiddle, min"]
    rows = []
    for p in presets:
        for rf in preset_stage_rfs(p, image_size):
            d = list(rf.dilations)
            rows.append([
                p, str(rf.image_size), str(rf.stage),
                f"{rf.length}" + (f" ({rf.padded})" if rf.padded > rf.length else ""), str(rf.kernel_size),
                format_dilations(d), str(rf.analytic), str(rf.center),
                f"{rf.min_count}..{rf.max_count}",
                "never" if rf.layers_to_full is None else f"{rf.layers_to_full} of {len(d)}",
                f"{rf.na_center}, {rf.na_min_count}",
            ])
    with style_context(6.5 if fontsize is None else fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 0.15 * len(rows) + 1.0), "plot_preset_table")
        ax = fig.add_subplot()
        ax.axis("off")
        widths = [0.15, 0.06, 0.06, 0.09, 0.04, 0.12, 0.09, 0.07, 0.1, 0.1, 0.1]  # fractions of the width
        table = ax.table(cellText=rows, colLabels=header, cellLoc="center", colWidths=widths,
                         bbox=(0.0, 0.0, 1.0, 1.0))  # exactly the axes: nothing spills over the title
        table.auto_set_font_size(False)
        # The font size, or smaller where a column's longest entry would not fit its width.
        longest = [max(len(line) for r in [header, *rows] for line in r[c].split("\n"))
                   for c in range(len(header))]
        fits = min(w * figure_width(fig) * 72.0 / (0.62 * n) for w, n in zip(widths, longest, strict=True))
        table.set_fontsize(min(plt.rcParams["font.size"], fits))
        for (r, _), cell in table.get_celld().items():
            cell.set_linewidth(0.3)
            if r == 0:
                cell.set_height(cell.get_height() * 2.0)
                cell.set_facecolor("#DDDDDD")
            elif (r - 1) // 4 % 2 == 1:
                cell.set_facecolor("#F3F3F3")
        ax.set_title("Exact per-stage receptive field of each DiNAT preset, per axis, in the stage's tokens",
                     fontsize="medium")
        note = "2-D field = (per-axis count)^2; 'NA only' = same depth with every dilation 1"
        fig.legend(handles=[Patch(color="white", label=wrap(note, 0.9 * figure_width(fig), "small"))],
                   loc="outside lower center", fontsize="small", frameon=False)
    fit_titles(fig)
    return fig
