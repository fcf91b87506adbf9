"""Every tutorial runs headless, start to finish, as a plain script, and its exercises are right.

Each ``tutorials/*.py`` is executed in a fresh process with the Agg backend and an
empty temporary working directory, so a tutorial that writes files must do so in its
working directory (or a path it chooses), never next to itself. New tutorials are
picked up automatically.

A tutorial with exercises ends by printing ``SOLUTIONS {json}``: the answers computed with
the library. ``EXERCISE_ANSWERS`` below computes the same answers independently (brute
force over a rule written out here, closed forms, hand derivations) and the two must agree.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS_DIR = Path(__file__).resolve().parents[2] / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9]*.py"))
TIMEOUT_S = 300  # each tutorial is meant to take well under 2 minutes on 2 CPU cores


# ----------------------------------------------------------------------------------------
# Independent answers to the tutorials' exercises
# ----------------------------------------------------------------------------------------

def _na_keys(length: int, k: int, d: int, i: int) -> list[int]:
    """Odd k: NA's window is the k members of i's dilation group nearest to i.

    (Windows shift inward at borders, so near a border the k nearest lie on one side;
    with odd k there are no ties.) A different characterization from the clamp rule.
    """
    assert k % 2 == 1
    group = range(i % d, length, d)
    return sorted(sorted(group, key=lambda j: abs(j - i))[:k])


def _field_after(length: int, k: int, dilations: list[int], query: int) -> list[set[int]]:
    """Tokens the query depends on after each layer, by propagating sets."""
    field, out = {query}, []
    for d in dilations:
        field = set().union(*({j, *_na_keys(length, k, d, j)} for j in field))
        out.append(field)
    return out


def _offsets_hole_free(k: int, dilations: list[int]) -> bool:
    """Interior query: the field is the sum-set of each layer's offsets; no holes iff contiguous."""
    offs = {0}
    for d in dilations:
        offs = {o + t * d for o in offs for t in range(-(k // 2), k // 2 + 1)}
    return len(offs) == max(offs) - min(offs) + 1


def _answers_01() -> dict:
    return {
        "1_keys_q15": _na_keys(16, 5, 3, 15),
        "1_keys_q1": _na_keys(16, 5, 3, 1),
        # By hand, k=4 (2 keys left, 1 right inside the group): query 6 is member 3 of group 0
        # (0, 2, ..., 10): members 1..4. Query 11 is member 5 of group 1 (1, 3, ..., 11): the
        # window 3..6 overhangs the 6 members, shifted inward to 2..5.
        "2_keys_q6": [2, 4, 6, 8],
        "2_keys_q11": [5, 7, 9, 11],
        "3_rpb_q0": [(5 - 1) + (j - 0) // 3 for j in _na_keys(16, 5, 3, 0)],
        "4_mask_true": 7 * 9 * 3 * 3,
        "5_L_for_1000x": next(n for n in range(7, 10**5, 7) if n * n == 1000 * n * 7),
    }


def _answers_02() -> dict:
    fields = _field_after(56, 7, [1] * 12, 28)
    return {
        "1_extent_mini_stage3": 1 + (7 - 1) * sum([1, 2] * 3),
        "2_max_hole_free_d": max(d for d in range(1, 30) if _offsets_hole_free(7, [1, d, 1])),
        "3_na_layers_middle_full": 1 + next(n for n, f in enumerate(fields) if len(f) == 56),
        "4_layers_for_2401": next(n for n in range(1, 10) if 7**n >= 2401),
        # padded axis 56: query 0's group is 0, 8, ..., 48; the real tokens are those below 32
        "5_real_keys_q0": len([j for j in range(0, 56, 8) if j < 32]),
    }


def _strided_window(length: int, k: int, s: int, i: int) -> list[int]:
    """Non-causal, d=1, written out from the README's rule: the stride group's middle query leads."""
    leader = min((i // s) * s + s // 2, length - 1)
    start = min(max(leader - k // 2, 0), length - k)
    return list(range(start, start + k))


def _answers_03() -> dict:
    def share(i, length, k, s):
        mine = _strided_window(length, k, s, i)
        return [q for q in range(length) if _strided_window(length, k, s, q) == mine]

    return {
        "1_causal_q2": list(range(max(0, 2 - 3), 3)),
        "1_causal_q9": list(range(max(0, 9 - 3), 10)),
        "2_causal_pairs": sum(min(i + 1, 4) for i in range(14)),
        "3_share_q4": share(4, 12, 5, 3),
        "3_window_q4": _strided_window(12, 5, 3, 4),
        "3_share_q10": share(10, 12, 5, 3),
        "3_window_q10": _strided_window(12, 5, 3, 10),
        "4_distinct_windows": 56 // 7,  # blocked attention: one window per block
        # by hand: query 3's stride group is 3..5, its last query 5 leads: keys from 5 - 4 + 1 = 2 up to 3
        "5_causal_stride_q3": [2, 3],
    }


def _answers_04() -> dict:
    return {
        "1_stage2_qk_flops": 2 * (28 * 28) * 128 * 7 * 7,  # 2 N C k^2, whatever the dilation
        "2_global_over_na_112": (112 * 112) // (7 * 7),  # N / k^2
        "3_bytes_na_112": 4 * 112 * 112 * 49,
        "3_bytes_global_112": 4 * (112 * 112) ** 2,
        "4_tokens_qk_equals_projections": 4 * 64,  # 2 N^2 C = 4 * 2 N C^2  ->  N = 4 C
        "5_swin_over_na": 1.0,  # w = k: the same number of keys per query
    }


def _rpb_entries(length: int, k: int, d: int, i: int) -> list[int]:
    return [(k - 1) + (j - i) // d for j in _na_keys(length, k, d, i)]


def _answers_05() -> dict:
    uses = [0] * 9
    for i in range(20):
        for r in _rpb_entries(20, 5, 2, i):
            uses[r] += 1
    return {
        "1_entries_q8": _rpb_entries(9, 3, 2, 8),
        "2_pairs_entry0": uses[0],
        "2_pairs_entry4": uses[4],
        "3_params_7x7": 4 * (2 * 7 - 1) ** 2,
        "3_params_11x11": 4 * (2 * 11 - 1) ** 2,
        "4_drpb_all_ones": uses,  # each use adds 1
        # by hand, k=4: query 11's window is 8..11, offsets -3..0 -> entries 0..3; query 0's is
        # 0..3, offsets 0..3 -> entries 3..6
        "5_min_entry": 0,
        "5_max_entry": 6,
    }


def _answers_06() -> dict:
    c, r, heads, k = 64, 3, 2, 7
    layer = (2 * 2 * c  # two LayerNorms
             + 4 * (c * c + c)  # query, key, value, output projections with bias
             + heads * (2 * k - 1) ** 2  # RPB
             + (c * r * c + r * c) + (r * c * c + c))  # MLP
    stem = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + 2 * 64
    return {
        "1_sides_384": [384 // 4, 384 // 8, 384 // 16, 384 // 32],
        "2_small_channels": [96, 192, 384, 768],
        "3_layer_params": layer,
        "4_stem_params": stem,
        "5_stage3_dilation": (224 // 16) // 7,
    }


def _answers_09() -> dict:
    from dinat_ref.hf.weights import count_parameters
    from dinat_ref.torch.digits import digits_model_config

    return {
        "1_stage_sides": [48 // 4, 48 // 8],  # the stem divides by 4, the downsampler by 2
        "2_dina_span_tokens": (3 - 1) * 3 + 1,
        "2_dina_span_pixels": ((3 - 1) * 3 + 1) * 4,  # a stage-1 token is 4x4 pixels
        "3_test_digits": math.ceil(0.25 * 1797),
        "3_digits_per_point": math.ceil(0.25 * 1797) / 100,
        "4_parameters": count_parameters(digits_model_config()),
        "5_twin_middle_rf": 1 + (3 - 1) * 2,
    }


EXERCISE_ANSWERS = {"01": _answers_01, "02": _answers_02, "03": _answers_03, "04": _answers_04,
                    "05": _answers_05, "06": _answers_06, "09": _answers_09}


def check_solutions(stdout: str, prefix: str) -> None:
    """Compare the ``SOLUTIONS`` line a tutorial printed with ``EXERCISE_ANSWERS[prefix]``."""
    lines = [line for line in stdout.splitlines() if line.startswith("SOLUTIONS ")]
    assert len(lines) == 1, f"tutorial {prefix} printed {len(lines)} SOLUTIONS lines"
    got = json.loads(lines[0][len("SOLUTIONS "):])
    want = EXERCISE_ANSWERS[prefix]()
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    for key, value in want.items():
        same = math.isclose(got[key], value, rel_tol=1e-9) if isinstance(value, float) else got[key] == value
        assert same, f"tutorial {prefix}, exercise {key}: printed {got[key]!r}, expected {value!r}"


def _snapshot(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != "__pycache__"}


def test_tutorials_exist_and_are_listed():
    assert len(TUTORIALS) >= 2
    readme = (TUTORIALS_DIR / "README.md").read_text()
    for path in TUTORIALS:
        assert path.name in readme, f"{path.name} is not listed in tutorials/README.md"


def _own_test(path: Path) -> Path:
    """A tutorial may have a test file of its own that runs it and checks what it prints."""
    return Path(__file__).resolve().parent / f"test_tutorial_{path.stem[:2]}.py"


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path: Path, tmp_path: Path):
    if _own_test(path).exists():
        pytest.skip(f"run (and its output checked) by {_own_test(path).name}")
    text = path.read_text()
    assert "# %% [markdown]" in text and "\n# %%\n" in text, "expected jupytext percent-format cells"
    before = _snapshot(TUTORIALS_DIR)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not finish in {TIMEOUT_S} s")
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert _snapshot(TUTORIALS_DIR) == before, f"{path.name} wrote files into tutorials/"
    if path.stem[:2] in EXERCISE_ANSWERS:
        check_solutions(proc.stdout, path.stem[:2])


def test_numbered_tutorials_end_with_exercises():
    for path in TUTORIALS:
        if path.stem[:2] <= "09":
            text = path.read_text()
            assert "# ## Exercises" in text and "SOLUTIONS" in text, f"{path.name} has no checked exercises"


def test_tutorials_open_as_notebooks():
    jupytext = pytest.importorskip("jupytext")
    for path in TUTORIALS:
        nb = jupytext.read(path)
        kinds = [c.cell_type for c in nb.cells]
        assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2, path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), path.name
