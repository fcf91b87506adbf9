"""Every bad input is refused up front with a message that names the argument and the value.

Covers the NumPy operators (``na*d``, ``na*d_qk``, ``na*d_av``, ``na*d_backward``), the
index helpers (``neighbor_indices`` and friends) and the ``dinat-ref neighborhood`` CLI.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import dinat_ref.numpy as rn
from dinat_ref import cli
from dinat_ref.neighborhood import dense_mask, neighbor_indices, neighbors_of, rpb_indices

SHAPES = {1: (12,), 2: (8, 9), 3: (6, 6, 7)}
HEADS, DIM = 2, 4


def _x(nd, dtype=np.float64, dim=DIM, shape=None):
    return np.zeros((1, *(shape or SHAPES[nd]), HEADS, dim), dtype=dtype)


def _call(op, nd, **window):
    """Run operator ``op`` ('fwd', 'qk', 'av', 'bwd') of dimension nd on valid tensors and ``window``."""
    q = _x(nd)
    window = {"kernel_size": 3, **window}
    if op == "fwd":
        return getattr(rn, f"na{nd}d")(q, q, q, **window)
    if op == "qk":
        return getattr(rn, f"na{nd}d_qk")(q, q, **window)
    ks = window["kernel_size"]
    K = int(np.prod(ks)) if not isinstance(ks, int) else ks**nd
    if op == "av":
        window.pop("rpb", None)
        window.pop("scale", None)
        return getattr(rn, f"na{nd}d_av")(_x(nd, dim=K), q, **window)
    lse = np.zeros(q.shape[:-1])
    return getattr(rn, f"na{nd}d_backward")(q, q, q, q, q, lse, **window)


OPS = ["fwd", "qk", "av", "bwd"]
DIMS = [1, 2, 3]


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment (matched literally)."""
    return pytest.raises(exc, match="".join(f"(?=.*{re.escape(f)})" for f in fragments))


# ----------------------------------------------------------------------------------------
# Window arguments, for every operator and dimension
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("window, fragments", [
    (dict(kernel_size=1), ("kernel_size=1", ">= 2")),
    (dict(dilation=0), ("dilation=0", ">= 1")),
    (dict(stride=4), ("stride=4", "kernel_size=3")),
    (dict(stride=0), ("stride=0", ">= 1")),
], ids=["kernel_size<2", "dilation<1", "stride>kernel", "stride<1"])
def test_window_value_out_of_range(op, nd, window, fragments):
    with _raises(ValueError, *fragments):
        _call(op, nd, **window)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("nd", DIMS)
def test_kernel_times_dilation_too_large(op, nd):
    # The first axis has 12 / 8 / 6 tokens; k=3, d=5 needs 15 and says so.
    L = SHAPES[nd][0]
    with _raises(ValueError, "3 * 5 = 15", f"{L} tokens", "smallest input that works has 15 tokens"):
        _call(op, nd, dilation=5)


def test_kernel_times_dilation_names_the_axis():
    # 8x9 with d=(1, 4), k=3: axis 1 needs 12 tokens.
    with _raises(ValueError, "3 * 4 = 12", "9 tokens on axis 1", "has 12 tokens on axis 1"):
        rn.na2d(_x(2), _x(2), _x(2), 3, dilation=(1, 4))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation", "is_causal"])
def test_wrong_tuple_length(op, nd, name):
    value = (True,) * (nd + 1) if name == "is_causal" else (2,) * (nd + 1)
    window = {name: value, "kernel_size": 3} if name != "kernel_size" else {name: value}
    with _raises(ValueError, f"{name}={value!r}", f"{nd + 1} entries", f"{nd} spatial axes"):
        _call(op, nd, **window)


