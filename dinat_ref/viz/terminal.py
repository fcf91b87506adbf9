"""Neighborhoods drawn as text, for terminals and error messages (no matplotlib needed).

Each cell is three characters wide and shows its dilation group as a letter
(``a`` for group 0, ``b`` for group 1, ...; in N-D the per-axis groups are numbered
row-major). Neighbors of the query are bracketed ``[b]``, the query itself is
``(Q)`` when it attends to itself and ``<Q>`` when it does not (the rule always
includes the query; ``<Q>`` shows up when drawing what a kernel under test did).
Everything else is `` b `` (or `` . `` when groups are off).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

import numpy as np

from dinat_ref.checks import Bools, Ints, check_window_args
from dinat_ref.neighborhood import dilation_groups, neighbors_of

__all__ = ["render_cells", "render_neighborhood", "side_by_side"]

_LETTERS = string.ascii_lowercase + string.ascii_uppercase


def _group_char(g: int) -> str:
    return _LETTERS[g % len(_LETTERS)]


def render_cells(
    shape: Sequence[int],
    query: Sequence[int],
    neighbors: Iterable[Sequence[int]],
    groups: np.ndarray | None = None,
    color: bool = False,
) -> str:
    """Draw a 1D/2D/3D grid with one query and a set of neighbor cells marked.

    Args:
        shape: grid shape, 1 to 3 axes. 3D grids are drawn as one 2D slice per first index.
        query: the query's coordinates.
        neighbors: coordinates of the keys it attends to (any set, e.g. a kernel's observed one).
        groups: integer dilation group per cell (``shape``), or None to draw ``.``.
        color: add ANSI colors (neighbors green, query bold red).
    """
    shape = tuple(int(n) for n in shape)
    query = tuple(int(c) for c in query)
    nb = {tuple(int(c) for c in n) for n in neighbors}

    def cell(pos: tuple[int, ...]) -> str:
        ch = _group_char(int(groups[pos])) if groups is not None else "."
        if pos == query:
            text = "(Q)" if pos in nb else "<Q>"
            return f"\x1b[1;31m{text}\x1b[0m" if color else text
        if pos in nb:
            return f"\x1b[32m[{ch}]\x1b[0m" if color else f"[{ch}]"
        return f" {ch} "

    if len(shape) == 1:
        return "".join(cell((x,)) for x in range(shape[0]))
    if len(shape) == 2:
        return "\n".join("".join(cell((y, x)) for x in range(shape[1])) for y in range(shape[0]))
    if len(shape) == 3:
        slices = []
        for z in range(shape[0]):
            rows = ["".join(cell((z, y, x)) for x in range(shape[2])) for y in range(shape[1])]
            slices.append(f"[{z}, :, :]\n" + "\n".join(rows))
        return "\n\n".join(slices)
    raise ValueError(f"render_cells: shape={shape} has {len(shape)} axes; 1, 2 or 3 can be drawn.")


def render_neighborhood(
    shape: Ints,
    query: Ints,
    kernel_size: Ints,
    stride: Ints = 1,
    dilation: Ints = 1,
    is_causal: Bools = False,
    color: bool = False,
    legend: bool = True,
) -> str:
    """The grid with ``query`` and its neighbors (by the shared rule) marked, plus a legend."""
    shape, kernel_size, stride, dilation, is_causal = check_window_args(
        shape, kernel_size, stride, dilation, is_causal, where="render_neighborhood"
    )
    query = (query,) if np.isscalar(query) else tuple(query)
    nb = neighbors_of(query, shape, kernel_size, stride, dilation, is_causal)
    text = render_cells(shape, query, nb, dilation_groups(shape, dilation), color)
    if not legend:
        return text
    n_groups = int(np.prod(dilation))
    groups = ", ".join(_group_char(g) for g in range(min(n_groups, 8))) + (", ..." if n_groups > 8 else "")
    return (
        f"grid {'x'.join(map(str, shape))}, kernel_size={_fmt(kernel_size)}, stride={_fmt(stride)}, "
        f"dilation={_fmt(dilation)}, is_causal={_fmt(is_causal)}; query {query}\n"
        f"{text}\n"
        f"(Q) query   [x] neighbor in dilation group x   letters: dilation groups ({groups})\n"
        f"{len(nb)} neighbors"
    )


def _fmt(t: tuple) -> str:
    return str(t[0]) if len(set(t)) == 1 else str(t)


def side_by_side(*blocks: str, titles: Sequence[str] = (), gap: int = 4) -> str:
    """Place multi-line text blocks next to each other, each under its title."""
    cols = []
    for i, block in enumerate(blocks):
        lines = block.split("\n")
        if i < len(titles):
            lines = [titles[i], "-" * len(titles[i])] + lines
        cols.append(lines)
    widths = [max(len(_strip_ansi(line)) for line in c) for c in cols]
    height = max(len(c) for c in cols)
    out = []
    for r in range(height):
        parts = []
        for c, w in zip(cols, widths, strict=True):
            line = c[r] if r < len(c) else ""
            parts.append(line + " " * (w - len(_strip_ansi(line))))
        out.append((" " * gap).join(parts).rstrip())
    return "\n".join(out)


def _strip_ansi(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", s)
