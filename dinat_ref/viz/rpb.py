"""The learned relative positional bias of a layer, as the table it is.

Each DiNAT layer holds ``rpb`` of shape ``(heads, 2k - 1, 2k - 1)``: the bias added to the
logit of key ``j`` for query ``i`` is ``rpb[head, (k - 1) + (j0 - i0) / d, (k - 1) + (j1 - i1) / d]``.
:func:`plot_rpb_values` draws one head's table as a heatmap and outlines the ``k x k``
entries one query reads (from :func:`dinat_ref.neighborhood.rpb_indices`): the middle
block for a query away from the borders, an off-centre block where the window shifted inward.
The index pattern without values is :func:`dinat_ref.viz.windows.plot_rpb`.

Stages, layers and heads are numbered from 0, as in the state-dict name
``encoder.levels.{stage}.layers.{layer}.attention.self.rpb``.
"""

from __future__ import annotations

import re
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from dinat_ref.checks import Ints
from dinat_ref.neighborhood import neighbor_indices, rpb_indices
from dinat_ref.viz.style import (
    COLUMN_WIDTH,
    docstring,
    draw_cells,
    fit_titles,
    new_axes,
    resolve_cmap,
    style_context,
)

__all__ = ["rpb_table", "plot_rpb_values"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor or parameter
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def rpb_table(model_or_tensor: Any, stage: int = 0, layer: int = 0) -> tuple[np.ndarray, int | None]:
    """One layer's RPB table ``(heads, 2k-1, 2k-1)`` and its dilation (None for a bare tensor).

    Args:
        model_or_tensor: a DiNAT model (torch or NumPy; anything with ``state_dict()``) or the
            table itself, ``(heads, 2k-1, 2k-1)`` or one head's ``(2k-1, 2k-1)``.
        stage: the stage, from 0 (models only).
        layer: the layer in its stage, from 0 (models only).

    Returns:
        (heads, 2k-1, 2k-1) float64 array, and the layer's dilation when a model was given.

    Raises:
        ValueError: the model has no such layer, or the tensor is not a square table of odd side.
    """
    where = "rpb_table"
    if hasattr(model_or_tensor, "state_dict"):
        name = rf"encoder\.levels\.{int(stage)}\.layers\.{int(layer)}\.attention\.self\.rpb"
        pattern = re.compile(rf"(^|\.){name}$")
        state = model_or_tensor.state_dict()
        keys = [k for k in state if pattern.search(k)]
        if not keys:
            depths = list(getattr(getattr(model_or_tensor, "config", None), "depths", []))
            raise ValueError(f"{where}: the model has no layer (stage={stage}, layer={layer}); "
                             f"depths={depths}, stages and layers count from 0.")
        table = _to_numpy(state[keys[0]])
        dilation = int(model_or_tensor.config.dilations[stage][layer]) if hasattr(model_or_tensor, "config") \
            else None
    else:
        table, dilation = _to_numpy(model_or_tensor), None
    table = table[None] if table.ndim == 2 else table
    if table.ndim != 3 or table.shape[1] != table.shape[2] or table.shape[1] % 2 == 0:
        raise ValueError(f"{where}: the table has shape {table.shape}; expected (heads, 2k-1, 2k-1) or "
                         f"(2k-1, 2k-1), an odd square.")
    return table, dilation


@docstring(scale="symmetric around 0, to the largest absolute value")
def plot_rpb_values(
    model_or_tensor: Any,
    stage: int = 0,
    layer: int = 0,
    head: int = 0,
    *,
    query: Ints | None = None,
    shape: Ints | None = None,
    dilation: int | None = None,
    annotate: bool | None = None,
    ax: Axes | None = None,
    cmap: Any = None, norm: Normalize | None = None, vmin: float | None = None, vmax: float | None = None,
    figsize: tuple[float, float] | None = None, fontsize: float | None = None,
) -> Figure:
    """One head's learned RPB table as a heatmap, the entries one query reads outlined.

    Args:
        model_or_tensor: a DiNAT model or an RPB tensor (see :func:`rpb_table`).
        stage: the stage, from 0 (models only).
        layer: the layer in its stage, from 0 (models only).
        head: the head, from 0.
        query: the query whose entries are outlined (default: the top-right corner of
            ``shape``, where the window has shifted inward).
        shape: the grid the query lives on (default: ``k * d`` per axis, the smallest grid
            the layer runs on).
        dilation: the layer's dilation (default: the model's; 1 for a bare tensor).
        annotate: write each value in its cell (default: when the table is at most 13 wide).
        %(colour_args)s
        %(axes_args)s

    Returns:
        The figure drawn on.
    """
    where = "plot_rpb_values"
    table, model_dilation = rpb_table(model_or_tensor, stage, layer)
    heads, side = table.shape[0], table.shape[1]
    if not 0 <= int(head) < heads:
        raise ValueError(f"{where}: head={head} but the table has heads 0..{heads - 1}.")
    k = (side + 1) // 2
    d = int(dilation if dilation is not None else (model_dilation or 1))
    shape = (k * d, k * d) if shape is None else tuple(int(n) for n in np.atleast_1d(shape))
    query = (0, shape[1] - 1) if query is None else tuple(int(c) for c in np.atleast_1d(query))
    if len(shape) != 2 or len(query) != 2:
        raise ValueError(f"{where}: shape={shape} and query={query} must be 2-D, as the table.")
    flat = int(np.ravel_multi_index(query, shape))
    read = rpb_indices(shape, k, 1, d)[flat][neighbor_indices(shape, k, 1, d)[1][flat]]  # (k*k, 2)
    values = table[int(head)]  # (2k-1, 2k-1)
    with style_context(fontsize):
        ax = new_axes(ax, figsize, (COLUMN_WIDTH, COLUMN_WIDTH - 0.1), where)
        if norm is None:
            top = float(np.abs(values).max()) or 1.0
            norm = Normalize(-top if vmin is None else vmin, top if vmax is None else vmax)
        cmap = resolve_cmap(cmap)
        draw_cells(ax, cmap(norm(values))[..., :3], edge="white", max_edge=0.4)
        bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.8, aspect=25)
        bar.set_label("bias", fontsize="small")
        bar.ax.tick_params(labelsize="x-small")
        for r, c in read:
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.4,
                                   zorder=3))
        ax.add_patch(Rectangle((k - 1.5, k - 1.5), 1, 1, fill=False, edgecolor="white", linewidth=0.8,
                               linestyle=(0, (2, 1)), zorder=4))
        if annotate if annotate is not None else side <= 13:
            size = min(float(mpl.rcParams["font.size"]) * 0.6, 5.0)
            for (r, c), v in np.ndenumerate(values):
                rgb = np.asarray(cmap(norm(v)))[:3]
                text = f"{v:.1f}".replace("-0.0", "0.0")
                ax.text(c, r, text, ha="center", va="center", fontsize=size, zorder=5,
                        color="black" if rgb @ np.array([0.2126, 0.7152, 0.0722]) > 0.45 else "white")
        ticks = np.arange(side)
        ax.set_xticks(ticks, [str(t - (k - 1)) for t in ticks], fontsize="x-small")
        ax.set_yticks(ticks, [str(t - (k - 1)) for t in ticks], fontsize="x-small")
        ax.tick_params(length=2)
        ax.set_xlabel("(j - i) / d along columns", fontsize="small")
        ax.set_ylabel("(j - i) / d along rows", fontsize="small")
        name = "RPB" if model_dilation is None else f"stage {stage}, layer {layer} (d={d})"
        ax.set_title(f"{name}, head {head}\noutlined: read by query {query} of {shape[0]}x{shape[1]}",
                     fontsize="small")
    fit_titles(ax.figure)
    return ax.get_figure(root=True)