@pytest.mark.parametrize(
    "name, value",
    [("kernel_size", 3.0), ("kernel_size", True), ("kernel_size", "3"), ("stride", 1.5),
     ("dilation", (1, None)), ("is_causal", 1), ("is_causal", "yes")],
)
def test_wrong_kind_of_value(name, value):
    window = {"kernel_size": 3, name: value}
    with _raises(TypeError, f"{name}={value!r}"):
        rn.na2d(_x(2), _x(2), _x(2), **window)


def test_numpy_integers_and_arrays_are_accepted():
    out = rn.na2d(_x(2), _x(2), _x(2), np.int64(3), stride=np.array([1, 2]), is_causal=np.bool_(False))
    assert out.shape == _x(2).shape


# ----------------------------------------------------------------------------------------
# Tensors: rank, shape, dtype, rpb
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("nd", DIMS)
def test_wrong_rank(nd):
    fwd = getattr(rn, f"na{nd}d")
    other = 1 + nd % 3  # some other dimension's tensors
    x = _x(other)
    with _raises(ValueError, "query has shape", f"{nd + 3}-dim inputs"):
        fwd(x, x, x, 2)
    with _raises(ValueError, "query has shape", f"{nd + 3}-dim inputs"):
        getattr(rn, f"na{nd}d_qk")(x, x, 2)
    with _raises(ValueError, "value has shape", f"{nd + 3}-dim inputs"):
        getattr(rn, f"na{nd}d_av")(x, x, 2)


@pytest.mark.parametrize("nd", DIMS)
def test_qkv_shape_mismatch(nd):
    fwd = getattr(rn, f"na{nd}d")
    q = _x(nd)
    bigger = tuple(n + 1 for n in SHAPES[nd])
    k = _x(nd, shape=bigger)
    with _raises(ValueError, "key has shape", str(k.shape), str(q.shape)):
        fwd(q, k, q, 3)
    with _raises(ValueError, "value has shape", str(k.shape)):
        fwd(q, q, k, 3)
    with _raises(ValueError, "key has shape", str(k.shape)):
        getattr(rn, f"na{nd}d_qk")(q, k, 3)
    with _raises(ValueError, "query head dim 4", "key head dim 8"):
        fwd(q, _x(nd, dim=8), q, 3)
    heads = np.zeros((1, *SHAPES[nd], HEADS + 1, DIM))
    with _raises(ValueError, "key has shape", str(heads.shape)):
        fwd(q, heads, q, 3)
    bwd = getattr(rn, f"na{nd}d_backward")
    with _raises(ValueError, "key has shape", str(k.shape)):
        bwd(q, q, k, q, q, np.zeros(q.shape[:-1]), 3)
    with _raises(ValueError, "value has shape", str(k.shape)):
        bwd(q, q, q, k, q, np.zeros(q.shape[:-1]), 3)


def test_value_may_have_its_own_head_dim():
    assert rn.na1d(_x(1), _x(1), _x(1, dim=6), 3).shape == _x(1, dim=6).shape


@pytest.mark.parametrize("nd", DIMS)
def test_dtype_mismatch(nd):
    fwd = getattr(rn, f"na{nd}d")
    q, k32 = _x(nd), _x(nd, np.float32)
    with _raises(ValueError, "key has dtype float32", "query has float64"):
        fwd(q, k32, q, 3)
    with _raises(ValueError, "value has dtype float32", "query has float64"):
        fwd(q, q, k32, 3)
    with _raises(ValueError, "key has dtype float32", "query has float64"):
        getattr(rn, f"na{nd}d_qk")(q, k32, 3)
    with _raises(ValueError, "key has dtype float32", "query has float64"):
        getattr(rn, f"na{nd}d_backward")(q, q, k32, q, q, q[..., 0], 3)
    with _raises(ValueError, "probs has dtype float32", "value has float64"):
        getattr(rn, f"na{nd}d_av")(_x(nd, np.float32, dim=3**nd), q, 3)


