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
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from dinat_ref.checks import Bools, Ints, Window, check_window_args
from dinat_ref.neighborhood import (
    axis_windows,
    dense_mask,
    dilation_groups,
    neighbor_indices,
    neighbors_of,
    rpb_indices,
)
from dinat_ref.viz.style import (
    COLUMN_WIDTH,
    PAGE_WIDTH,
    FigureTarget,
    cell_points,
    docstring,
    draw_cells,
    fit_titles,
    new_axes,
    new_figure,
    style_context,
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


@dataclass(frozen=True)
class _Config:
    """A checked window configuration and one query, as the drawing steps need them."""

    shape: tuple[int, ...]
    query: tuple[int, ...]
    window: Window

    @property
    def rows_cols(self) -> tuple[int, int]:
        """The grid as drawn: a 1-D axis is one row."""
        return (1, self.shape[0]) if len(self.shape) == 1 else self.shape

    def cell(self, c: Sequence[int]) -> tuple[int, int]:
        """A grid cell as (row, col) of the drawing."""
        return (0, int(c[0])) if len(self.shape) == 1 else (int(c[0]), int(c[1]))

    @property
    def flat(self) -> int:
        return int(np.ravel_multi_index(self.query, self.shape))

    @property
    def groups(self) -> np.ndarray:
        """(N,) the dilation group of every cell, in row-major order."""
        return np.ravel(dilation_groups(self.shape, self.window.dilation))


def _norm(shape, query, kernel_size, stride, dilation, is_causal, where) -> _Config:
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
    return _Config(shape, query, Window(kernel_size, stride, dilation, is_causal))


def _describe(kernel_size, stride, dilation, is_causal) -> str:
    """'causal DiNA, k=3, d=2' and the like: every argument that is not its default."""
    def f(t):
        return str(t[0]) if len(set(t)) == 1 else "(" + ",".join(str(int(x)) for x in t) + ")"

    kind = "DiNA" if max(dilation) > 1 else "NA"
    parts = [("causal " if any(is_causal) else "") + kind, f"k={f(kernel_size)}"]
    if max(dilation) > 1:
        parts.append(f"d={f(dilation)}")
    if max(stride) > 1:
        parts.append(f"s={f(stride)}")
    if any(is_causal) and not all(is_causal):
        parts.append(f"causal={f(is_causal)}")
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _grid_text(shape: tuple[int, ...]) -> str:
    """'17 tokens' for a 1-D axis, '9x12' for a grid."""
    return f"{shape[0]} tokens" if len(shape) == 1 else "x".join(map(str, shape))


def _query_text(query: tuple[int, ...]) -> str:
    return str(query[0]) if len(query) == 1 else str(query)


# ----------------------------------------------------------------------------------------
# The grid view, step by step
# ----------------------------------------------------------------------------------------

def _cell_colors(cfg: _Config, show_groups: bool) -> tuple[np.ndarray, dict, np.ndarray]:
    """Step 1, who and which color: (rows, cols, 3) RGB, {cell: RGB} of the neighbors, groups.

    Every cell is tinted by its dilation group; the neighbors (from the shared rule) get
    the group's full color.
    """
    H, W = cfg.rows_cols
    groups = cfg.groups.reshape(H, W)  # (H, W) group number per cell
    palette = np.stack([group_color(int(g)) for g in range(int(groups.max()) + 1)])  # (G, 3)
    rgb = 1 - _TINT * (1 - palette[groups]) if show_groups else np.ones((H, W, 3))  # (H, W, 3)
    nb_rgb = {}
    for cell in neighbors_of(cfg.query, cfg.shape, *cfg.window.args()):
        r, c = cfg.cell(cell)
        rgb[r, c] = nb_rgb[(r, c)] = palette[groups[r, c]] if show_groups else group_color(0)
    return rgb, nb_rgb, groups


def _draw_window(ax: Axes, cfg: _Config) -> None:
    """Step 2: the dashed window, first to last neighbor on each axis (the rule's per-axis bounds)."""
    lo, hi = [], []
    for n, q, k, s, d, c in zip(cfg.shape, cfg.query, *cfg.window.args(), strict=True):
        a = axis_windows(n, k, s, d, c)
        lo.append(int(a.start[q]))
        hi.append(int(a.start[q] + (a.count[q] - 1) * d))
    (r0, c0), (r1, c1) = cfg.cell(lo), cfg.cell(hi)
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, clip_on=False,
                           edgecolor="black", linestyle=(0, (3, 2)), linewidth=1.4, zorder=3))


