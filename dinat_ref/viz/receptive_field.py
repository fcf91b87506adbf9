"""Pictures of exact receptive fields: how NA and DiNA layers grow what a token can see.

Paper: DiNAT, https://arxiv.org/abs/2209.15001 (Sec. 3 and Fig. 4 on receptive fields).
Every number drawn comes from :mod:`dinat_ref.receptive_field`, which composes the
neighborhoods of :mod:`dinat_ref.neighborhood` exactly (boolean matrix products).

* :func:`plot_rf_growth`: one query, layer by layer (frames as rows), several stacks.
* :func:`plot_rf_per_query`: every query after the whole stack, with the formula.
* :func:`plot_rf_2d`: the same on a 2-D grid, small multiples per layer.
* :func:`plot_preset_rf` / :func:`plot_preset_table`: each DiNAT stage, DiNAT vs NA-only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

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
from dinat_ref.viz.neighborhood import OKABE_ITO

__all__ = ["DEFAULT_STACKS", "plot_rf_growth", "plot_rf_per_query", "plot_rf_2d", "plot_preset_rf",
           "plot_preset_table"]

# The paper's comparison: three NA layers vs NA, DiNA (dilation 8), NA.
DEFAULT_STACKS: dict[str, tuple[int, ...]] = {"NA [1, 1, 1]": (1, 1, 1), "DiNA [1, 8, 1]": (1, 8, 1)}
_NA_COLOR, _DINA_COLOR = OKABE_ITO[5], OKABE_ITO[0]  # vermillion, blue
_OFF = "#EEEEEE"


def _stack_colors(n: int) -> list[str]:
    return [_NA_COLOR, _DINA_COLOR, OKABE_ITO[2], OKABE_ITO[3], OKABE_ITO[1]][:n] if n <= 5 else \
        [OKABE_ITO[i % len(OKABE_ITO)] for i in range(n)]


def _hex_rgb(color: str) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(color))


def plot_rf_growth(
    length: int = 56,
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
    query: int | None = None,
) -> Figure:
    """One query's exact receptive field after each layer, for several layer stacks.

    Each stack gets a panel; row ``l`` of the panel lights the input tokens that can
    change the query's output after ``l`` layers (row 0: the query alone). The right
    margin gives the exact count and the formula ``1 + (k - 1) * sum(d)``.

    Args:
        length: tokens on the axis (default 56, DiNAT's first stage at 224x224).
        kernel_size: k (default 7).
        stacks: name -> per-layer dilations (default: NA [1,1,1] vs DiNA [1,8,1]).
        query: the query token (default: the middle).
    """
    stacks = dict(DEFAULT_STACKS if stacks is None else stacks)
    query = length // 2 if query is None else int(query)
    colors = _stack_colors(len(stacks))
    n_rows = [len(d) + 1 for d in stacks.values()]
    fig, axes = plt.subplots(len(stacks), 1, figsize=(max(6.0, 0.13 * length + 2.6), 0.32 * sum(n_rows) +
                                                      1.0 * len(stacks) + 0.6),
                             height_ratios=n_rows, layout="constrained", squeeze=False)
    for ax, (name, dils), color in zip(axes[:, 0], stacks.items(), colors, strict=True):
        rfs = receptive_fields_1d(length, kernel_size, list(dils))  # (layers, L, L)
        rows = [np.eye(length, dtype=bool)[query]] + [rf[query] for rf in rfs]  # (layers + 1) x (L,)
        img = np.ones((len(rows), length, 3)) * _hex_rgb(_OFF)
        for r, row in enumerate(rows):
            img[r, row] = _hex_rgb(color)
        ax.imshow(img, interpolation="nearest", aspect="auto",
                  extent=(-0.5, length - 0.5, len(rows) - 0.5, -0.5))
        ax.set_xticks(np.arange(-0.5, length, 1), minor=True)
        ax.grid(which="minor", axis="x", color="white", linewidth=0.5)
        ax.set_yticks(np.arange(-0.5, len(rows), 1), minor=True)
        ax.grid(which="minor", axis="y", color="white", linewidth=2.0)
        ax.tick_params(which="minor", length=0)
        row_names = ["query"] + [f"after layer {i + 1} (d={d})" for i, d in enumerate(dils)]
        ax.set_yticks(range(len(rows)), row_names, fontsize=8)
        ax.add_patch(Rectangle((query - 0.5, -0.5), 1, len(rows), fill=False, edgecolor="black",
                               linewidth=1.2))
        for r, row in enumerate(rows):
            n = int(row.sum())
            lit = np.nonzero(row)[0]
            extent = int(lit[-1] - lit[0] + 1)
            note = f"{n}" if r == 0 else f"{n} tokens" + (" = all" if n == length else "")
            if r > 0:
                note += ("" if extent == n else f", span {extent}") + \
                    f"  (formula: span {analytic_extent(kernel_size, dils[:r])})"
            ax.text(length - 0.2, r, "  " + note, va="center", ha="left", fontsize=8)
        ax.set_xlim(-0.5, length - 0.5)
        ax.set_title(f"{name}: k={kernel_size}, {length} tokens, query {query}", fontsize=10, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("input token j (lit: can change the query's output)")
    fig.suptitle("Exact receptive field, layer by layer", fontsize=11)
    return fig


def plot_rf_per_query(
    length: int = 56,
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
) -> Figure:
    """Every query's receptive field after the whole stack, and its size against the formula.

    Top: one ``L x L`` matrix per stack (row = query, lit = input tokens in its field).
    Bottom: field size per query, with the formula ``min(L, 1 + (k - 1) sum d)`` dashed;
    they part near the borders, where windows shift inward instead of growing outward.
    """
    stacks = dict(DEFAULT_STACKS if stacks is None else stacks)
    colors = _stack_colors(len(stacks))
    fig = plt.figure(figsize=(3.3 * len(stacks) + 1.0, 7.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.25, 1.0])
    axes = top.subplots(1, len(stacks), squeeze=False)[0]
    ax_n = bottom.subplots()
    q = np.arange(length)
    for ax, (name, dils), color in zip(axes, stacks.items(), colors, strict=True):
        rf = receptive_fields_1d(length, kernel_size, list(dils))[-1]  # (L, L)
        img = np.where(rf[:, :, None], _hex_rgb(color), _hex_rgb(_OFF))  # (L, L, 3)
        ax.imshow(img, interpolation="nearest", extent=(-0.5, length - 0.5, length - 0.5, -0.5))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("input token j", fontsize=8)
        ax.set_ylabel("query i", fontsize=8)
        ax.tick_params(labelsize=7)
        counts = rf_stats(rf).count  # (L,)
        ax_n.plot(q, counts, color=color, linewidth=2.0, label=f"{name}: exact")
        formula = min(length, analytic_extent(kernel_size, dils))
        ax_n.axhline(formula, color=color, linestyle="--", linewidth=1.2,
                     label=f"{name}: min(L, 1+(k-1)sum d) = {formula}")
    ax_n.set_xlabel("query i")
    ax_n.set_ylabel("tokens in the receptive field")
    ax_n.set_ylim(0, length * 1.08)
    ax_n.set_xlim(-0.5, length - 0.5)
    ax_n.legend(fontsize=8, loc="center", bbox_to_anchor=(0.5, 0.62), frameon=True)
    ax_n.grid(alpha=0.3)
    ax_n.set_title("size per query: the formula holds away from the borders", fontsize=10)
    top.suptitle(f"Receptive field of every query after the stack (k={kernel_size}, {length} tokens)",
                 fontsize=11)
    return fig


def plot_rf_2d(
    shape: Sequence[int] = (28, 28),
    kernel_size: int = 7,
    stacks: Mapping[str, Sequence[int]] | None = None,
    query: Sequence[int] | None = None,
) -> Figure:
    """A 2-D query's receptive field after each layer, small multiples (rows: stacks).

    On a grid the field is the product of the per-axis fields, so it is a rectangle
    (with holes after a lone dilated layer).
    """
    stacks = dict(DEFAULT_STACKS if stacks is None else stacks)
    shape = tuple(int(n) for n in shape)
    query = tuple(n // 2 for n in shape) if query is None else tuple(int(c) for c in query)
    colors = _stack_colors(len(stacks))
    n_cols = max(len(d) for d in stacks.values())
    fig, axes = plt.subplots(len(stacks), n_cols, figsize=(2.3 * n_cols + 0.6, 2.5 * len(stacks) + 0.5),
                             layout="constrained", squeeze=False)
    flat_q = int(np.ravel_multi_index(query, shape))
    for r, ((name, dils), color) in enumerate(zip(stacks.items(), colors, strict=True)):
        for layer in range(n_cols):
            ax = axes[r, layer]
            if layer >= len(dils):
                ax.set_visible(False)
                continue
            rf = receptive_field(shape, kernel_size, list(dils[: layer + 1]))[flat_q].reshape(shape)  # (H, W)
            img = np.where(rf[:, :, None], _hex_rgb(color), _hex_rgb(_OFF))
            ax.imshow(img, interpolation="nearest")
            ax.add_patch(Rectangle((query[1] - 0.5, query[0] - 0.5), 1, 1, color="black"))
            ax.set_title(f"{name}\nafter layer {layer + 1} (d={dils[layer]}): {int(rf.sum())} cells",
                         fontsize=8)
            ax.tick_params(labelsize=6)
            if layer == 0:
                ax.set_ylabel("row")
            if r == len(stacks) - 1:
                ax.set_xlabel("column")
    fig.suptitle(f"Exact 2-D receptive field of query {query} on {shape[0]}x{shape[1]}, k={kernel_size} "
                 "(black: the query)", fontsize=10)
    return fig


def plot_preset_rf(
    presets: Sequence[str] = ("mini", "tiny", "large-384"), image_size: int | None = None
) -> Figure:
    """Per-stage receptive field of DiNAT presets, layer by layer, against an NA-only model.

    Rows: presets; columns: stages. Each panel: tokens (per axis) in the field of the
    middle query and of the worst-placed query after each layer of the stage, for the
    preset's dilations (blue) and for the same depth with every dilation 1 (vermillion).
    The grey line is the axis length: reaching it means every token is seen. ``image_size``
    defaults to each preset's training resolution.
    """
    presets = list(presets)
    n_stages = max(len(_preset(p)[0]) for p in presets)
    fig, axes = plt.subplots(len(presets), n_stages, figsize=(3.0 * n_stages, 2.6 * len(presets) + 0.9),
                             layout="constrained", squeeze=False)
    for r, p in enumerate(presets):
        depths, k, dilations, resolution = _preset(p)
        size = resolution if image_size is None else image_size
        for s, (L, dils) in enumerate(zip(stage_lengths(size, len(depths)), dilations,
                                                strict=True)):
            ax = axes[r, s]
            x = np.arange(0, len(dils) + 1)
            for label, ds, color in (("DiNAT", dils, _DINA_COLOR), ("NA only", [1] * len(dils), _NA_COLOR)):
                counts = receptive_fields_1d(L, k, list(ds)).sum(axis=2)  # (layers, L)
                mid = np.concatenate([[1], counts[:, L // 2]])
                worst = np.concatenate([[1], counts.min(axis=1)])
                ax.plot(x, mid, color=color, marker="o", markersize=3, linewidth=1.8,
                        label=f"{label}: middle query")
                ax.plot(x, worst, color=color, linestyle=":", linewidth=1.5, label=f"{label}: worst query")
            ax.axhline(L, color="0.5", linewidth=1.0, label="the whole axis")
            ax.set_ylim(0, L * 1.18)
            ax.set_xticks(x if len(x) <= 7 else x[::3])
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            d_txt = format_dilations(dils)
            ax.set_title(f"{p} at {size}, stage {s + 1}: {L}x{L}\nk={k}, d = {d_txt}", fontsize=8)
            if s == 0:
                ax.set_ylabel("tokens seen per axis")
            if r == len(presets) - 1:
                ax.set_xlabel("layers of the stage")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Exact receptive field in each stage's tokens, per axis (2-D field = square of these)",
                 fontsize=10)
    return fig


def plot_preset_table(presets: Sequence[str] | None = None, image_size: int | None = None) -> Figure:
    """:func:`dinat_ref.receptive_field.preset_table` as a picture (default: every preset)."""
    from dinat_ref.config import PRESETS

    presets = list(PRESETS) if presets is None else list(presets)
    header = ["preset", "input", "stage", "tokens\n(padded)", "k", "dilations", "1+(k-1)sum d",
              "middle\nquery", "all queries\nmin..max", "whole axis\nafter layer", "NA only:\nmiddle, min"]
    rows = []
    for p in presets:
        for rf in preset_stage_rfs(p, image_size):
            d = list(rf.dilations)
            rows.append([
                p, str(rf.image_size), str(rf.stage + 1),
                f"{rf.length}" + (f" ({rf.padded})" if rf.padded > rf.length else ""), str(rf.kernel_size),
                format_dilations(d), str(rf.analytic), str(rf.center),
                f"{rf.min_count}..{rf.max_count}",
                "never" if rf.layers_to_full is None else f"{rf.layers_to_full} of {len(d)}",
                f"{rf.na_center}, {rf.na_min_count}",
            ])
    fig = plt.figure(figsize=(11.5, 0.26 * len(rows) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    widths = [0.14, 0.06, 0.06, 0.09, 0.04, 0.11, 0.1, 0.07, 0.1, 0.1, 0.1]  # fractions of the width
    table = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center", colWidths=widths)
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.25)
    for (r, _), cell in table.get_celld().items():
        if r == 0:
            cell.set_height(cell.get_height() * 1.9)
            cell.set_facecolor("#DDDDDD")
        elif (r - 1) // 4 % 2 == 1:
            cell.set_facecolor("#F3F3F3")
    ax.set_title("Exact per-stage receptive field of each DiNAT preset, per axis, in the stage's tokens",
                 fontsize=10)
    fig.legend(handles=[Patch(color="white", label="2-D field = (per-axis count)^2; "
                              "'NA only' = same depth with every dilation 1")],
               loc="outside lower center", fontsize=8, frameon=False)
    return fig
