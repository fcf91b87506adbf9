"""The matplotlib visualizers render, and what they draw is what the rule says.

Content checks read the drawn image and patches back and compare them with
``dense_mask`` (built from window bounds, independently of ``neighbors_of``) and
with the RPB formula written out here.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backend_bases import MouseEvent  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from dinat_ref.commands import figures as figures_mod  # noqa: E402
from dinat_ref.neighborhood import dense_mask  # noqa: E402
from dinat_ref.viz.rf import (  # noqa: E402
    plot_preset_rf,
    plot_preset_table,
    plot_rf_2d,
    plot_rf_growth,
    plot_rf_per_query,
)
from dinat_ref.viz.windows import (  # noqa: E402
    group_color,
    plot_grid_and_mask,
    plot_mask,
    plot_neighborhood,
    plot_neighborhood_panel,
    plot_rpb,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# shape, query, kernel_size, stride, dilation, is_causal
CONFIGS = [
    ((9, 12), (0, 11), 3, 1, 2, False),  # DiNA corner, non-square
    ((9, 12), (4, 6), 5, 1, 1, False),  # NA middle
    ((7, 10), (6, 0), (3, 4), 1, (2, 2), False),  # even kernel, L not divisible by d
    ((10, 13), (4, 5), (3, 5), (2, 3), 1, False),  # strided
    ((8, 8), (5, 2), 3, 1, 1, True),  # causal 2-D
    ((8, 9), (7, 8), 4, 1, 1, (True, False)),  # causal on one axis
    (17, 16, 3, 1, 3, False),  # 1-D, 17 not divisible by 3, last token
    (14, 0, 4, 1, 1, True),  # 1-D causal, first token: one neighbor
    (20, 9, 5, 2, 2, False),  # 1-D strided DiNA
]


def _expected(shape, query, k, s, d, c):
    shape = (shape,) if np.isscalar(shape) else shape
    query = (query,) if np.isscalar(query) else query
    row = dense_mask(shape, k, s, d, c)[np.ravel_multi_index(query, shape)]  # (N,)
    return {tuple(int(x) for x in np.unravel_index(j, shape)) for j in np.nonzero(row)[0]}, shape, query


def _cells(ax):
    """The (rows, cols, 3) colors of the drawn grid: a vector mesh (small grids) or an image."""
    from matplotlib.collections import QuadMesh

    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    art = meshes[0] if meshes else ax.images[0]
    return np.asarray(art.get_array())[..., :3]


def _full_color_cells(ax, shape):
    """Cells drawn in a full palette color (neighbors), read back from the drawing."""
    img = _cells(ax)  # (H, W, 3)
    palette = np.stack([group_color(g) for g in range(8)])
    full = (np.abs(img[:, :, None, :] - palette[None, None]).max(axis=-1) < 1e-6).any(axis=-1)  # (H, W)
    cells = {tuple(int(x) for x in rc) for rc in np.argwhere(full)}
    return cells if len(shape) == 2 else {(c,) for r, c in cells}


@pytest.mark.parametrize("shape,query,k,s,d,c", CONFIGS)
def test_grid_view_draws_exactly_the_neighbors(shape, query, k, s, d, c):
    expected, shape_t, query_t = _expected(shape, query, k, s, d, c)
    fig = plot_neighborhood(shape, query, k, s, d, c)
    ax = fig.axes[0]
    assert _full_color_cells(ax, shape_t) == expected
    assert f"{len(expected)} neighbor" in ax.get_title()
    assert ax.get_xlabel() and ax.get_title() and fig.legends  # labelled, with a legend

    # The dashed window spans the first to the last neighbor on each axis.
    window = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_linestyle() != "solid"]
    assert len(window) == 1
    lo = np.min(list(expected), axis=0)
    hi = np.max(list(expected), axis=0)
    (r0, c0), (r1, c1) = ((0, lo[0]), (0, hi[0])) if len(shape_t) == 1 else (lo, hi)
    x, y = window[0].get_xy()
    drawn = (x, y, window[0].get_width(), window[0].get_height())
    assert drawn == (c0 - 0.5, r0 - 0.5, c1 - c0 + 1, r1 - r0 + 1)


@pytest.mark.parametrize("shape,query,k,s,d,c", CONFIGS)
def test_rpb_labels_follow_the_formula(shape, query, k, s, d, c):
    expected, shape_t, query_t = _expected(shape, query, k, s, d, c)
    fig = plot_neighborhood(shape, query, k, s, d, c, show_rpb=True)
    ks = (k,) * len(shape_t) if np.isscalar(k) else k
    ds = (d,) * len(shape_t) if np.isscalar(d) else d
    labels = {}
    for t in fig.axes[0].texts:
        if t.get_text() == "Q":
            continue
        x, y = t.get_position()
        cell = (int(round(x)),) if len(shape_t) == 1 else (int(round(y)), int(round(x)))
        labels[cell] = t.get_text()
    assert set(labels) == expected
    for cell, text in labels.items():
        # (k - 1) + (j - i) / d per axis, written out from the coordinates.
        per_axis = zip(ks, ds, cell, query_t, strict=True)
        want = ",".join(str((kk - 1) + (j - i) // dd) for kk, dd, j, i in per_axis)
        assert text == want


@pytest.mark.parametrize("shape,query,k,s,d,c", CONFIGS[:7])
def test_mask_view_matches_dense_mask(shape, query, k, s, d, c):
    fig = plot_mask(shape, k, s, d, c, query=query)
    ax = fig.axes[0]
    img = _cells(ax)
    drawn = ~np.all(img == 1.0, axis=-1)  # (N, N) non-white cells
    np.testing.assert_array_equal(drawn, dense_mask(shape, k, s, d, c))
    expected, _, _ = _expected(shape, query, k, s, d, c)
    dots = [c for c in ax.collections if isinstance(c, PathCollection)][0].get_offsets()
    assert len(dots) == len(expected)  # one dot per neighbor in the query's row


def test_grid_and_mask_are_linked_and_clickable():
    fig = plot_grid_and_mask((7, 9), (0, 8), kernel_size=3, dilation=2, interactive=True)
    ax_grid, ax_mask = fig.axes[:2]
    assert "(0, 8)" in ax_grid.get_title() and "row 8" in ax_mask.get_title()
    fig.canvas.draw()
    x, y = ax_grid.transData.transform((3, 5))  # click cell (row 5, col 3)
    fig.canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", fig.canvas, x, y, 1))
    ax_grid, ax_mask = fig.axes[:2]
    flat = 5 * 9 + 3
    assert "(5, 3)" in ax_grid.get_title() and f"row {flat}" in ax_mask.get_title()
    expected, _, _ = _expected((7, 9), (5, 3), 3, 1, 2, False)
    assert _full_color_cells(ax_grid, (7, 9)) == expected


@pytest.mark.parametrize(
    "shape,queries", [((9, 12), None), (17, [0, 8, 16]), ((6, 7), [(0, 0), (5, 6), (2, 3)])]
)
def test_panel_one_axes_per_query(shape, queries):
    fig = plot_neighborhood_panel(shape, queries, kernel_size=3, dilation=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == (4 if queries is None else len(queries))
    assert all("neighbors" in ax.get_title() for ax in visible)


def test_rpb_table_marks_the_entries_read():
    fig = plot_rpb((9, 12), (0, 11), kernel_size=3, dilation=2)
    ax_tab = fig.axes[1]
    img = _cells(ax_tab)
    used = ~np.all(img == 1.0, axis=-1)  # (5, 5)
    # Corner (0, 11) with k=3, d=2: rows 0, 2, 4 (offsets 0..2 -> 2..4), cols 7, 9, 11 (-2..0 -> 0..2).
    want = np.zeros((5, 5), dtype=bool)
    want[2:5, 0:3] = True
    np.testing.assert_array_equal(used, want)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="query"):
        plot_neighborhood((5, 5), (5, 0), 3)
    with pytest.raises(ValueError, match="axes"):
        plot_neighborhood((4, 4, 4), (0, 0, 0), 2)
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        plot_mask(10, 3, dilation=4)


def test_receptive_field_figures():
    fig = plot_rf_growth()
    # The last row of each panel: 19 tokens for three NA layers, all 56 for NA-DiNA-NA.
    counts = []
    for ax in fig.axes:
        last = _cells(ax)[-1]  # (56, 3)
        off = np.array(matplotlib.colors.to_rgb("#EEEEEE"))  # the "not in the field" color
        counts.append(int((np.abs(last - off).max(axis=-1) > 1e-6).sum()))
    assert counts == [19, 56]
    fig = plot_rf_2d((14, 14), 3, {"NA": (1, 1), "DiNA": (1, 3)})
    sizes = [int(t.split(": ")[-1].split()[0]) for t in (ax.get_title() for ax in fig.axes)]
    assert sizes == [3 * 3, 5 * 5, 3 * 3, 9 * 9]  # (1 + 2 sum d)^2 away from borders
    for f in (plot_rf_per_query(30, 3, {"a": (1, 2), "b": (1, 1, 1)}), plot_preset_rf(["mini"], 128),
              plot_preset_table(["mini", "large-384"])):
        assert f.axes and all(ax.get_title() or not ax.axison for ax in f.axes)


MY_FIGURES = [  # the figures that need only matplotlib (rpb_values loads the digits checkpoint)
    n for n in figures_mod.FIGURES if n.startswith(("neighborhood_", "rf_", "grid_and_mask", "rpb_corner"))
]


def test_figures_command_is_deterministic(tmp_path):
    paths = figures_mod.generate(tmp_path / "a", MY_FIGURES, verbose=False)
    assert [p.name for p in paths] == [f"{n}.png" for n in MY_FIGURES]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 400_000
    again = figures_mod.generate(tmp_path / "b", MY_FIGURES[:3], verbose=False)
    for p, q in zip(paths, again, strict=False):  # the first three
        assert p.read_bytes() == q.read_bytes()


def test_every_registered_figure_resolves():
    for name, maker in figures_mod.FIGURES.items():
        assert callable(figures_mod._resolve(maker)), name


def test_figures_cli_is_light_and_lists():
    code = ("import sys, dinat_ref.cli as c; c.build_parser(); "
            "assert 'matplotlib' not in sys.modules and 'torch' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "dinat_ref.cli", "figures", "--list"], check=True,
                         capture_output=True, text=True).stdout
    assert all(n in out for n in MY_FIGURES)
    cmd = [sys.executable, "-m", "dinat_ref.cli", "figures", "--only", "nope", "--out", "/nonexistent"]
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 2 and "nope" in bad.stdout


def test_a_figure_whose_optional_dependency_is_missing_is_skipped_not_fatal(tmp_path, monkeypatch, capsys):
    import sys

    from dinat_ref.commands.figures import generate

    for mod in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # importing it now fails
    paths = generate(tmp_path, ["attention_digits", "rpb_corner"])
    out = capsys.readouterr().out
    assert [p.name for p in paths] == ["rpb_corner.png"]
    assert "skipped attention_digits" in out and "sklearn" in out


def test_labels_say_what_is_drawn():
    # A dilated causal window is causal DiNA, not "causal NA".
    fig = plot_neighborhood_panel(15, [0, 14], kernel_size=3, dilation=2, is_causal=True)
    assert fig._suptitle.get_text().startswith("causal DiNA, k=3, d=2")
    # The legend names only the dilation groups whose neighbors are drawn.
    fig = plot_neighborhood((9, 12), (0, 11), kernel_size=3, dilation=2)
    groups = [t.get_text() for t in fig.legends[0].get_texts() if "group" in t.get_text()]
    assert groups == ["neighbor (group 1)"]  # (0, 11): row group 0, column group 1 -> group 1 of 4
    # The paper's stack is NA-DiNA-NA, and it says so.
    titles = [ax.get_title(loc="left") for ax in plot_rf_growth().axes]
    assert titles[1].startswith("NA-DiNA-NA [1, 8, 1]")


def test_receptive_field_plots_show_padding_causal_and_stride():
    # 28 tokens, k=7, d=8: k*d = 56 > 28, so DiNAT pads the axis for that layer.
    fig = plot_rf_growth(28, 7, {"x": (1, 8)})
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows == ["query", "layer 0 (d=1)", "layer 1 (d=8, padded to 56)"]
    # Causal, k=3, two layers: query 10 sees 10-2-2 .. 10, five tokens (worked out by hand).
    fig = plot_rf_growth(20, 3, {"causal": (1, 1)}, query=10, is_causal=True)
    last = _cells(fig.axes[0])[-1]  # (20, 3)
    lit = np.nonzero(np.abs(last - np.array(matplotlib.colors.to_rgb("#EEEEEE"))).max(-1) > 1e-6)[0]
    assert list(lit) == [6, 7, 8, 9, 10]
    assert "causal" in fig.axes[0].get_title(loc="left")
    # Stride 2, k=3: queries 2i and 2i+1 share the window of leader 2i+1 (as the rule says).
    fig = plot_rf_growth(12, 3, {"strided": (1,)}, query=4, stride=2)
    lit = np.nonzero(np.abs(_cells(fig.axes[0])[-1] - np.array(matplotlib.colors.to_rgb("#EEEEEE"))).max(-1)
                     > 1e-6)[0]
    assert list(lit) == [4, 5, 6]
    fig = plot_rf_2d((14, 14), 3, {"DiNA": (1, 8)})
    assert "padded to 24" in fig.axes[1].get_title()


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    figures_mod.save_figure(plot_mask(5, 3), tmp_path, "m")
    before = (tmp_path / "m.png").read_bytes()
    fig = plot_mask(6, 3)

    def broken(f, **kw):
        f.write(b"\x89PNG half a file")
        raise OSError("disk full")

    fig.savefig = broken
    with pytest.raises(OSError, match="disk full"):
        figures_mod.save_figure(fig, tmp_path, "m")
    assert (tmp_path / "m.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.png"]  # no temporary file left behind