def _draw_window_sharers(ax: Axes, cfg: _Config) -> None:
    """Step 3 (stride > 1): a dot on every query whose key row equals this query's."""
    keys, _ = neighbor_indices(cfg.shape, *cfg.window.args())  # (N, K)
    same = np.all(keys == keys[cfg.flat], axis=1).reshape(cfg.rows_cols)  # (H, W)
    rr, cc = np.nonzero(same)
    ax.scatter(cc - 0.3, rr - 0.3, s=6, color="black", zorder=4, marker="o", linewidths=0)


def _draw_rpb_labels(ax: Axes, cfg: _Config, nb_rgb: dict, size: float) -> None:
    """Step 4 (show_rpb): each neighbor's RPB index ``(k - 1) + (j - i) / d`` per axis."""
    idx = rpb_indices(cfg.shape, *cfg.window.args())[cfg.flat]  # (K, ndim)
    keys, valid = neighbor_indices(cfg.shape, *cfg.window.args())
    for t in np.nonzero(valid[cfg.flat])[0]:
        r, c = cfg.cell(np.unravel_index(int(keys[cfg.flat, t]), cfg.shape))
        label = ",".join(str(int(x)) for x in idx[t])
        ax.text(c, r + (0.22 if (r, c) == cfg.cell(cfg.query) else 0), label, ha="center", va="center",
                fontsize=size * (0.8 if len(label) > 3 else 1.0), color=_text_color(nb_rgb[(r, c)]),
                zorder=5)