def test_integer_inputs_are_refused():
    qi = np.zeros((1, 12, 2, 4), dtype=np.int64)
    with _raises(TypeError, "query has dtype int64", "floating-point"):
        rn.na1d(qi, qi, qi, 3)


def test_non_array_inputs_are_refused():
    with _raises(TypeError, "query must be an array", "list"):
        rn.na1d([[0.0]], _x(1), _x(1), 3)


@pytest.mark.parametrize("op", ["fwd", "qk", "bwd"])
@pytest.mark.parametrize("nd", DIMS)
def test_rpb_shape(op, nd):
    want = (HEADS, *(5,) * nd)
    wrong = np.zeros((HEADS, *(3,) * nd))
    with _raises(ValueError, f"rpb has shape {wrong.shape}", f"must be {want}"):
        _call(op, nd, rpb=wrong)
    with _raises(ValueError, "rpb has shape", f"heads={HEADS}"):
        _call(op, nd, rpb=np.zeros((HEADS + 1, *(5,) * nd)))
    with _raises(ValueError, "rpb has dtype float32"):
        _call(op, nd, rpb=np.zeros(want, dtype=np.float32))


def test_rpb_shape_follows_per_axis_kernel():
    q = _x(2)
    with _raises(ValueError, "must be (2, 3, 5)"):
        rn.na2d(q, q, q, (2, 3), rpb=np.zeros((2, 5, 5)))
    assert rn.na2d(q, q, q, (2, 3), rpb=np.zeros((2, 3, 5))).shape == q.shape


def test_scale_must_be_a_number():
    q = _x(1)
    with _raises(TypeError, "scale='0.5'"):
        rn.na1d(q, q, q, 3, scale="0.5")
    with _raises(TypeError, "scale=True"):
        rn.na1d(q, q, q, 3, scale=True)
    assert rn.na1d(q, q, q, 3, scale=np.float32(0.5)).shape == q.shape


@pytest.mark.parametrize("nd", DIMS)
def test_av_probs_shape(nd):
    v = _x(nd)
    bad = _x(nd, dim=3**nd + 1)
    with _raises(ValueError, f"probs has shape {bad.shape}", f"prod(kernel_size) = {3**nd}"):
        getattr(rn, f"na{nd}d_av")(bad, v, 3)


@pytest.mark.parametrize("name", ["d_out", "out", "lse"])
def test_backward_saved_tensor_shapes(name):
    q = _x(2)
    args = {"d_out": q, "out": q, "lse": np.zeros(q.shape[:-1])}
    args[name] = np.zeros((1, 2, 3))
    with _raises(ValueError, f"{name} has shape (1, 2, 3)"):
        rn.na2d_backward(args["d_out"], q, q, q, args["out"], args["lse"], 3)


# ----------------------------------------------------------------------------------------
# Index helpers
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [neighbor_indices, rpb_indices, dense_mask])
def test_index_helpers_check_their_arguments(fn):
    name = fn.__name__
    with _raises(ValueError, name, "kernel_size=1"):
        fn((8, 8), 1)
    with _raises(ValueError, name, "dilation=0"):
        fn((8, 8), 3, dilation=0)
    with _raises(ValueError, name, "stride=4"):
        fn((8, 8), 3, stride=4)
    with _raises(ValueError, name, "3 * 3 = 9", "smallest input that works has 9 tokens"):
        fn((8, 8), 3, dilation=3)
    with _raises(ValueError, name, "kernel_size=(3, 3, 3)", "2 spatial axes"):
        fn((8, 8), (3, 3, 3))
    with _raises(ValueError, name, "shape=(8, 0)", "0 tokens on axis 1"):
        fn((8, 0), 3)
    with _raises(ValueError, name, "no spatial axes"):
        fn((), 3)
    with _raises(TypeError, name, "shape=8.0"):
        fn(8.0, 3)
    with _raises(TypeError, name, "shape=True"):
        fn(True, 3)


