"""The main job (`dinat-ref` with no arguments) runs and its cross-checks agree."""

from __future__ import annotations

import pytest

from dinat_ref.cli import build_parser, main


def test_no_arguments_means_the_tour():
    # `dinat-ref` alone must run the built-in default, the tour.
    args = build_parser().parse_args(["tour"])
    assert args._module == "dinat_ref.commands.tour"


def test_tour_runs_and_every_cross_check_agrees(capsys):
    pytest.importorskip("torch")
    # A small image keeps it quick; 64x64 also sends the last stages through the padding path.
    rc = main(["tour", "--no-figures", "--image-size", "64", "--no-natten"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "MISMATCH" not in out
    rows = [line for line in out.splitlines() if line.rstrip().endswith(" ok")]
    assert len(rows) >= 4, out  # model fp64, model fp32, na2d d=1 and d=8
    assert "(Q)" in out and "9 neighbors" in out
    assert "dense SDPA + NA mask (baseline)" in out