def _draw_query(ax: Axes, cfg: _Config, rgb: np.ndarray, size: float, show_rpb: bool) -> None:
    """Step 5: the query's thick outline and its 'Q'."""
    qr, qc = cfg.cell(cfg.query)
    ax.add_patch(Rectangle((qc - 0.5, qr - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0,
                           zorder=6))
    ax.text(qc, qr - (0.18 if show_rpb else 0), "Q", ha="center", va="center", fontsize=size,
            fontweight="bold", color=_text_color(np.asarray(rgb[qr, qc])), zorder=7)


def _label_axes(ax: Axes, cfg: _Config) -> None:
    """Step 6: integer ticks (as many as fit), axis names, equal aspect."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True, min_n_ticks=2))
    ax.tick_params(labelsize="x-small", length=2)
    if len(cfg.shape) == 1:
        ax.set_yticks([])
        ax.set_xlabel("token i", fontsize="small")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True, min_n_ticks=2))
        ax.set_xlabel("column (axis 1)", fontsize="small")
        ax.set_ylabel("row (axis 0)", fontsize="small")


def _annotation_size(ax: Axes, cfg: _Config, show_rpb: bool) -> float:
    """Font size (points) of text inside a cell: at most the font size, and it must fit the cell."""
    fits = cell_points(ax, *cfg.rows_cols) * (0.36 if show_rpb else 0.62)  # two lines in the query cell
    return float(max(3.0, min(plt.rcParams["font.size"] * 0.8, fits)))


@docstring
def plot_neighborhood(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
    ax: Axes | None = None,
    show_groups: bool = True,
    show_window: bool = True,
    show_rpb: bool = False,
    legend: bool = True,
    title: str | None = None,
    *,
    figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure:
    """Draw one query's neighborhood on a 1-D or 2-D grid.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        query: the query cell (default: the top-right corner).
        %(window_args)s
        show_groups: tint every cell by its dilation group (else neighbors are blue on white).
        show_window: dashed outline from the first to the last neighbor on each axis.
        show_rpb: write each neighbor's RPB index in its cell.
        legend: add a legend under the figure.
        title: default: the configuration and the query.
        %(axes_args)s

    Returns:
        The figure drawn on.
    """
    cfg = _norm(shape, query, kernel_size, stride, dilation, is_causal, "plot_neighborhood")
    H, W = cfg.rows_cols
    with style_context(fontsize):
        height = COLUMN_WIDTH * H / W + (1.3 if legend else 0.9) + (0 if len(cfg.shape) == 2 else 0.1)
        ax = new_axes(ax, figsize, (COLUMN_WIDTH, min(height, 6.0)), "plot_neighborhood")
        rgb, nb_rgb, groups = _cell_colors(cfg, show_groups)
        draw_cells(ax, rgb)
        if show_window:
            _draw_window(ax, cfg)
        if max(cfg.window.stride) > 1:
            _draw_window_sharers(ax, cfg)
        size = _annotation_size(ax, cfg, show_rpb)
        if show_rpb:
            _draw_rpb_labels(ax, cfg, nb_rgb, size)
        _draw_query(ax, cfg, rgb, size, show_rpb)
        _label_axes(ax, cfg)
        ax.set_title(title if title is not None else
                     f"{_describe(*cfg.window.args())} on {_grid_text(cfg.shape)}\n"
                     f"query {_query_text(cfg.query)}: {_plural(len(nb_rgb), 'neighbor')}",
                     fontsize="medium")
        if legend:
            shown = {int(groups[cfg.cell(cfg.query)])}  # a query only sees its own group
            _legend(ax.figure, cfg, shown, show_groups, show_window, show_rpb)
    fit_titles(ax.figure)
    return ax.get_figure(root=True)


def _legend(fig: Figure | SubFigure, cfg: _Config, shown: set[int], show_groups: bool, show_window: bool,
            show_rpb: bool) -> None:
    """One legend under the whole figure; it names only the groups whose neighbors are drawn."""
    n_groups = int(cfg.groups.max()) + 1
    handles = [Patch(facecolor="white", edgecolor="black", linewidth=1.6, label="Q: query")]
    if show_groups and n_groups > 1:
        for g in sorted(shown)[:8]:
            handles.append(Patch(facecolor=group_color(g), label=f"neighbor (group {g})"))
        handles.append(Patch(facecolor=1 - _TINT * (1 - group_color(min(shown))), label="not a neighbor"))
    else:
        handles.append(Patch(facecolor=group_color(0), label="neighbor"))
    if show_window:
        handles.append(Patch(facecolor="none", edgecolor="black", linestyle="--", label="window"))
    if max(cfg.window.stride) > 1:
        handles.append(plt.Line2D([], [], marker="o", color="black", linestyle="none", markersize=3,
                                  label="shares the window"))
    if show_rpb:
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label="numbers: RPB index" + (" (row,col)" if len(cfg.shape) == 2 else "")))
    width = fig.get_figure(root=True).get_figwidth() if isinstance(fig, SubFigure) else fig.get_figwidth()
    ncol = min(len(handles), 2 if width < 5 else 4)
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize="x-small", frameon=False,
               handlelength=1.2, columnspacing=1.0)


@docstring
def plot_neighborhood_panel(
    shape: Ints,
    queries: Sequence[Ints] | None = None,
    kernel_size: Ints = 3, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
    ncols: int | None = None,
    show_rpb: bool = False,
    suptitle: str | None = None,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """Several queries of one configuration side by side, one shared legend.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        queries: the query cells; default: a corner, an edge, the middle and the opposite
            corner, the places where the inward shift shows (or changes nothing).
        %(window_args)s
        ncols: panels per row (default: as many as keep the cells readable).
        show_rpb: write each neighbor's RPB index in its cell.
        suptitle: default: the configuration.
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    cfg = _norm(shape, None, kernel_size, stride, dilation, is_causal, "plot_neighborhood_panel")
    if queries is None:
        if len(cfg.shape) == 1:
            L = cfg.shape[0]
            queries = [(0,), (1,), (L // 2,), (L - 1,)]
        else:
            H, W = cfg.shape
            queries = [(0, 0), (0, W // 2), (H // 2, W // 2), (H - 1, W - 1)]
    queries = [_norm(shape, q, kernel_size, stride, dilation, is_causal, "plot_neighborhood_panel").query
               for q in queries]
    rows, cols = cfg.rows_cols
    if ncols is None:
        if len(cfg.shape) == 1:  # strips: two side by side while cells stay wide enough to read
            ncols = 2 if cols <= 24 and len(queries) > 2 and not show_rpb else 1
        else:
            ncols = min(len(queries), 4 if cols <= 2 * rows else 2)
    nrows = -(-len(queries) // ncols)
    with style_context(fontsize):
        panel_w = PAGE_WIDTH / ncols - 0.35  # less the row labels
        row_h = panel_w * rows / cols + (0.85 if len(cfg.shape) == 2 else 0.55)
        fig = new_figure(fig, figsize, (PAGE_WIDTH, min(9.0, nrows * row_h + 0.7)), "plot_neighborhood_panel")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for i, (ax, q) in enumerate(zip(axes.flat, queries, strict=False)):  # spare axes are hidden below
            plot_neighborhood(cfg.shape, q, *cfg.window.args(), ax=ax, show_rpb=show_rpb, legend=False)
            n = len(neighbors_of(q, cfg.shape, *cfg.window.args()))
            sep = ": " if len(cfg.shape) == 1 else "\n"
            ax.set_title(f"query {_query_text(q)}{sep}{_plural(n, 'neighbor')}", fontsize="small")
            if len(cfg.shape) == 1 and ax not in axes[-1]:
                ax.set_xlabel("")
            if i % ncols:  # one row label per row of panels
                ax.set_ylabel("")
        for ax in list(axes.flat)[len(queries):]:
            ax.set_visible(False)
        shown = {int(cfg.groups[np.ravel_multi_index(q, cfg.shape)]) for q in queries}
        _legend(fig, cfg, shown, True, True, show_rpb)
        fig.suptitle(suptitle if suptitle is not None else
                     f"{_describe(*cfg.window.args())} on {_grid_text(cfg.shape)}", fontsize="medium")
    fit_titles(fig)
    return fig


@docstring
def plot_mask(
    shape: Ints,
    kernel_size: Ints = 3, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
    query: Ints | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    *,
    figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure:
    """The same neighborhoods as a flattened ``N x N`` query-by-key mask (FlexAttention's view).

    Row ``i``, column ``j`` is filled iff query ``i`` attends to key ``j`` (cells numbered
    row-major). Filled cells take the key's dilation-group color, as in the grid view.
    On 2-D grids, thin lines separate grid rows.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        %(window_args)s
        query: if given, its row is shaded and its keys dotted.
        title: default: the mask's size and density.
        %(axes_args)s

    Returns:
        The figure drawn on.
    """
    cfg = _norm(shape, query, kernel_size, stride, dilation, is_causal, "plot_mask")
    mask = dense_mask(cfg.shape, *cfg.window.args())  # (N, N)
    N = mask.shape[0]
    groups = cfg.groups  # (N,) group of each key
    colors = np.stack([group_color(int(g)) for g in groups])  # (N, 3)
    rgb = np.where(mask[:, :, None], colors[None, :, :], 1.0)  # (N, N, 3)
    with style_context(fontsize):
        ax = new_axes(ax, figsize, (COLUMN_WIDTH, COLUMN_WIDTH + 0.3), "plot_mask")
        draw_cells(ax, rgb, edge="0.93", max_edge=0.3)
        if len(cfg.shape) == 2:
            for b in range(cfg.shape[1], N, cfg.shape[1]):  # grid-row boundaries
                ax.axhline(b - 0.5, color="0.75", linewidth=0.4)
                ax.axvline(b - 0.5, color="0.75", linewidth=0.4)
        ax.set_xlabel("key j (flat, row-major)", fontsize="small")
        ax.set_ylabel("query i (flat, row-major)", fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
        ax.tick_params(labelsize="x-small", length=2)
        if query is not None:
            _mark_mask_row(ax, cfg, mask)
        ax.set_title(title if title is not None else
                     f"Q x K mask, {N} x {N}: {int(mask.sum())} of {N * N} pairs "
                     f"({mask.sum() / N / N:.0%})", fontsize="medium")
    fit_titles(ax.figure)
    return ax.get_figure(root=True)


def _mark_mask_row(ax: Axes, cfg: _Config, mask: np.ndarray) -> None:
    """Shade the query's row of the mask, dot its keys, point at it from both sides."""
    N, i = mask.shape[0], cfg.flat
    ax.axhspan(i - 0.5, i + 0.5, color="0.5", alpha=0.25, linewidth=0, zorder=2)  # the query's row
    cols = np.nonzero(mask[i])[0]  # (n,) its keys
    ax.scatter(cols, np.full(len(cols), i), s=max(1.0, min(12.0, 2000.0 / N)), color="black",
               marker="o", linewidths=0, zorder=4)
    for x, marker in ((-0.5, ">"), (N - 0.5, "<")):
        ax.plot([x], [i], marker=marker, color="black", markersize=4, clip_on=False, zorder=4)


@docstring
def plot_grid_and_mask(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
    interactive: bool = False,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """The grid view and the Q x K mask of one configuration, linked by the query.

    The query's neighbors on the grid are exactly the filled cells of its (shaded) row
    in the mask, in the same colors.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        query: the query cell (default: the top-right corner).
        %(window_args)s
        interactive: with an interactive backend, clicking a grid cell moves the query in
            both views.
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    cfg = _norm(shape, query, kernel_size, stride, dilation, is_causal, "plot_grid_and_mask")
    rows, cols = cfg.rows_cols
    with style_context(fontsize):
        if len(cfg.shape) == 1:  # a strip over its mask: the columns line up with the tokens
            fig = new_figure(fig, figsize, (COLUMN_WIDTH + 0.5, COLUMN_WIDTH + 1.6), "plot_grid_and_mask")
            ax_grid, ax_mask = fig.subplots(2, 1, height_ratios=[1.0, 5.0])
        else:
            grid_w = 3.0 * cols / max(rows, cols)
            fig = new_figure(fig, figsize, (PAGE_WIDTH, 4.0), "plot_grid_and_mask")
            ax_grid, ax_mask = fig.subplots(1, 2, width_ratios=[grid_w, 3.6])

        def draw(query_cell: tuple[int, ...]) -> None:
            with style_context(fontsize):
                ax_grid.clear()
                ax_mask.clear()
                plot_neighborhood(cfg.shape, query_cell, *cfg.window.args(), ax=ax_grid, legend=False)
                plot_mask(cfg.shape, *cfg.window.args(), query=query_cell, ax=ax_mask)
                flat = int(np.ravel_multi_index(query_cell, cfg.shape))
                ax_grid.set_title(f"grid: query {_query_text(query_cell)}\n(flat index {flat})",
                                  fontsize="small")
                ax_mask.set_title(f"Q x K mask: row {flat} (dots)\nholds the same neighbors",
                                  fontsize="small")

        draw(cfg.query)
        fig.suptitle(f"{_describe(*cfg.window.args())} on {_grid_text(cfg.shape)}: "
                     "grid view and flattened mask", fontsize="medium")

        def on_click(event) -> None:  # the link: a click on the grid moves the query everywhere
            if event.inaxes is not ax_grid or event.xdata is None:
                return
            c, r = int(round(event.xdata)), int(round(event.ydata))
            cell = (c,) if len(cfg.shape) == 1 else (r, c)
            if all(0 <= x < n for x, n in zip(cell, cfg.shape, strict=True)):
                draw(cell)
                fig.canvas.draw_idle()

        if interactive:
            fig.canvas.mpl_connect("button_press_event", on_click)
        _legend(fig, cfg, {int(cfg.groups[cfg.flat])}, True, True, False)
    fit_titles(fig)
    return fig


@docstring
def plot_rpb(
    shape: Ints,
    query: Ints | None = None,
    kernel_size: Ints = 3, stride: Ints = 1, dilation: Ints = 1, is_causal: Bools = False,
    *,
    fig: FigureTarget = None, figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure | SubFigure:
    """Which relative-position-bias entries one query uses.

    Left: the grid, each neighbor labeled with its RPB index ``(k - 1) + (j - i) / d`` per
    axis. Right: the RPB table (``2k - 1`` entries per axis), the entries this query reads
    filled. A centered query reads the middle ``k x k`` block; at a border the window
    shifts inward, so the block it reads slides off-center. For the *learned* values of a
    model's table see :func:`dinat_ref.viz.rpb.plot_rpb_values`.

    Args:
        shape: grid shape, ``L`` or ``(H, W)``.
        query: the query cell (default: the top-right corner).
        %(window_args)s
        %(figure_args)s

    Returns:
        The figure (or subfigure) drawn on.
    """
    cfg = _norm(shape, query, kernel_size, stride, dilation, is_causal, "plot_rpb")
    idx = rpb_indices(cfg.shape, *cfg.window.args())[cfg.flat]  # (K, ndim)
    _, valid = neighbor_indices(cfg.shape, *cfg.window.args())
    used = idx[valid[cfg.flat]]  # (n_valid, ndim) entries read by this query
    table = tuple(2 * k - 1 for k in cfg.window.kernel_size)  # RPB shape per axis
    T_rows, T_cols = (1, table[0]) if len(cfg.shape) == 1 else table
    rows, cols = cfg.rows_cols
    with style_context(fontsize):
        fig = new_figure(fig, figsize, (PAGE_WIDTH, 3.6 if len(cfg.shape) == 2 else 2.0), "plot_rpb")
        ratios = [cols / max(rows, cols), T_cols / max(T_rows, T_cols)]
        ax_grid, ax_tab = fig.subplots(1, 2, width_ratios=ratios)
        plot_neighborhood(cfg.shape, cfg.query, *cfg.window.args(), ax=ax_grid, show_rpb=True, legend=False)
        ax_grid.set_title(f"neighbors of query {_query_text(cfg.query)},\nlabeled by RPB index",
                          fontsize="small")
        q_group = int(cfg.groups[cfg.flat])
        cells = {(0, int(u[0])) if len(cfg.shape) == 1 else (int(u[0]), int(u[1])) for u in used}
        img = np.ones((T_rows, T_cols, 3))
        for r, c in cells:
            img[r, c] = group_color(q_group)  # the query's group color, as its neighbors on the grid
        draw_cells(ax_tab, img, edge="0.75", max_edge=0.6)
        size = float(min(plt.rcParams["font.size"] * 0.7, cell_points(ax_tab, T_rows, T_cols) * 0.3))
        for r in range(T_rows):
            for c in range(T_cols):
                label = str(c) if len(cfg.shape) == 1 else f"{r},{c}"
                ax_tab.text(c, r, label, ha="center", va="center", fontsize=size,
                            color=_text_color(group_color(q_group)) if (r, c) in cells else "0.45")
        cr, cc = cfg.cell([k - 1 for k in cfg.window.kernel_size])  # the entry of offset 0 (the query)
        ax_tab.add_patch(Rectangle((cc - 0.5, cr - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0,
                                   zorder=3))
        ax_tab.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax_tab.set_xlabel("RPB entry, axis 1" if len(cfg.shape) == 2 else "RPB entry", fontsize="small")
        if len(cfg.shape) == 2:
            ax_tab.set_ylabel("RPB entry, axis 0", fontsize="small")
        ax_tab.set_title(f"RPB table ({'x'.join(map(str, table))}): {len(cells)} entries read;\n"
                         f"outlined: offset 0 (the query itself)", fontsize="small")
        fig.suptitle(f"{_describe(*cfg.window.args())}: bias = rpb[(k-1) + (j-i)/d]", fontsize="medium")
    fit_titles(fig)
    return fig
