"""Every tutorial runs headless, start to finish, as a plain script.

Each ``tutorials/*.py`` is executed in a fresh process with the Agg backend and an
empty temporary working directory, so a tutorial that writes files must do so in its
working directory (or a path it chooses), never next to itself. New tutorials are
picked up automatically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS_DIR = Path(__file__).resolve().parent.parent / "tutorials"
TUTORIALS = sorted(TUTORIALS_DIR.glob("[0-9]*.py"))
TIMEOUT_S = 300  # each tutorial is meant to take well under 2 minutes on 2 CPU cores


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


def test_tutorials_open_as_notebooks():
    jupytext = pytest.importorskip("jupytext")
    for path in TUTORIALS:
        nb = jupytext.read(path)
        kinds = [c.cell_type for c in nb.cells]
        assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2, path.name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), path.name
