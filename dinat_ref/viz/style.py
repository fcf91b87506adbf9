"""Shared plumbing of every figure: page sizes, where to draw, fonts, cells as vector patches.

Every plotting function of :mod:`dinat_ref.viz` follows matplotlib's conventions:

* one-panel functions take ``ax=`` (draw there) and return the ``Axes``' figure;
  multi-panel functions take ``fig=``: a ``Figure``, a ``SubFigure`` or a
  ``SubplotSpec`` (then the panels are drawn into a subfigure in that slot);
* ``figsize=`` sets the size of a new figure; the defaults are sized for a printed page:
  :data:`COLUMN_WIDTH` (one column, 3.5 in) for one panel, :data:`PAGE_WIDTH` (7 in) for
  panels side by side;
* ``fontsize=`` sets the base font size of everything the function writes (titles are
  ``"medium"``, labels ``"small"``, relative to it); without it, ``rcParams["font.size"]``
  applies, so ``plt.rc_context({"font.size": 8})`` works as usual;
* colour-mapped plots take ``cmap=`` (default ``rcParams["image.cmap"]``) and
  ``norm=`` or ``vmin=``/``vmax=``, shared by every panel they draw.

These shared arguments are described once, in :data:`ARG_DOCS`, and the :func:`docstring`
decorator writes them into each function's ``Args:`` (matplotlib's ``%(name)s`` docstring
interpolation), so ``help()`` and the API pages show the full list.

Grids of up to :data:`VECTOR_CELLS` cells are drawn with ``pcolormesh`` (each cell a vector
quad in PDF/SVG, editable in a vector editor); larger ones as an image.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.gridspec import SubplotSpec

__all__ = [
    "PAGE_WIDTH",
    "COLUMN_WIDTH",
    "VECTOR_CELLS",
    "FigureTarget",
    "ARG_DOCS",
    "docstring",
    "style_context",
    "new_axes",
    "new_figure",
    "resolve_cmap",
    "draw_cells",
    "cell_points",
    "wrap",
    "figure_width",
    "fit_titles",
    "DPI",
    "save_figure",
]

PAGE_WIDTH = 7.0  # inches: a full text width (two-column papers, A4/letter with margins)
COLUMN_WIDTH = 3.5  # inches: one column of a two-column paper
VECTOR_CELLS = 4096  # grids up to this many cells are vector quads, larger ones an image
DPI = 150  # figures are sized in inches for a page; 150 dpi reads well on screen and in print

FigureTarget = Figure | SubFigure | SubplotSpec | None

# The arguments many plotting functions share, described once. A docstring line that is only
# ``%(name)s`` becomes this text, indented as that line (continuation lines 4 deeper, as
# napoleon's ``Args:`` wants them).
_SIZES = (
    "figsize: (width, height) of that new figure in inches.\n"
    "fontsize: base font size in points (default ``rcParams[\"font.size\"]``)."
)
ARG_DOCS: dict[str, str] = {
    "window_args": (
        "kernel_size, stride, dilation, is_causal: the window, one value or one per axis, as in\n"
        "    :func:`dinat_ref.neighborhood.neighbor_indices`."
    ),
    "figure_args": (
        "fig: where to draw: a Figure, a SubFigure or a SubplotSpec (the panels go into a\n"
        "    subfigure in its slot); default: a new figure, 7 in wide.\n" + _SIZES
    ),
    "axes_args": "ax: the Axes to draw on (default: a new figure, one column, 3.5 in wide).\n" + _SIZES,
    "colour_args": (
        "cmap: colour map (default ``rcParams[\"image.cmap\"]``).\n"
        "norm: colour normalisation (default: %(scale)s).\n"
        "vmin: lower end of the default scale, where given (unused with ``norm``).\n"
        "vmax: upper end of the default scale, where given (unused with ``norm``)."
    ),
}
_LINE = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)  # a placeholder alone on its line
_INLINE = re.compile(r"%\((\w+)\)s")


def docstring(func: Callable | None = None, /, **values: str) -> Callable:
    """Fill the ``%(name)s`` placeholders of a function's docstring: ``@docstring`` above it.

    A placeholder alone on a line becomes the entry of :data:`ARG_DOCS` (or of ``values``),
    indented as that line; a placeholder inside a line becomes the value of ``values``
    (``@docstring(scale="symmetric around 0")`` fills the ``%(scale)s`` of ``colour_args``: the
    default colour scale differs per function).
    An unknown name raises at import, so a typo never reaches the rendered docs.
    """
    table = {**ARG_DOCS, **values}

    def lookup(name: str, where: str) -> str:
        if name not in table:
            raise ValueError(f"{where}: the docstring has %({name})s; known names: {sorted(table)}.")
        return table[name]

    def fill(f: Callable) -> Callable:
        if f.__doc__:  # None under python -OO
            doc = _LINE.sub(lambda m: "\n".join(m.group(1) + line for line in
                                                lookup(m.group(2), f.__name__).split("\n")), f.__doc__)
            f.__doc__ = _INLINE.sub(lambda m: lookup(m.group(1), f.__name__), doc)
        return f

    return fill if func is None else fill(func)


@contextmanager
def style_context(fontsize: float | None = None) -> Iterator[None]:
    """Use ``fontsize`` as ``font.size`` while a figure is built (no-op when None)."""
    if fontsize is None:
        yield
        return
    if not isinstance(fontsize, (int, float)) or isinstance(fontsize, bool) or not fontsize > 0:
        raise ValueError(f"fontsize={fontsize!r} must be a positive number of points.")
    with mpl.rc_context({"font.size": float(fontsize)}):
        yield


def _check_figsize(figsize: Any, where: str) -> tuple[float, float] | None:
    if figsize is None:
        return None
    try:
        w, h = (float(x) for x in figsize)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: figsize={figsize!r} must be (width, height) in inches.") from None
    if not (w > 0 and h > 0):
        raise ValueError(f"{where}: figsize={figsize!r} must be positive (width, height) in inches.")
    return w, h


def new_axes(ax: Axes | None, figsize: Any, default: tuple[float, float], where: str) -> Axes:
    """``ax`` itself, or one Axes on a new constrained-layout figure of ``figsize`` (else ``default``)."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"{where}: ax is a {type(ax).__name__}; pass a matplotlib Axes (or None).")
        return ax
    size = _check_figsize(figsize, where) or default
    return plt.figure(figsize=size, layout="constrained").add_subplot()


