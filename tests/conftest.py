"""Shared pytest setup: a headless matplotlib backend and a seeded random generator."""

from __future__ import annotations

import os

# Figures render off-screen in tests and on CI (set before anything imports matplotlib).
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded NumPy generator per test, so every test is reproducible on its own."""
    return np.random.default_rng(0)
