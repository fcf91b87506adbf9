"""Run the kernel where it can be stopped: a worker process with a per-case time limit.

Python cannot stop a function that is running in its own process (a thread cannot be
killed, and a signal is not delivered while C code such as a compiled kernel runs).
So with a time limit the verifier runs every case in a worker process
(``multiprocessing``, ``spawn``): the parent sends one case, waits at most ``timeout``
seconds, and on a hang kills the worker, records the case as an ``ERROR`` ("timed
out") and starts a fresh worker for the next case. A worker that dies (``os._exit``,
a segfault in a compiled kernel) is reported the same way; the run goes on.

The worker must import the kernel by itself: it gets ``"module:function"`` /
``"path/file.py:function"`` strings (the command line passes its targets), or
functions that pickle by reference (defined at the top level of an importable module).
Lambdas, closures and functions built at run time cannot cross the process boundary;
:class:`CaseWorker` says so before any case runs.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from typing import Any

import numpy as np

from dinat_ref.testing.cases import Case
from dinat_ref.testing.report import CaseResult, Diagnosis
from dinat_ref.testing.targets import resolve

__all__ = ["CaseWorker"]

_STARTUP_SECONDS = 120.0  # importing torch/JAX and the kernel's module on a busy machine


class CaseWorker:
    """A worker process that runs cases of one kernel, each within ``timeout`` seconds.

    Args:
        recipe: how to build the kernel's adapter in the worker: ``fn``, ``qk``, ``av``, ``bwd``
            (callables or ``"module:function"`` strings), ``layout``, ``device``, ``limits``
            (a :class:`~dinat_ref.testing.adapters.KernelLimits`) and ``name``.
        timeout: seconds per case (the diagnosis gets five times as long: it calls the kernel
            many times).

    Raises:
        ValueError: when the recipe cannot be sent to another process (a lambda or closure).
    """

    def __init__(self, recipe: dict[str, Any], timeout: float):
        try:
            self._payload = pickle.dumps(recipe)
        except Exception as err:
            raise ValueError(
                f"timeout={timeout}: the kernel runs in a worker process so that a hang can be stopped, "
                f"and it must be importable by name there, but it cannot be pickled ({type(err).__name__}: "
                f"{err}). Pass it as 'module:function' or define it at the top level of a module; or drop "
                f"timeout, and the cases run in this process without a time limit (Python cannot stop a "
                f"function running in its own process).") from None
        self.timeout = float(timeout)
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None
        self._warm: set[str] = set()  # array libraries the running worker has imported

    # ------------------------------------------------------------------ process management
    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker_main, args=(child, self._payload, os.getcwd()),
                                       daemon=True, name="dinat-ref-verify-worker")
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(_STARTUP_SECONDS):
            self.close()
            raise RuntimeError(f"the worker process did not start within {_STARTUP_SECONDS:g} s")
        status, value = self._receive()
        if status != "ready":
            self.close()
            raise RuntimeError(f"the worker process could not load the kernel: {value}")

    def _receive(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            if self._proc is not None:
                self._proc.join(5)  # the pipe closes before the process is reaped: wait for its status
            code = self._proc.exitcode if self._proc is not None else None
            self.close()
            return "died", f"the worker process died (exit code {code}) while running the kernel"

    def close(self) -> None:
        """Stop the worker (kill it if it does not stop)."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except Exception:  # noqa: S110 - the worker may already be gone
                pass
            self._conn.close()
        if self._proc is not None:
            self._proc.join(0.5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._proc, self._conn = None, None
        self._warm = set()

    def _ask(self, message: tuple, limit: float) -> tuple[str, Any]:
        """Send one job; ``("timeout", None)`` when it took longer than ``limit`` (the worker is killed)."""
        if self._proc is None:
            self._start()
        self._conn.send(message)
        if not self._conn.poll(limit):
            self.close()
            return "timeout", None
        status, value = self._receive()
        if status == "interrupt":
            raise KeyboardInterrupt(value)
        return status, value

    # ------------------------------------------------------------------ jobs
    def detect(self, **kwargs: Any):
        """:func:`~dinat_ref.testing.detect.detect_array` in the worker, within ``timeout``."""
        try:  # up to three kernel calls, plus importing torch/JAX the first time
            status, value = self._ask(("detect", kwargs), 3 * self.timeout + _STARTUP_SECONDS)
        except RuntimeError as err:
            status, value = "raised", str(err)
        if status == "ok":
            return value
        from dinat_ref.testing.adapters import KernelLimits
        from dinat_ref.testing.detect import ArrayDetection, detection_case

        why = (f"timed out after {self.timeout:g} s (the kernel hangs or is too slow on an 8-token case)"
               if status == "timeout" else value)
        limits = kwargs.get("limits") or KernelLimits()
        return ArrayDetection(None, errors={"all": why}, case=detection_case(limits))

    def run_case(self, array: str, case: Case, dtype: str, tolerances: dict | None,
                 backward_tolerances: dict | None) -> CaseResult:
        """One case in the worker; a hang or a dead worker becomes an ``ERROR`` row."""
        try:
            if array not in self._warm:  # import the array library outside the case's time limit
                status, value = self._ask(("warm", array), _STARTUP_SECONDS)
                if status != "ok":
                    why = f"timed out after {_STARTUP_SECONDS:g} s" if status == "timeout" else value
                    return CaseResult(case, dtype, "ERROR", f"the worker could not set up {array}: {why}")
                self._warm.add(array)
            status, value = self._ask(("case", array, case, dtype, tolerances, backward_tolerances),
                                      self.timeout)
        except RuntimeError as err:
            return CaseResult(case, dtype, "ERROR", str(err))
        if status == "ok":
            return value
        if status == "timeout":
            return CaseResult(case, dtype, "ERROR", (
                f"timed out after {self.timeout:g} s: the case was stopped and the run goes on (the kernel "
                f"hangs, or is slower than --timeout allows)"))
        return CaseResult(case, dtype, "ERROR", value)

    def diagnose(self, array: str, result: CaseResult) -> Diagnosis:
        """The probe diagnosis in the worker, within five times ``timeout``."""
        try:
            status, value = self._ask(("diagnose", array, result), 5 * self.timeout)
        except RuntimeError as err:
            status, value = "raised", str(err)
        if status == "ok":
            return value
        why = "timed out" if status == "timeout" else value
        return Diagnosis("other", f"{result.message}. Probing the kernel failed: {why}.",
                         result.case, result.dtype)


def _worker_main(conn, payload: bytes, cwd: str) -> None:
    """The worker's loop: build the adapter once per array library, then answer jobs until None."""
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # a "module:function" target next to the user, as on the command line
    try:
        recipe = pickle.loads(payload)
        recipe = {k: resolve(v) if k in ("fn", "qk", "av", "bwd") else v for k, v in recipe.items()}
    except BaseException as err:  # noqa: B036 - report anything, then stop
        conn.send(("raised", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", None))
    from dinat_ref.testing.adapters import KernelAdapter
    from dinat_ref.testing.detect import detect_array
    from dinat_ref.testing.probes import diagnose_result
    from dinat_ref.testing.runner import run_case

    adapters: dict[str, KernelAdapter] = {}

    def adapter(array: str) -> KernelAdapter:
        if array not in adapters:
            adapters[array] = KernelAdapter(recipe["fn"], qk=recipe["qk"], av=recipe["av"],
                                            bwd=recipe["bwd"], layout=recipe["layout"], array=array,
                                            device=recipe["device"], limits=recipe["limits"],
                                            name=recipe["name"])
        return adapters[array]

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        kind, *args = message
        try:
            if kind == "detect":
                value = detect_array(recipe["fn"], qk=recipe["qk"], av=recipe["av"], **args[0])
            elif kind == "warm":
                value = adapter(args[0]).to_native(np.zeros(1), "float32", activation=False) is not None
            elif kind == "case":
                value = run_case(adapter(args[0]), *args[1:])
            else:
                value = diagnose_result(adapter(args[0]), args[1])
            conn.send(("ok", value))
        except KeyboardInterrupt as err:
            conn.send(("interrupt", f"KeyboardInterrupt: {err}"))
        except BaseException as err:  # noqa: B036 - the kernel's fault; keep serving
            conn.send(("raised", f"{type(err).__name__}: {err}"))


