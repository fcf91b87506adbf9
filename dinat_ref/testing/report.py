"""The verifier's report: one row per (case, dtype), a summary, and a diagnosis.

Statuses:

* ``PASS``: forward (and backward, when checked) within tolerance;
* ``FAIL``: the kernel ran but its numbers are wrong (or NaN/inf);
* ``ERROR``: the kernel raised, or returned the wrong shape, dtype or type;
* ``SKIP``: the case is outside the kernel's declared limits.

A case passes when every element satisfies ``|out - ref| <= tol * (1 + |ref|)``
(``atol == rtol == tol``, as in NATTEN's tests); the table shows the largest absolute
error and the largest relative error ``|out - ref| / max(|ref|, tol)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dinat_ref.testing.cases import Case

__all__ = ["CaseResult", "Diagnosis", "Report"]


@dataclass
class CaseResult:
    """The outcome of one case in one dtype.

    Attributes:
        case, dtype, status: what ran and how it went (PASS/FAIL/ERROR/SKIP).
        message: the reason for FAIL/ERROR/SKIP (the kernel's own exception text for ERROR).
        fwd_abs, fwd_rel: largest absolute / relative forward error (None if not compared).
        bwd_abs, bwd_rel: the same over dq, dk, dv (and drpb) when backward was checked.
        tolerance: the tolerance used (forward; backward uses its own, in ``bwd_tolerance``).
        error_map: ``(*spatial,)`` forward error per query in units of the tolerance (>1 fails).
        first_wrong_query: grid coordinates of the first query (row-major) over tolerance.
    """

    case: Case
    dtype: str
    status: str
    message: str = ""
    fwd_abs: float | None = None
    fwd_rel: float | None = None
    bwd_abs: float | None = None
    bwd_rel: float | None = None
    tolerance: float | None = None
    bwd_tolerance: float | None = None
    error_map: np.ndarray | None = field(default=None, repr=False)
    first_wrong_query: tuple[int, ...] | None = None

    @property
    def id(self) -> str:
        return f"{self.case.name}-{self.dtype}"


@dataclass
class Diagnosis:
    """Why the first failing case fails, in words.

    Attributes:
        kind: ``wrong_window``, ``causal_leakage``, ``wrong_normalization``, ``wrong_scale``,
            ``wrong_rpb``, ``wrong_backward``, ``nan``, ``error``, ``mutates_inputs``,
            ``strided_output``, ``no_array``, ``nothing_ran``, ``numerical`` or ``other``.
        message: the explanation, naming the first wrong query and what is wrong there.
        case, dtype: the case that was probed.
        query: grid coordinates of the query the explanation is about.
        expected, observed: that query's neighborhood by the rule and as the kernel attended.
        grid: expected vs observed neighborhoods drawn side by side (text), or "".
    """

    kind: str
    message: str
    case: Case | None = None
    dtype: str | None = None
    query: tuple[int, ...] | None = None
    expected: list[tuple[int, ...]] | None = None
    observed: list[tuple[int, ...]] | None = None
    grid: str = ""

    def __str__(self) -> str:
        head = f"Diagnosis [{self.kind}]"
        if self.case is not None:
            head += f" for case {self.case.name} ({self.case.config()}, {self.dtype})"
        parts = [head, self.message]
        if self.grid:
            parts.append(self.grid)
        return "\n".join(parts)


@dataclass
class Report:
    """Everything a verification run found. ``bool(report)`` is ``report.passed``.

    Attributes:
        kernel: the kernel's name.
        results: one :class:`CaseResult` per (case, dtype), in the order they ran.
        diagnosis: why the first failure fails (None when nothing failed).
        notes: how the run was set up (e.g. the array library detected).
        interrupted: the run stopped early (KeyboardInterrupt); never a pass.
    """

    kernel: str
    results: list[CaseResult]
    diagnosis: Diagnosis | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        """True when nothing failed or errored (skips do not count), something ran, and the run finished."""
        return (not self.failures and not self.interrupted
                and any(r.status == "PASS" for r in self.results))

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.status in ("FAIL", "ERROR")]

    @property
    def skipped(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "SKIP"]

    def __bool__(self) -> bool:
        return self.passed

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("PASS", "FAIL", "ERROR", "SKIP")}
        for r in self.results:
            out[r.status] += 1
        return out

    def summary(self) -> str:
        """One line: ``my_kernel: FAILED  30 passed, 4 failed, 0 errors, 6 skipped``."""
        c = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        if not any(c.values()) or (c["PASS"] == 0 and not self.failures):
            verdict = "NOTHING RAN"
        line = (f"{self.kernel}: {verdict}  {c['PASS']} passed, {c['FAIL']} failed, "
                f"{c['ERROR']} errors, {c['SKIP']} skipped")
        if self.interrupted:
            line += " (interrupted: the remaining cases did not run)"
        elif verdict == "NOTHING RAN" and c["SKIP"]:
            line += " (every case is outside the declared limits: this is not a pass)"
        return line

    def table(self, show_skipped: bool = True, show_passed: bool = True) -> str:
        """The results as a fixed-width text table."""
        head = ("case", "config", "dtype", "fwd abs err", "fwd rel err", "bwd abs err", "status")
        rows = []
        for r in self.results:
            if (r.status == "SKIP" and not show_skipped) or (r.status == "PASS" and not show_passed):
                continue
            rows.append((r.case.name, r.case.config(), r.dtype, _num(r.fwd_abs), _num(r.fwd_rel),
                         _num(r.bwd_abs), r.status + (f": {_short(r.message)}" if r.message else "")))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
        widths[-1] = len(head[-1])  # the status column is free-form; do not pad it
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])

    def __str__(self) -> str:
        parts = [self.table(), "", *self.notes, self.summary()]
        if self.diagnosis is not None:
            parts += ["", str(self.diagnosis)]
        return "\n".join(parts)

    def save_figure(self, path: str, result: CaseResult | None = None) -> str:
        """Save the error heatmap of ``result`` (default: the first failure) to ``path``.

        Args:
            path: where to write; a name without extension gets ``.png``; the format follows
                the extension (any matplotlib format).
            result: the failing case to draw (default: the first with an error map).

        Returns:
            The path written (with the extension added, if it was missing).

        Raises:
            ValueError: when no failing case has an error map, or the folder does not exist.
        """
        from pathlib import Path

        from dinat_ref.viz.verify_errors import plot_verify_errors

        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".png")
        if not target.parent.is_dir():
            raise ValueError(f"save_figure: the folder {str(target.parent)!r} of path={str(path)!r} "
                             f"does not exist.")

        result = result or next((r for r in self.failures if r.error_map is not None), None)
        if result is None:
            raise ValueError("save_figure: no failing case with an error map (nothing to draw).")
        d = self.diagnosis if self.diagnosis is not None and self.diagnosis.case == result.case else None
        fig = plot_verify_errors(
            result.error_map, query=d.query if d else result.first_wrong_query,
            expected=d.expected if d else None, observed=d.observed if d else None,
            title=f"{self.kernel}: {result.case.name} ({result.case.config()}, {result.dtype})",
        )
        fig.savefig(target, dpi=110, format=target.suffix[1:])
        return str(target)


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return "nan" if not np.isfinite(x) else f"{x:.2e}"


def _short(msg: str, n: int = 90) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= n else msg[: n - 3] + "..."
