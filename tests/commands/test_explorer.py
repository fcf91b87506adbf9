"""The explorer page (``dinat-ref explore``) in a real headless browser.

The page carries a JavaScript port of the rule; these tests hold it to the Python rule of
:mod:`dinat_ref.neighborhood`: every 1-D configuration up to 24 tokens (every query), a
seeded random sweep of 2-D and 3-D configurations, the receptive fields of layer stacks, and
the same argument errors. Then they click and hover like a reader and check what the page
draws (its exposed state and the pixels of the grid), take a screenshot, and fail on any
console error or network request.

Browser: Chromium driven by Playwright for Python. The system Chromium (``/usr/bin/chromium``,
or the path in ``DINAT_REF_CHROMIUM``) is used when present, else Playwright's own; the tests
skip, saying why, only when neither can be started.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from browser import watch_problems

from dinat_ref.cli import main
from dinat_ref.commands.explore import build_page, write_page
from dinat_ref.neighborhood import dense_mask, neighbor_indices, neighbors_of, rpb_indices
from dinat_ref.receptive_field import receptive_field

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAX_1D_LENGTH = 24


# ---------------------------------------------------------------------------------------
# The page itself, without a browser
# ---------------------------------------------------------------------------------------

def test_page_is_self_contained():
    page = build_page()
    assert page.lstrip().lower().startswith("<!doctype html>")
    for needle in ("http://", "https://", "<link", " src=", "@import", "/*__"):
        assert needle not in page, f"the page must not load anything from elsewhere, found {needle!r}"
    assert "window.dinat" in page and "function axisWindow" in page


def test_cli_writes_the_page(tmp_path, capsys):
    out = tmp_path / "explorer.html"
    assert main(["explore", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == build_page()
    assert str(out) in capsys.readouterr().out


def test_cli_refuses_a_missing_folder(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "explorer.html"
    assert main(["explore", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "out=" in err
    assert not out.parent.exists()
    with pytest.raises(ValueError, match="is a folder"):
        write_page(tmp_path)


# ---------------------------------------------------------------------------------------
# A browser
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    return write_page(tmp_path_factory.mktemp("explorer") / "explorer.html")


@pytest.fixture
def page(browser, page_file):
    """A fresh page from file://, failing the test on any console error, page error or request."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    problems = watch_problems(pg)
    pg.goto(page_file.as_uri())
    pg.wait_for_function("window.dinat && window.dinat.state")
    yield pg
    context.close()
    assert not problems, "the page reported problems:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# The port of the rule against the Python rule
# ---------------------------------------------------------------------------------------

