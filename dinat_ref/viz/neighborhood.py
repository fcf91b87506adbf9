"""Pictures of one neighborhood: the grid view, the flattened Q x K mask, the RPB indices.

Papers: NA https://arxiv.org/abs/2204.07143, DiNA https://arxiv.org/abs/2209.15001.

Every index drawn here comes from :mod:`dinat_ref.neighborhood` (the shared rule); this
module only decides colors and positions. Each function returns a matplotlib
``Figure`` (or draws on an ``Axes`` you pass), so pictures compose.

How to read the grid view
-------------------------
* Cells are tokens, tinted by their *dilation group* (tokens ``i`` with the same
  ``i % d`` on every axis). A query only ever sees its own group.
* Strong colors are the query's neighbors; the query has a thick black border and a ``Q``.
* The dashed black rectangle is the window: from the first to the last neighbor on each
  axis (``1 + (k - 1) * d`` cells wide when not causal). At a border it is shifted inward,
  not cut, so an edge query still has ``k`` neighbors per axis.
* With ``show_rpb=True`` each neighbor shows the RPB entry it uses,
  ``(k - 1) + (j - i) / d`` per axis.
* With stride, queries marked by a small black dot share this query's window.

Colors are the Okabe-Ito palette (distinguishable with the common color-vision
deficiencies); neighbor vs not is also told apart by lightness, not hue alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from dinat_ref.checks import Bools, Ints, check_window_args
from dinat_ref.neighborhood import (
    axis_windows,
    dense_mask,
    dilation_groups,
    neighbor_indices,
    neighbors_of,
    rpb_indices,
)

__all__ = [
    "OKABE_ITO",
    "group_color",
    "plot_neighborhood",
    "plot_neighborhood_panel",
    "plot_mask",
    "plot_grid_and_mask",
    "plot_rpb",
]

# Okabe & Ito (2008), without black (kept for the query and outlines); grey as an 8th color.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
_TINT = 0.22  # how much of the group color a non-neighbor cell gets (the rest is white)


def group_color(g: int) -> np.ndarray:
    """RGB (3,) of dilation group ``g``; groups beyond 8 reuse the palette."""
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(OKABE_ITO[g % len(OKABE_ITO)]))


def _text_color(rgb: np.ndarray) -> str:
    """Black on light fills, white on dark ones (relative luminance, sRGB weights)."""
    return "black" if float(rgb @ np.array([0.2126, 0.7152, 0.0722])) > 0.45 else "white"


def _norm(shape, query, kernel_size, stride, dilation, is_causal, where):
    shape, kernel_size, stride, dilation, is_causal = check_window_args(
        shape, kernel_size, stride, dilation, is_causal, where=where
    )
    if len(shape) > 2:
        raise ValueError(f"{where}: shape={shape} has {len(shape)} axes; the grid view draws 1 or 2.")
    if query is None:  # default: a corner, the case that shows the inward shift
        query = (0,) * (len(shape) - 1) + (shape[-1] - 1,)
    query = (int(query),) if np.isscalar(query) else tuple(int(c) for c in query)
    if len(query) != len(shape) or any(not 0 <= q < n for q, n in zip(query, shape, strict=True)):
        raise ValueError(f"{where}: query={query} is not a cell of the grid of shape {shape}.")
    return shape, query, kernel_size, stride, dilation, is_causal


def _describe(kernel_size, stride, dilation, is_causal) -> str:
    def f(t):
        return str(t[0]) if len(set(t)) == 1 else "(" + ",".join(str(int(x)) for x in t) + ")"

    kind = "causal NA" if any(is_causal) else ("DiNA" if max(dilation) > 1 else "NA")
    parts = [kind, f"k={f(kernel_size)}"]
    if max(dilation) > 1:
        parts.append(f"d={f(dilation)}")
    if max(stride) > 1:
        parts.append(f"s={f(stride)}")
    if any(is_causal) and not all(is_causal):
        parts.append(f"causal={f(is_causal)}")
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _flat(query: tuple[int, ...], shape: tuple[int, ...]) -> int:
    return int(np.ravel_multi_index(query, shape))


def plot_neighborhood(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
    ax: Axes | None = None,
    show_groups: bool = True,
    show_window: bool = True,
    show_rpb: bool = False,
    legend: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw one query's neighborhood on a 1-D or 2-D grid.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        query: the query cell (default: the top-right corner).
        kernel_size, stride, dilation, is_causal: the window, as in :mod:`dinat_ref.neighborhood`.
        ax: draw here (default: a new figure sized to the grid).
        show_groups: tint every cell by its dilation group (else neighbors are blue on white).
        show_window: dashed outline from the first to the last neighbor on each axis.
        show_rpb: write each neighbor's RPB index in its cell.
        legend: add a legend at the bottom of the figure.
        title: default: the configuration and the query.

    Returns:
        The figure drawn on.
    """
    shape, query, kernel_size, stride, dilation, is_causal = _norm(
        shape, query, kernel_size, stride, dilation, is_causal, "plot_neighborhood"
    )
    if ax is None:
        rows, cols = (1, shape[0]) if len(shape) == 1 else shape
        extra = (2.2 if legend else 1.2) if len(shape) == 2 else (1.5 if legend else 0.9)
        ax = plt.figure(figsize=(max(3.2, 0.34 * cols + 1.2), 0.34 * rows + extra),
                        layout="constrained").add_subplot()
    as2d = (lambda c: (0, c[0])) if len(shape) == 1 else (lambda c: tuple(c))  # cell -> (row, col)
    H, W = (1, shape[0]) if len(shape) == 1 else shape

    # Who: every set below comes from the shared rule.
    nbs = neighbors_of(query, shape, kernel_size, stride, dilation, is_causal)  # list of cells
    groups = dilation_groups(shape, dilation).reshape(H, W)  # (H, W) group number per cell
    windows = [axis_windows(n, k, s, d, c) for n, k, s, d, c in zip(shape, kernel_size, stride, dilation,
                                                                      is_causal, strict=True)]

    # Cells as one RGB image: tinted by group, full color where the query looks.
    rgb = np.ones((H, W, 3))
    for r in range(H):
        for c in range(W):
            col = group_color(int(groups[r, c])) if show_groups else np.array([0.0, 0.447, 0.698])
            rgb[r, c] = 1 - _TINT * (1 - col) if show_groups else 1.0
    nb_rgb = {}
    for cell in nbs:
        r, c = as2d(cell)
        col = group_color(int(groups[r, c])) if show_groups else group_color(0)
        rgb[r, c] = col
        nb_rgb[(r, c)] = col
    ax.imshow(rgb, origin="upper", interpolation="nearest", extent=(-0.5, W - 0.5, H - 0.5, -0.5))

    # Cell borders.
    ax.set_xticks(np.arange(-0.5, W, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, H, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)

    # The window: first to last neighbor on each axis, from the per-axis bounds of the rule.
    if show_window:
        lo, hi = [], []
        for q, a, d in zip(query, windows, dilation, strict=True):
            lo.append(int(a.start[q]))
            hi.append(int(a.start[q] + (a.count[q] - 1) * d))
        (r0, c0), (r1, c1) = as2d(lo), as2d(hi)
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, clip_on=False,
                               edgecolor="black", linestyle=(0, (3, 2)), linewidth=1.6, zorder=3))

    # Queries sharing this window (stride > 1): same key row in the neighbor table.
    if max(stride) > 1:
        keys, _ = neighbor_indices(shape, kernel_size, stride, dilation, is_causal)  # (N, K)
        same = np.all(keys == keys[_flat(query, shape)], axis=1).reshape(H, W)  # (H, W)
        rr, cc = np.nonzero(same)
        ax.scatter(cc - 0.3, rr - 0.3, s=9, color="black", zorder=4, marker="o", linewidths=0)

    # RPB index per neighbor.
    fontsize = 7 if len(shape) == 2 else 8
    if show_rpb:
        idx = rpb_indices(shape, kernel_size, stride, dilation, is_causal)[_flat(query, shape)]  # (K, ndim)
        keys, valid = neighbor_indices(shape, kernel_size, stride, dilation, is_causal)
        row_keys, row_valid = keys[_flat(query, shape)], valid[_flat(query, shape)]  # (K,)
        for t in np.nonzero(row_valid)[0]:
            cell = np.unravel_index(int(row_keys[t]), shape)
            r, c = as2d(cell)
            label = ",".join(str(int(x)) for x in idx[t])
            ax.text(c, r + (0.22 if (r, c) == as2d(query) else 0), label, ha="center", va="center",
                    fontsize=fontsize - (1 if len(label) > 3 else 0), color=_text_color(nb_rgb[(r, c)]),
                    zorder=5)

    # The query.
    qr, qc = as2d(query)
    ax.add_patch(Rectangle((qc - 0.5, qr - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.4,
                           zorder=6))
    q_rgb = nb_rgb.get((qr, qc), rgb[qr, qc])
    ax.text(qc, qr - (0.18 if show_rpb else 0), "Q", ha="center", va="center", fontsize=fontsize + 1,
            fontweight="bold", color=_text_color(np.asarray(q_rgb)), zorder=7)

    # Axes, ticks, title.
    step_w = 1 if W <= 16 else (2 if W <= 32 else 4)
    ax.set_xticks(np.arange(0, W, step_w))
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    if len(shape) == 1:
        ax.set_yticks([])
        ax.set_xlabel("token i")
    else:
        step_h = 1 if H <= 16 else (2 if H <= 32 else 4)
        ax.set_yticks(np.arange(0, H, step_h))
        ax.set_xlabel("column (axis 1)")
        ax.set_ylabel("row (axis 0)")
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")
    grid = "x".join(map(str, shape))
    q_txt = str(query[0]) if len(query) == 1 else str(query)
    ax.set_title(title if title is not None else
                 f"{_describe(kernel_size, stride, dilation, is_causal)} on {grid}\n"
                 f"query {q_txt}: {_plural(len(nbs), 'neighbor')}", fontsize=9)

    if legend:
        _legend(ax.figure, groups, show_groups, show_window, stride, show_rpb, len(shape))
    return ax.figure


def _legend(fig: Figure, groups: np.ndarray, show_groups, show_window, stride, show_rpb, ndim) -> None:
    """One legend under the whole figure."""
    handles = [Patch(facecolor="white", edgecolor="black", linewidth=2.0, label="Q  query")]
    n_groups = int(groups.max()) + 1
    if show_groups and n_groups > 1:
        for g in range(min(n_groups, 8)):
            handles.append(Patch(facecolor=group_color(g), label=f"neighbor, group {g}"))
        handles.append(Patch(facecolor=1 - _TINT * (1 - group_color(0)),
                             label="light: not a neighbor"))
    else:
        handles.append(Patch(facecolor=group_color(0), label="neighbor"))
    if show_window:
        handles.append(Patch(facecolor="none", edgecolor="black", linestyle="--", label="window"))
    if max(stride) > 1:
        handles.append(plt.Line2D([], [], marker="o", color="black", linestyle="none", markersize=3,
                                  label="shares the window"))
    if show_rpb:
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label="numbers: RPB index" + (" (row,col)" if ndim == 2 else "")))
    ncol = min(len(handles), 3 if ndim == 1 else 2)
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=7, frameon=False,
               handlelength=1.2, columnspacing=1.0)


