"""Shared pytest setup: a headless matplotlib backend and a seeded random generator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Test helpers (independent kernels, the browser fixture) are imported by name from tests/helpers/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))

# Figures render off-screen in tests and on CI (set before anything imports matplotlib).
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from browser import browser  # noqa: E402, F401 - the headless Chromium of the HTML page tests


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded NumPy generator per test, so every test is reproducible on its own."""
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: small models gain nothing from threads, and on a busy
    2-core machine thread barriers make every op wait for a descheduled thread."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n 2``) give each worker one thread.

    Two workers on two cores with two BLAS/torch threads each oversubscribe the machine,
    and small ops then spend their time waiting on each other (seen: 10x slower tests).
    Subprocesses such as the tutorials inherit the environment variables.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
