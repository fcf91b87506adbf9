"""The verifier's error-heatmap figure: drawn from a kernel whose bug is known exactly."""

from __future__ import annotations

import itertools

import numpy as np

from dinat_ref.neighborhood import neighbors_of
from dinat_ref.testing import verify
from dinat_ref.testing.example_figure import save_example
from dinat_ref.testing.example_figure import zero_padded_na as _zero_padded_na


def _centered(query, shape, k, d):
    """The zero-padded window, written out per query: offsets -(k//2)..(k//2) times d, kept if on the grid."""
    per_axis = [[q + o * dd for o in range(-(kk // 2), kk // 2 + 1) if 0 <= q + o * dd < n]
                for q, n, kk, dd in zip(query, shape, k, d, strict=True)]
    return sorted(itertools.product(*per_axis))


def test_error_map_fails_exactly_where_zero_padding_differs_from_the_rule():
    report = verify(_zero_padded_na, array="numpy", dims=(2,), dtypes=("float64",), rpb=False,
                    causal=False, stride=False, progress=False)
    assert not report.passed
    checked = 0
    for result in report.failures:
        case = result.case
        if any(k % 2 == 0 for k in case.kernel_size) or result.error_map is None:
            continue  # even kernels are wrong everywhere for a centered window
        for query in np.ndindex(*case.shape):
            rule = neighbors_of(query, case.shape, case.kernel_size, 1, case.dilation)
            wrong = rule != _centered(query, case.shape, case.kernel_size, case.dilation)
            assert (result.error_map[query] > 1) == wrong, (case.name, query)
            checked += 1
    assert checked > 100


def test_example_figure_is_written(tmp_path):
    path = save_example(tmp_path)
    assert path.endswith("verify_errors.png") and (tmp_path / "verify_errors.png").stat().st_size > 10_000
