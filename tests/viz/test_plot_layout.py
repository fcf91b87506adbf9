"""Every figure fits a printed page: nothing clipped, no two labels on top of each other.

Each plotting function is rendered at a single-column width (3.5 in, 7 pt type, as a
paper's figure) and at a full page width (7 in, matplotlib's default 10 pt), and
every piece of text that is drawn (titles, axis and tick labels, legends, colorbars,
table cells, labels inside cells) is measured: its box must lie inside the figure and
must not overlap another text's box. Cells must stay visible: a grid's borders never
cover more than a quarter of a cell.
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.figure import SubFigure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from dinat_ref.viz import rf  # noqa: E402
from dinat_ref.viz import windows as nb  # noqa: E402

WIDTHS = [(3.5, 7.0), (7.0, None)]  # (figure width in inches, font size; None = rcParams)


def _attention_maps(**kw):
    from dinat_ref.numpy import na2d_qk
    from dinat_ref.viz.attention_maps import LayerAttention, attention_to_grid, plot_attention_maps

    rng = np.random.default_rng(0)
    layers = []
    for stage, (side, dil) in enumerate([(16, 4), (8, 2), (4, 1)]):
        q = rng.standard_normal((1, side, side, 4, 8))
        logits = na2d_qk(q, q, 3, dilation=dil)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs = (probs / probs.sum(-1, keepdims=True))[0]
        cell = (30 // (4 * 2**stage), 40 // (4 * 2**stage))
        layers.append(LayerAttention(stage, 1, 3, dil, 4 * 2**stage, (30, 40), cell, (side, side),
                                     attention_to_grid(probs, cell, 3, dilation=dil)))
    return plot_attention_maps(rng.random((64, 64, 3)), layers, title="a title on\ntwo lines", **kw)


def _rpb_values(**kw):
    from dinat_ref.viz.rpb import plot_rpb_values

    return plot_rpb_values(np.random.default_rng(0).standard_normal((2, 13, 13)), head=1, dilation=2, **kw)


def _head_statistic(**kw):
    from dinat_ref.analysis import LayerStatistics
    from dinat_ref.viz.statistics import plot_head_statistic

    rng = np.random.default_rng(0)
    stats = [LayerStatistics(s, i, 7, d, 4 * 2**s, rng.random(2 * 2**s) * 30, rng.random(2 * 2**s),
                             rng.random(2 * 2**s)) for s, (i, d) in
             [(0, (0, 1)), (0, (1, 8)), (1, (0, 1)), (1, (1, 4)), (2, (0, 1)), (2, (1, 2))]]
    return plot_head_statistic(stats, "distance", **kw)


def _rollout(**kw):
    from dinat_ref.viz.statistics import plot_rollout

    rng = np.random.default_rng(0)
    return plot_rollout(rng.random((48, 48)), rng.random((12, 12)), 4, (20, 30), **kw)


FIGURES = {
    "neighborhood": lambda **kw: nb.plot_neighborhood((9, 12), (0, 11), 3, dilation=2, **kw),
    "neighborhood_rpb": lambda **kw: nb.plot_neighborhood((7, 9), (3, 8), 3, dilation=2, show_rpb=True, **kw),
    "neighborhood_1d": lambda **kw: nb.plot_neighborhood(17, 16, 3, dilation=3, show_rpb=True, **kw),
    "panel_na": lambda **kw: nb.plot_neighborhood_panel((9, 12), kernel_size=5, **kw),
    "panel_dina_1d": lambda **kw: nb.plot_neighborhood_panel(17, [0, 1, 8, 16], kernel_size=3, dilation=3,
                                                             show_rpb=True, **kw),
    "panel_causal": lambda **kw: nb.plot_neighborhood_panel(14, [0, 2, 7, 13], kernel_size=4, dilation=2,
                                                            is_causal=True, **kw),
    "panel_strided": lambda **kw: nb.plot_neighborhood_panel((10, 13), [(0, 0), (4, 5), (5, 3), (9, 12)],
                                                             kernel_size=(3, 5), stride=(2, 3), **kw),
    "mask": lambda **kw: nb.plot_mask((7, 9), 3, dilation=2, query=(0, 8), **kw),
    "grid_and_mask": lambda **kw: nb.plot_grid_and_mask((7, 9), (0, 8), 3, dilation=2, **kw),
    "rpb": lambda **kw: nb.plot_rpb((9, 12), (0, 11), 3, dilation=2, **kw),
    "rf_growth": lambda **kw: rf.plot_rf_growth(**kw),
    "rf_growth_causal": lambda **kw: rf.plot_rf_growth(30, 3, {"a": (1, 2), "b": (1, 4, 1)}, stride=2,
                                                       is_causal=True, **kw),
    "rf_per_query": lambda **kw: rf.plot_rf_per_query(**kw),
    "rf_2d": lambda **kw: rf.plot_rf_2d(**kw),
    "preset_rf": lambda **kw: rf.plot_preset_rf(["mini", "large-384"], **kw),
    "preset_table": lambda **kw: rf.plot_preset_table(["mini", "large-11x11-384"], **kw),
    "attention_maps": _attention_maps,
    "rpb_values": _rpb_values,
    "head_statistic": _head_statistic,
    "rollout": _rollout,
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawn_texts(fig, renderer) -> list[tuple[str, object]]:
    """(description, display-space box) of every non-empty text the figure draws."""
    out = []

    def add(t: Text, where: str) -> None:
        if t.get_visible() and t.get_text().strip() and t.get_alpha() != 0:
            out.append((f"{where}: {t.get_text()!r}", t.get_window_extent(renderer)))

    def walk(f) -> None:
        for t in f.texts:
            add(t, "figure text")
        for leg in f.legends:
            for t in leg.get_texts():
                add(t, "legend")
        for sub in f.subfigs:
            walk(sub)

    walk(fig)
    for ax in fig.get_axes():
        if not ax.get_visible():
            continue
        name = ax.get_label() or ax.get_title() or "axes"
        for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label):
            add(t, f"{name} title/label")
        for axis in (ax.xaxis, ax.yaxis):
            if not (ax.axison and axis.get_visible()):
                continue
            for tick in axis._update_ticks():  # the ticks that are drawn
                for t in (tick.label1, tick.label2):
                    add(t, f"{name} tick")
        for t in ax.texts:
            add(t, f"{name} text")
        if ax.get_legend() is not None:
            for t in ax.get_legend().get_texts():
                add(t, f"{name} legend")
        for table in ax.tables:
            for cell in table.get_celld().values():
                add(cell.get_text(), f"{name} table")
    return out


def _check_layout(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    texts = _drawn_texts(fig, renderer)
    assert texts, "no text at all"
    for what, box in texts:
        inside = (box.x0 >= page.x0 - 1 and box.y0 >= page.y0 - 1 and box.x1 <= page.x1 + 1
                  and box.y1 <= page.y1 + 1)
        assert inside, f"clipped: {what} at {box.bounds} outside the figure {page.bounds}"
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        overlap_w = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_h = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        assert overlap_w <= 1 or overlap_h <= 1, f"overlap: {a} and {b}"
    for ax in fig.get_axes():  # cell borders never hide the cells
        for mesh in (c for c in ax.collections if isinstance(c, QuadMesh) and c.get_array().ndim == 3):
            rows, cols = mesh.get_array().shape[:2]
            box = ax.get_window_extent(renderer)
            cell_pt = min(box.width / cols, box.height / rows) * 72 / fig.dpi
            assert float(np.max(mesh.get_linewidth())) <= 0.25 * cell_pt + 1e-9, ax.get_title()


@pytest.mark.parametrize("name", list(FIGURES))
@pytest.mark.parametrize("width,fontsize", WIDTHS, ids=["column", "page"])
def test_figure_fits_the_page(name, width, fontsize):
    default = FIGURES[name]()
    root = default.get_figure(root=True) if isinstance(default, SubFigure) else default
    height = float(root.get_figheight())
    plt.close("all")
    fig = FIGURES[name](figsize=(width, height), fontsize=fontsize)
    fig = fig.get_figure(root=True) if isinstance(fig, SubFigure) else fig
    assert tuple(fig.get_size_inches()) == pytest.approx((width, height))
    _check_layout(fig)


def test_defaults_are_page_sized():
    for name, make in FIGURES.items():
        fig = make()
        fig = fig.get_figure(root=True) if isinstance(fig, SubFigure) else fig
        w = fig.get_figwidth()
        assert w in (3.5, 7.0) or 3.4 <= w <= 7.0, (name, w)
        assert fig.get_figheight() <= 9.5, (name, fig.get_figheight())
        plt.close(fig)


def test_draws_into_a_given_axes_or_subplot_spec():
    fig = plt.figure(figsize=(7, 3), layout="constrained")
    gs = fig.add_gridspec(1, 3)
    ax = fig.add_subplot(gs[0, 0])
    assert nb.plot_neighborhood((5, 5), (0, 0), 3, ax=ax, legend=False) is fig
    sub = rf.plot_rf_growth(20, 3, {"NA": (1, 1)}, fig=gs[0, 1:])
    assert isinstance(sub, SubFigure) and sub.get_figure(root=True) is fig
    assert len(fig.axes) == 2
    with pytest.raises(TypeError, match="fig is a"):
        rf.plot_rf_growth(fig="nope")
    with pytest.raises(TypeError, match="ax is a"):
        nb.plot_neighborhood(5, ax=fig)


def test_font_size_follows_rcparams_and_the_argument():
    with plt.rc_context({"font.size": 6}):
        small = nb.plot_neighborhood((5, 5), (0, 0), 3).axes[0].title.get_fontsize()
    big = nb.plot_neighborhood((5, 5), (0, 0), 3, fontsize=14).axes[0].title.get_fontsize()
    assert small == pytest.approx(6 * 1.0) and big == pytest.approx(14 * 1.0)  # title: "medium"


def test_small_grids_are_vector_cells_in_pdf(tmp_path):
    fig = nb.plot_neighborhood((5, 6), (0, 0), 3)
    fig.savefig(tmp_path / "f.svg")
    svg = (tmp_path / "f.svg").read_text()
    assert "<image" not in svg  # no raster image: the 30 cells are paths
    assert svg.count("<path") >= 30