def plot_neighborhood_panel(
    shape: Ints,
    queries: Sequence[Ints] | None = None,
    kernel_size: Ints = 3,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
    ncols: int | None = None,
    show_rpb: bool = False,
    suptitle: str | None = None,
) -> Figure:
    """Several queries of one configuration side by side, one shared legend.

    ``queries`` defaults to a corner, an edge, the middle and the opposite corner, the
    places where the inward shift shows (or changes nothing).
    """
    shape_t, _, kernel_size, stride, dilation, is_causal = _norm(
        shape, None, kernel_size, stride, dilation, is_causal, "plot_neighborhood_panel"
    )
    if queries is None:
        if len(shape_t) == 1:
            L = shape_t[0]
            queries = [(0,), (1,), (L // 2,), (L - 1,)]
        else:
            H, W = shape_t
            queries = [(0, 0), (0, W // 2), (H // 2, W // 2), (H - 1, W - 1)]
    queries = list(queries)
    rows, cols = (1, shape_t[0]) if len(shape_t) == 1 else shape_t
    if ncols is None:
        if len(shape_t) == 1:
            ncols = 1
        elif len(queries) == 4:
            ncols = 2 if cols > 8 else 4
        else:
            ncols = min(len(queries), 3)
    nrows = -(-len(queries) // ncols)
    cell = 0.3 if len(shape_t) == 2 else 0.26
    row_h = rows * cell + (1.3 if len(shape_t) == 2 else 0.75)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (cols * cell + 0.9), nrows * row_h + 0.9),
                             layout="constrained", squeeze=False)
    for ax, q in zip(axes.flat, queries, strict=False):  # spare axes are hidden below
        plot_neighborhood(shape_t, q, kernel_size, stride, dilation, is_causal, ax=ax, show_rpb=show_rpb,
                          legend=False)
        qq = (q,) if np.isscalar(q) else tuple(q)
        n = len(neighbors_of(qq, shape_t, kernel_size, stride, dilation, is_causal))
        ax.set_title(f"query {qq[0] if len(qq) == 1 else qq}: {_plural(n, 'neighbor')}", fontsize=9)
        if len(shape_t) == 1 and ax not in axes[-1]:
            ax.set_xlabel("")
    for ax in list(axes.flat)[len(queries):]:
        ax.set_visible(False)
    groups = dilation_groups(shape_t, dilation)
    _legend(fig, np.atleast_1d(groups), True, True, stride, show_rpb, len(shape_t))
    fig.suptitle(suptitle if suptitle is not None else
                 f"{_describe(kernel_size, stride, dilation, is_causal)} on {'x'.join(map(str, shape_t))}",
                 fontsize=11)
    return fig


def plot_mask(
    shape: Ints,
    kernel_size: Ints = 3,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
    query: Ints | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The same neighborhoods as a flattened ``N x N`` query-by-key mask (FlexAttention's view).

    Row ``i``, column ``j`` is filled iff query ``i`` attends to key ``j`` (cells numbered
    row-major). Filled cells take the key's dilation-group color, as in the grid view;
    ``query`` (if given) gets its row outlined. On 2-D grids, thin lines separate grid rows.
    """
    shape, q, kernel_size, stride, dilation, is_causal = _norm(
        shape, query, kernel_size, stride, dilation, is_causal, "plot_mask"
    )
    mask = dense_mask(shape, kernel_size, stride, dilation, is_causal)  # (N, N)
    N = mask.shape[0]
    groups = np.ravel(dilation_groups(shape, dilation))  # (N,) group of each key
    colors = np.stack([group_color(int(g)) for g in groups])  # (N, 3)
    rgb = np.where(mask[:, :, None], colors[None, :, :], 1.0)  # (N, N, 3)
    if ax is None:
        ax = plt.figure(figsize=(5, 5.2), layout="constrained").add_subplot()
    ax.imshow(rgb, interpolation="nearest", extent=(-0.5, N - 0.5, N - 0.5, -0.5))
    if len(shape) == 2:
        for b in range(shape[1], N, shape[1]):  # grid-row boundaries
            ax.axhline(b - 0.5, color="0.8", linewidth=0.4)
            ax.axvline(b - 0.5, color="0.8", linewidth=0.4)
    ax.set_xlim(-0.5, N - 0.5)
    ax.set_ylim(N - 0.5, -0.5)
    ax.set_xlabel("key j (flat, row-major)")
    ax.set_ylabel("query i (flat, row-major)")
    ax.tick_params(labelsize=7)
    if query is not None:
        i = _flat(q, shape)
        ax.axhspan(i - 0.5, i + 0.5, color="0.5", alpha=0.25, linewidth=0, zorder=2)  # the query's row
        cols = np.nonzero(mask[i])[0]  # (n,) its keys
        ax.scatter(cols, np.full(len(cols), i), s=max(2.0, min(16.0, 3000.0 / N)), color="black",
                   marker="o", linewidths=0, zorder=4)
        for x, ha in ((-0.5, "right"), (N - 0.5, "left")):
            ax.plot([x], [i], marker="<" if ha == "left" else ">", color="black", markersize=5,
                    clip_on=False, zorder=4)
        ax.annotate(f"query {q[0] if len(q) == 1 else q}\n= row {i}", xy=(N - 0.5, i), xytext=(10, 0),
                    textcoords="offset points", va="center", ha="left", fontsize=7, annotation_clip=False)
    ax.set_aspect("equal")
    ax.set_title(title if title is not None else
                 f"Q x K mask, {N} x {N}: {int(mask.sum())} of {N * N} pairs "
                 f"({mask.sum() / N / N:.0%})", fontsize=9)
    return ax.figure


def plot_grid_and_mask(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
    interactive: bool = False,
) -> Figure:
    """The grid view and the Q x K mask of one configuration, linked by the query.

    The query's neighbors on the grid are exactly the filled cells of its (outlined) row
    in the mask, in the same colors. With ``interactive=True`` (an interactive backend),
    clicking a grid cell moves the query in both views.
    """
    shape_t, q, kernel_size, stride, dilation, is_causal = _norm(
        shape, query, kernel_size, stride, dilation, is_causal, "plot_grid_and_mask"
    )
    rows, cols = (1, shape_t[0]) if len(shape_t) == 1 else shape_t
    if len(shape_t) == 1:  # a strip over its mask: the columns line up with the tokens
        fig = plt.figure(figsize=(6.0, 7.4), layout="constrained")
        ax_grid, ax_mask = fig.subplots(2, 1, height_ratios=[1.0, 5.0])
    else:
        grid_w = max(3.0, 0.3 * cols + 1.0)
        fig = plt.figure(figsize=(grid_w + 5.6, max(5.0, 0.3 * rows + 2.6)), layout="constrained")
        ax_grid, ax_mask = fig.subplots(1, 2, width_ratios=[grid_w, 5.0])

    def draw(query_cell: tuple[int, ...]) -> None:
        ax_grid.clear()
        ax_mask.clear()
        plot_neighborhood(shape_t, query_cell, kernel_size, stride, dilation, is_causal, ax=ax_grid,
                          legend=False)
        plot_mask(shape_t, kernel_size, stride, dilation, is_causal, query=query_cell, ax=ax_mask)
        flat = _flat(query_cell, shape_t)
        qtxt = query_cell[0] if len(query_cell) == 1 else query_cell
        ax_grid.set_title(f"grid: query {qtxt} (flat index {flat})", fontsize=9)
        ax_mask.set_title(f"Q x K mask: row {flat} (dots) holds the same neighbors", fontsize=9)

    draw(q)
    fig.suptitle(f"{_describe(kernel_size, stride, dilation, is_causal)} on {'x'.join(map(str, shape_t))}: "
                 "grid view and flattened mask", fontsize=10)

    def on_click(event) -> None:  # the link: a click on the grid moves the query everywhere
        if event.inaxes is not ax_grid or event.xdata is None:
            return
        c, r = int(round(event.xdata)), int(round(event.ydata))
        cell = (c,) if len(shape_t) == 1 else (r, c)
        if all(0 <= x < n for x, n in zip(cell, shape_t, strict=True)):
            draw(cell)
            fig.canvas.draw_idle()

    if interactive:
        fig.canvas.mpl_connect("button_press_event", on_click)
    groups = dilation_groups(shape_t, dilation)
    _legend(fig, np.atleast_1d(groups), True, True, stride, False, len(shape_t))
    return fig


def plot_rpb(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
) -> Figure:
    """Which relative-position-bias entries one query uses.

    Left: the grid, each neighbor labeled with its RPB index ``(k - 1) + (j - i) / d`` per
    axis. Right: the RPB table (``2k - 1`` entries per axis), the entries this query reads
    filled. A centered query reads the middle ``k x k`` block; at a border the window
    shifts inward, so the block it reads slides off-center.
    """
    shape_t, q, kernel_size, stride, dilation, is_causal = _norm(
        shape, query, kernel_size, stride, dilation, is_causal, "plot_rpb"
    )
    flat = _flat(q, shape_t)
    idx = rpb_indices(shape_t, kernel_size, stride, dilation, is_causal)[flat]  # (K, ndim)
    _, valid = neighbor_indices(shape_t, kernel_size, stride, dilation, is_causal)
    used = idx[valid[flat]]  # (n_valid, ndim) entries read by this query
    table = tuple(2 * k - 1 for k in kernel_size)  # RPB shape per axis
    T_rows, T_cols = (1, table[0]) if len(shape_t) == 1 else table
    rows, cols = (1, shape_t[0]) if len(shape_t) == 1 else shape_t

    grid_w = max(3.0, 0.34 * cols + 1.0)
    table_w = max(2.6, 0.34 * T_cols + 1.0)
    fig = plt.figure(figsize=(grid_w + table_w + 0.4, max(0.34 * max(rows, T_rows) + 1.6, 2.4)),
                     layout="constrained")
    ax_grid, ax_tab = fig.subplots(1, 2, width_ratios=[grid_w, table_w])
    plot_neighborhood(shape_t, q, kernel_size, stride, dilation, is_causal, ax=ax_grid, show_rpb=True,
                      legend=False)
    ax_grid.set_title(f"neighbors of query {q[0] if len(q) == 1 else q}, labeled by RPB index", fontsize=9)

    img = np.ones((T_rows, T_cols, 3))
    cells = [(0, int(u[0])) if len(shape_t) == 1 else (int(u[0]), int(u[1])) for u in used]
    q_group = int(np.ravel(dilation_groups(shape_t, dilation))[flat])
    for r, c in cells:
        img[r, c] = group_color(q_group)  # the query's group color, as its neighbors on the grid
    ax_tab.imshow(img, interpolation="nearest", extent=(-0.5, T_cols - 0.5, T_rows - 0.5, -0.5))
    for r in range(T_rows):
        for c in range(T_cols):
            label = str(c) if len(shape_t) == 1 else f"{r},{c}"
            ax_tab.text(c, r, label, ha="center", va="center", fontsize=7 if len(shape_t) == 1 else 6,
                        color=_text_color(group_color(q_group)) if (r, c) in cells else "0.45")
    centre = tuple(k - 1 for k in kernel_size)
    cr, cc = (0, centre[0]) if len(shape_t) == 1 else centre
    ax_tab.add_patch(Rectangle((cc - 0.5, cr - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.6,
                               zorder=3))
    ax_tab.set_xticks(np.arange(-0.5, T_cols, 1), minor=True)
    ax_tab.set_yticks(np.arange(-0.5, T_rows, 1), minor=True)
    ax_tab.grid(which="minor", color="0.75", linewidth=0.6)
    ax_tab.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax_tab.set_xlabel("RPB entry, axis 1" if len(shape_t) == 2 else "RPB entry")
    if len(shape_t) == 2:
        ax_tab.set_ylabel("RPB entry, axis 0")
    ax_tab.set_aspect("equal")
    ax_tab.set_title(f"RPB table ({'x'.join(map(str, table))}): {len(cells)} entries read\n"
                     f"outlined: offset 0 (the query itself)", fontsize=9)
    fig.suptitle(f"{_describe(kernel_size, stride, dilation, is_causal)}: bias = rpb[(k-1) + (j-i)/d]",
                 fontsize=10)
    return fig
