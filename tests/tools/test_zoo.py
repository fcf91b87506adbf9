"""The kernel zoo page says what the code finds, and its findings hold against the rule.

For every zoo row whose package is installed here at its pinned version (natten-mps and
attn-gym come with the ``dev`` extra), the verifier is run again and its measured line,
per-dimension counts and kinds of difference must be on the committed ``docs/zoo.md``;
the page cannot drift from the code. The upstream findings are then checked directly
against :mod:`dinat_ref.neighborhood`, without the verifier in between.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the zoo's rows run on torch")

from dinat_ref.neighborhood import neighbors_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # the zoo is a tool of the repository, not part of the package
from zoo import ENTRIES, SNIPPETS, run_entry  # noqa: E402

PAGE = (ROOT / "docs" / "zoo.md").read_text()
BY_KEY = {e.key: e for e in ENTRIES}


@pytest.mark.parametrize("key", ["natten-mps", "attn-gym", "dinat-ref-torch", "natten-mlx"])
def test_page_matches_a_fresh_run(key):
    entry = BY_KEY[key]
    row = run_entry(entry)
    if row.unavailable and key != "natten-mlx":
        pytest.skip(f"{key}: {row.unavailable}")
    assert row.summary() in PAGE, f"docs/zoo.md is stale; run `python tools/zoo.py`. Found: {row.summary()}"
    for dim, report in row.reports.items():
        c = report.counts()
        assert (f"- {dim}-D: {c['PASS']} pass, {c['FAIL']} differ, {c['ERROR']} errors, "
                f"{c['SKIP']} skipped") in PAGE
        assert entry.command(dim) in PAGE
    for d in row.differences:
        assert f"### {d.title}" in PAGE and f"Cases ({len(d.cases)})" in PAGE
        picture = ROOT / "figures" / "zoo" / f"{key}-{d.kind}.png"
        assert picture.read_bytes()[:4] == b"\x89PNG", picture


@pytest.mark.natten
@pytest.mark.slow
def test_natten_row_matches_a_fresh_run():
    entry = BY_KEY["natten"]
    if entry.unavailable():
        pytest.skip(entry.unavailable())
    row = run_entry(entry)
    assert row.summary() in PAGE and not row.differences


@pytest.mark.parametrize("key", sorted(SNIPPETS))
def test_upstream_snippets_run(key):
    package = key.split(":")[0]
    if BY_KEY[package].unavailable():
        pytest.skip(BY_KEY[package].unavailable())
    assert SNIPPETS[key] in PAGE
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(SNIPPETS[key], key, "exec"), {})
    assert out.getvalue().strip()


def test_attn_gym_findings_hold_against_the_rule():
    if BY_KEY["attn-gym"].unavailable():
        pytest.skip(BY_KEY["attn-gym"].unavailable())
    from attn_gym.masks.natten import generate_natten
    from torch.nn.attention.flex_attention import create_mask

    def keys(H, W, kh, kw, query):
        m = create_mask(generate_natten(canvas_w=W, canvas_h=H, kernel_w=kw, kernel_h=kh), 1, 1, H * W, H * W,
                        device="cpu")[0, 0].view(H, W, H, W)
        return sorted(tuple(int(c) for c in x) for x in np.argwhere(m[query].numpy()))

    # square canvas, odd kernel: the rule exactly
    assert keys(8, 8, 3, 3, (7, 0)) == neighbors_of((7, 0), (8, 8), (3, 3))
    # non-square: the last row of a wide canvas loses a row of keys
    assert len(keys(4, 6, 3, 3, (3, 0))) == 6 and len(neighbors_of((3, 0), (4, 6), (3, 3))) == 9
    # even kernel: (k + 1)^2 keys instead of k^2
    assert len(keys(8, 8, 4, 4, (3, 3))) == 25 and len(neighbors_of((3, 3), (8, 8), (4, 4))) == 16


def test_natten_mps_findings_hold_against_the_rule():
    if BY_KEY["natten-mps"].unavailable():
        pytest.skip(BY_KEY["natten-mps"].unavailable())
    import natten_mps
    import torch

    L = 7
    q = torch.zeros(1, L, 1, 8)
    v = torch.eye(L, 8)[None, :, None]
    for k in (3, 5):  # odd kernels: the rule exactly
        w = natten_mps.na1d(q, q, v, kernel_size=k)[0, :, 0, :L]
        assert [sorted(np.flatnonzero(w[i] > 1e-6).tolist()) for i in range(L)] == \
            [[j for (j,) in neighbors_of((i,), (L,), k)] for i in range(L)]
    w = natten_mps.na1d(q, q, v, kernel_size=2)[0, :, 0, :L]
    assert sorted(np.flatnonzero(w[L - 1] > 1e-6).tolist()) == [4, 5]  # not itself
    assert [j for (j,) in neighbors_of((L - 1,), (L,), 2)] == [5, 6]
    x = torch.randn(1, 10, 1, 8)
    assert natten_mps.na1d(x, x, x, kernel_size=3, stride=3).shape[1] == 4
    # ... and the verifier names the even-kernel border mistake in words
    from dinat_ref.testing import Case, verify

    report = verify(natten_mps.na1d, cases=[Case("even", (7,), (2,))], progress=False)
    assert report.diagnosis.kind == "wrong_window" and "border formula" in report.diagnosis.message