def new_figure(fig: FigureTarget, figsize: Any, default: tuple[float, float], where: str
               ) -> Figure | SubFigure:
    """Where a multi-panel function draws: ``fig``, a subfigure in a ``SubplotSpec``, or a new figure."""
    if isinstance(fig, SubplotSpec):
        return fig.get_gridspec().figure.add_subfigure(fig)
    if isinstance(fig, (Figure, SubFigure)):
        return fig
    if fig is not None:
        raise TypeError(f"{where}: fig is a {type(fig).__name__}; pass a Figure, a SubFigure, a "
                        f"SubplotSpec (e.g. gridspec[0, 1]) or None.")
    size = _check_figsize(figsize, where) or default
    return plt.figure(figsize=size, layout="constrained")


def resolve_cmap(cmap: Any = None) -> Any:
    """``cmap``, or ``rcParams["image.cmap"]`` when None."""
    return mpl.colormaps[mpl.rcParams["image.cmap"] if cmap is None else cmap] if (
        cmap is None or isinstance(cmap, str)) else cmap


def cell_points(ax: Axes, rows: int, cols: int) -> float:
    """Side of one grid cell in points, from the axes' current size (an estimate before layout)."""
    fig = ax.get_figure(root=True)
    bbox = ax.get_position(original=True).transformed(fig.transFigure)  # display pixels
    w, h = bbox.width / cols, bbox.height / rows
    return float(min(w, h) * 72.0 / fig.dpi)


def draw_cells(ax: Axes, rgb: np.ndarray, edge: str = "white", max_edge: float = 0.6, x0: float = -0.5,
               y0: float = -0.5, aspect: str | None = "equal") -> Any:
    """Draw ``rgb`` (rows, cols, 3) as cells of side 1 with the top-left corner at ``(x0, y0)``.

    Small grids become one ``pcolormesh``: vector quads with thin ``edge`` borders, never
    thicker than ``max_edge`` points nor a tenth of a cell, so small figures stay readable.
    Grids over :data:`VECTOR_CELLS` cells become an image without borders.
    """
    rows, cols = rgb.shape[:2]
    if rows * cols > VECTOR_CELLS:
        art = ax.imshow(rgb, interpolation="nearest", extent=(x0, x0 + cols, y0 + rows, y0),
                        aspect=aspect or "auto")
    else:
        width = min(max_edge, 0.1 * cell_points(ax, rows, cols))
        width = width if width >= 0.15 else 0.0  # thinner than a printer's hairline: no borders
        art = ax.pcolormesh(x0 + np.arange(cols + 1), y0 + np.arange(rows + 1), rgb,
                            edgecolors=edge if width else "none", linewidths=width, snap=True)
        if aspect:
            ax.set_aspect(aspect)
    ax.set_xlim(x0, x0 + cols)
    ax.set_ylim(y0 + rows, y0)
    return art


def wrap(text: str, width_in: float, size: str | float = "medium") -> str:
    """``text`` broken into lines that fit ``width_in`` inches at font size ``size``.

    A conservative estimate (an average glyph is about 0.6 em wide in DejaVu Sans), so a
    title never runs past its panel or the figure; existing line breaks are kept.
    """
    import textwrap

    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=size).get_size_in_points()
    chars = max(8, int(width_in * 72.0 / (0.6 * points)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def figure_width(fig: Figure | SubFigure) -> float:
    """Width in inches of a figure or of a subfigure's slot."""
    if isinstance(fig, SubFigure):
        root = fig.get_figure(root=True)
        return float(root.get_figwidth() * fig.bbox_relative.width)
    return float(fig.get_figwidth())


def fit_titles(fig: Figure | SubFigure) -> None:
    """Wrap every title of ``fig`` (suptitles, axes titles) to the width it has.

    Called at the end of each plotting function, so titles never run past a narrow
    panel or a column-wide figure.
    """
    for f in [fig, *fig.subfigs]:
        if getattr(f, "_suptitle", None) is not None:
            t = f._suptitle
            t.set_text(wrap(t.get_text(), 0.95 * figure_width(f), t.get_fontsize()))
    for ax in fig.get_axes():
        width = ax.get_position(original=True).width * figure_width(ax.figure)
        for t in (ax.title, ax._left_title, ax._right_title):
            if t.get_text():
                t.set_text(wrap(t.get_text(), 1.1 * width, t.get_fontsize()))


def save_figure(fig: Any, out_dir: str | Path, name: str) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` the deterministic way, close it, return the path.

    The PNG is written to a temporary file in ``out_dir`` and renamed into place
    (``os.replace``, atomic on one file system): an interrupted or failed save leaves the
    previous file as it was, never half a PNG.
    """
    out = Path(out_dir) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".png.tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.04,
                        metadata={"Software": None})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; a figure is an ordinary file
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out