def all_1d_configs(max_length: int = MAX_1D_LENGTH) -> list[tuple[int, int, int, int, bool]]:
    """Every valid (L, k, s, d, causal): k >= 2, k * d <= L, 1 <= s <= k."""
    return [(L, k, s, d, c)
            for L in range(1, max_length + 1)
            for k in range(2, L + 1)
            for d in range(1, L // k + 1)
            for s in range(1, k + 1)
            for c in (False, True)]


# One JSON string per batch: Playwright's structured transfer of 141k small arrays is slow.
JS_ALL_QUERIES_1D = """configs => JSON.stringify(configs.map(([L, k, s, d, c]) => {
  const out = [];
  for (let q = 0; q < L; q++) out.push(window.dinat.neighbors([L], [k], [s], [d], [c], [q]));
  return out;
}))"""


def test_every_1d_configuration(page):
    configs = all_1d_configs()
    t0 = time.perf_counter()
    got = []
    for start in range(0, len(configs), 2000):  # a few batched calls, not one per query
        got += json.loads(page.evaluate(JS_ALL_QUERIES_1D, [list(c) for c in configs[start:start + 2000]]))
    js_s = time.perf_counter() - t0
    n_queries = 0
    for n, ((L, k, s, d, c), per_query) in enumerate(zip(configs, got, strict=True)):
        keys, valid = neighbor_indices(L, k, s, d, c)  # (L, k) every query at once
        assert len(per_query) == L
        for q in range(L):
            expected = sorted(keys[q][valid[q]].tolist())
            assert per_query[q] == expected, f"L={L} k={k} s={s} d={d} causal={c} query={q}"
        # and one query per configuration through neighbors_of, the coordinate-tuple form
        q = n % L
        assert per_query[q] == [j for (j,) in neighbors_of(q, L, k, s, d, c)], (L, k, s, d, c, q)
        n_queries += L
    assert len(configs) == 7654 and n_queries == 141460  # every configuration, every query
    print(f"\n1-D: {len(configs)} configurations, {n_queries} queries; browser time {js_s:.2f} s")


def random_config(rng: np.random.Generator, ndim: int, max_len: int):
    shape, ks, ss, ds, cs = [], [], [], [], []
    for _ in range(ndim):
        L = int(rng.integers(2, max_len + 1))
        k = int(rng.integers(2, L + 1))
        d = int(rng.integers(1, L // k + 1))
        s = int(rng.integers(1, k + 1))
        shape.append(L), ks.append(k), ds.append(d), ss.append(s), cs.append(bool(rng.random() < 0.3))
    return shape, ks, ss, ds, cs


@pytest.mark.parametrize(("ndim", "n_configs", "max_len"), [(2, 400, 20), (3, 200, 9)])
def test_random_nd_configurations(page, ndim, n_configs, max_len):
    rng = np.random.default_rng(ndim)
    cases = []
    for _ in range(n_configs):
        shape, ks, ss, ds, cs = random_config(rng, ndim, max_len)
        corners = [[0] * ndim, [L - 1 for L in shape]]
        randoms = [[int(rng.integers(0, L)) for L in shape] for _ in range(3)]
        cases += [(shape, ks, ss, ds, cs, q) for q in corners + randoms]
    got = page.evaluate("cases => cases.map(c => window.dinat.neighbors(...c))", cases)
    for (shape, ks, ss, ds, cs, q), flat in zip(cases, got, strict=True):
        expected = [int(np.ravel_multi_index(p, shape)) for p in neighbors_of(q, shape, ks, ss, ds, cs)]
        assert flat == expected, f"shape={shape} k={ks} s={ss} d={ds} causal={cs} query={q}"
    print(f"\n{ndim}-D: {n_configs} configurations, {len(cases)} queries")


def test_receptive_fields_of_layer_stacks(page):
    """Layer stacks, short axes padded as DiNAT does, against dinat_ref.receptive_field."""
    rng = np.random.default_rng(7)
    cases = [([56], [7], [[1], [8], [1]], [1], [False], [28]),  # figures/rf_growth.png: the whole axis
             ([56], [7], [[1], [1], [1]], [1], [False], [28]),  # three NA layers: 19 tokens
             ([10, 12], [5, 3], [[1, 1], [4, 6]], [1, 1], [False, True], [9, 0])]  # k * d > L: padded
    for _ in range(40):
        ndim = int(rng.integers(1, 3))
        shape = [int(rng.integers(4, 17)) for _ in range(ndim)]
        ks = [int(rng.integers(2, min(L, 7) + 1)) for L in shape]
        ss = [int(rng.integers(1, k + 1)) for k in ks]
        cs = [bool(rng.random() < 0.3) for _ in shape]
        dils = [[int(rng.integers(1, 5)) for _ in shape] for _ in range(int(rng.integers(1, 5)))]
        q = [int(rng.integers(0, L)) for L in shape]
        cases.append((shape, ks, dils, ss, cs, q))
    got = page.evaluate("cases => cases.map(c => window.dinat.receptiveField(...c))", cases)
    for (shape, ks, dils, ss, cs, q), flat in zip(cases, got, strict=True):
        rf = receptive_field(shape, ks, [tuple(d) for d in dils], ss, cs)  # (N, N)
        expected = np.flatnonzero(rf[np.ravel_multi_index(q, shape)]).tolist()
        assert flat == expected, f"shape={shape} k={ks} dilations={dils} s={ss} causal={cs} query={q}"
    assert len(got[0]) == 56 and len(got[1]) == 19


@pytest.mark.parametrize(("shape", "k", "s", "d", "match"), [
    ([10], [4], [1], [3], "kernelSize \\* dilation = 4 \\* 3 = 12"),
    ([10], [3], [4], [1], "stride=4 must satisfy 1 <= stride <= kernelSize=3"),
    ([10], [1], [1], [1], "kernelSize=1 is too small"),
    ([8, 8], [3, 3], [1, 1], [1, 0], "dilation=0 on axis 1 must be >= 1"),
])
def test_same_arguments_are_refused(page, shape, k, s, d, match):
    message = page.evaluate(
        """a => { try { window.dinat.neighbors(...a); return null; } catch (e) { return e.message; } }""",
        [shape, k, s, d, [False] * len(shape), [0] * len(shape)])
    assert message is not None and re.search(match, message), message
    with pytest.raises(ValueError):
        neighbors_of([0] * len(shape), shape, k, s, d)


# ---------------------------------------------------------------------------------------
# What the page draws
# ---------------------------------------------------------------------------------------

SAMPLE_CELLS = """() => {
  const canvas = document.getElementById("grid");
  const box = canvas.getBoundingClientRect();
  const dpr = canvas.width / box.width;
  const ctx = canvas.getContext("2d");
  const s = window.dinat.state;
  const shape = s.config.shape;
  const n = shape.length;
  const out = [];
  const rows = n === 1 ? 1 : shape[n - 2];
  for (let r = 0; r < rows; r++) for (let c = 0; c < shape[n - 1]; c++) {
    const coords = n === 1 ? [c] : n === 2 ? [r, c] : [s.viewSlice, r, c];
    const rect = window.dinat.cellRect(coords);
    const x = Math.floor((rect.x - box.left + 3) * dpr);
    const y = Math.floor((rect.y - box.top + 3) * dpr);
    const px = ctx.getImageData(x, y, 1, 1).data;
    out.push([coords, Array.from(px.slice(0, 3))]);
  }
  return out;
}"""


def _strong(rgb) -> bool:
    """A key is drawn in its group's full color; other cells are a light tint (near white)."""
    return float(np.linalg.norm(255 - np.asarray(rgb, dtype=float))) > 110


def _set_controls(page, ndim, shape, k, d, s, causal):
    page.select_option("#ndim", str(ndim))
    for a in range(ndim):
        for key, value in (("shape", shape), ("kernelSize", k), ("dilation", d), ("stride", s)):
            box = page.locator(f"#{key}-{a}")
            box.fill(str(value[a]))
            box.dispatch_event("change")
        if page.locator(f"#isCausal-{a}").is_checked() != causal[a]:
            page.locator(f"#isCausal-{a}").click()


def _click_cell(page, coords):
    rect = page.evaluate("c => window.dinat.cellRect(c)", coords)
    page.mouse.click(rect["x"] + rect["size"] / 2, rect["y"] + rect["size"] / 2)


def _check_drawn(page, shape, k, s, d, causal, query):
    state = page.evaluate("window.dinat.state")
    assert state["query"] == list(query)
    flat_q = int(np.ravel_multi_index(query, shape))
    expected = [int(np.ravel_multi_index(p, shape)) for p in neighbors_of(query, shape, k, s, d, causal)]
    assert state["neighbors"] == expected
    # the mask row: dense_mask is built from window bounds, independently of the neighbor list
    assert state["maskRow"] == np.flatnonzero(dense_mask(shape, k, s, d, causal)[flat_q]).tolist()
    # the RPB index of each key, as rpb_indices gives it for the query's valid slots
    keys, valid = neighbor_indices(shape, k, s, d, causal)
    rpb = rpb_indices(shape, k, s, d, causal)
    want = {int(j): rpb[flat_q, t].tolist() for t, j in enumerate(keys[flat_q]) if valid[flat_q, t]}
    assert {f: r for f, r in state["rpb"]} == want
    # the pixels: exactly the keys (other than the query) are drawn in full color
    drawn = {tuple(c) for c, rgb in page.evaluate(SAMPLE_CELLS) if _strong(rgb)}
    on_screen = {tuple(p) for p in neighbors_of(query, shape, k, s, d, causal)
                 if len(shape) < 3 or p[0] == state["viewSlice"]}
    assert drawn - {tuple(query)} == on_screen - {tuple(query)}
    return state


def test_click_and_hover_draw_the_neighborhood(page, tmp_path):
    shape, k, d, s, causal = [13, 17], [5, 3], [2, 3], [2, 1], [False, True]
    _set_controls(page, 2, shape, k, d, s, causal)
    assert page.evaluate("window.dinat.error") is None
    _click_cell(page, [12, 16])  # a corner: the window shifts inward
    _check_drawn(page, shape, k, s, d, causal, [12, 16])
    # pinned: hovering elsewhere changes nothing
    rect = page.evaluate("c => window.dinat.cellRect(c)", [3, 4])
    page.mouse.move(rect["x"] + 4, rect["y"] + 4)
    assert page.evaluate("window.dinat.state.query") == [12, 16]
    # unpin by clicking the query again, then hovering moves the query
    _click_cell(page, [12, 16])
    page.mouse.move(rect["x"] + 5, rect["y"] + 5)
    _check_drawn(page, shape, k, s, d, causal, [3, 4])
    # the keyboard: arrows move the query and pin it
    page.focus("#grid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    _check_drawn(page, shape, k, s, d, causal, [4, 5])
    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000


def test_1d_and_3d_views(page):
    _set_controls(page, 1, [23], [4], [3], [2], [False])
    _click_cell(page, [0])
    _check_drawn(page, [23], [4], [2], [3], [False], [0])
    shape, k, d, s, causal = [6, 7, 8], [3, 3, 4], [2, 1, 2], [1, 3, 1], [True, False, False]
    page.evaluate("cfg => window.dinat.setConfig(cfg)", {
        "ndim": 3, "shape": shape, "kernelSize": k, "dilation": d, "stride": s, "isCausal": causal,
        "viewSlice": 4})
    _click_cell(page, [4, 6, 0])  # on slice 4 of axis 0
    _check_drawn(page, shape, k, s, d, causal, [4, 6, 0])


def test_bad_settings_are_explained_not_thrown(page):
    page.fill("#dilations", "1, x")
    page.locator("#dilations").dispatch_event("change")
    assert "is not a dilation" in page.locator("#stack-error").inner_text()
    _set_controls(page, 1, [10], [4], [3], [1], [False])
    error = page.evaluate("window.dinat.error")
    assert "kernelSize * dilation = 4 * 3 = 12" in error
    assert page.locator("#error").is_visible()


def test_layer_stack_on_a_64x64_grid(page):
    """DiNAT's pattern on 64x64: the field after each layer; 30 hovers, each a full redraw."""
    page.evaluate("cfg => window.dinat.setConfig(cfg)", {
        "ndim": 2, "shape": [64, 64], "kernelSize": [7, 7], "dilation": [1, 1], "stride": [1, 1],
        "isCausal": [False, False], "dilations": "1, 8, 1", "query": [32, 32]})
    state = page.evaluate("window.dinat.state")
    expected = [np.flatnonzero(receptive_field([64, 64], 7, dils)[32 * 64 + 32]).tolist()
                for dils in ([1], [1, 8], [1, 8, 1])]
    assert state["receptiveField"] == expected
    rect = page.evaluate("c => window.dinat.cellRect(c)", [0, 0])
    t0 = time.perf_counter()
    for i in range(30):  # 30 different cells, each a full redraw
        page.mouse.move(rect["x"] + 3 + i * rect["size"], rect["y"] + 3 + i * rect["size"])
    per_move_ms = (time.perf_counter() - t0) / 30 * 1000
    assert page.evaluate("window.dinat.state.query") == [29, 29]
    # Timings on shared machines are noise, so the time is reported, not asserted.
    print(f"\n64x64, k=7, three layers: {per_move_ms:.1f} ms per hover (move, redraw, round trip)")