def test_neighbors_of_checks_the_query():
    with _raises(ValueError, "query=(0, 20)", "(9, 12)"):
        neighbors_of((0, 20), (9, 12), 3)
    with _raises(ValueError, "query=(-1, 0)"):
        neighbors_of((-1, 0), (9, 12), 3)
    with _raises(ValueError, "query=(1,)", "2 spatial axes"):
        neighbors_of(1, (9, 12), 3)
    with _raises(TypeError, "query=(1.5, 2)"):
        neighbors_of((1.5, 2), (9, 12), 3)


# ----------------------------------------------------------------------------------------
# The CLI: dinat-ref neighborhood
# ----------------------------------------------------------------------------------------

def test_cli_draws_query_and_neighbors(capsys):
    assert cli.main(["neighborhood", "--shape", "9,12", "--kernel-size", "3", "--dilation", "2",
                     "--query", "0,11"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("grid 9x12") and "query (0, 11)" in lines[0]
    grid = lines[1:10]  # one text row per grid row, 3 characters per cell
    assert all(len(row.rstrip()) <= 36 for row in grid) and lines[10].startswith("(Q) query")
    cells = [[row[3 * c : 3 * c + 3] for c in range(12)] for row in grid]  # 3 characters per cell
    assert cells[0][11] == "(Q)"
    # Hand-derived: rows 0, 2, 4 x cols 7, 9, 11 (all column group b, row group a).
    marked = {(r, c) for r in range(9) for c in range(12) if cells[r][c].startswith(("[", "("))}
    assert marked == {(r, c) for r in (0, 2, 4) for c in (7, 9, 11)}
    assert all(cells[r][c] == "[b]" for r, c in marked if (r, c) != (0, 11))
    assert cells[1][0].strip() == "c" and cells[1][1].strip() == "d"  # dilation groups shown
    assert "9 neighbors" in out


def test_cli_1d_and_causal(capsys):
    # L=10, k=3, d=2, query 8 -> keys 4, 6, 8 (hand-checked in test_neighborhood.py).
    assert cli.main(["neighborhood", "--shape", "10", "--dilation", "2", "--query", "8"]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    cells = [row[3 * c : 3 * c + 3] for c in range(10)]
    assert [i for i, c in enumerate(cells) if c[0] in "[("] == [4, 6, 8]
    assert cli.main(["neighborhood", "--shape", "6,6", "--causal", "true,false", "--query", "1,0"]) == 0
    assert "6 neighbors" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--shape", "9,12", "--kernel-size", "5", "--dilation", "2"], ["5 * 2 = 10", "smallest input"]),
        (["--shape", "9,12", "--kernel-size", "1"], ["kernel_size=1"]),
        (["--shape", "9,12", "--stride", "4"], ["stride=4"]),
        (["--shape", "9,12", "--dilation", "0"], ["dilation=0"]),
        (["--shape", "9,12", "--kernel-size", "3,3,3"], ["kernel_size=(3, 3, 3)", "2 spatial axes"]),
        (["--shape", "9,12", "--query", "0,20"], ["--query 0,20", "9x12"]),
        (["--shape", "9,12", "--query", "1"], ["--query 1", "2 comma-separated"]),
        (["--shape", "2,3,4,5", "--kernel-size", "2"], ["--shape 2,3,4,5", "4 axes"]),
        (["--shape", "9,x"], ["--shape", "'9,x'"]),
        (["--shape", "9,12", "--causal", "maybe"], ["--causal", "'maybe'"]),
    ],
)
def test_cli_bad_arguments_exit_2(argv, fragments, capsys):
    try:
        code = cli.main(["neighborhood", *argv])
    except SystemExit as exit_:  # argparse refuses unparsable values itself
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # nothing half-drawn
    assert captured.err.startswith(("dinat-ref neighborhood", "usage: dinat-ref neighborhood"))
    for fragment in fragments:
        assert fragment in captured.err
