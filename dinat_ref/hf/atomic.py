"""Writing files so that a failure never leaves a directory half-written.

Every file is written to a temporary file in the same directory and renamed into place with
:func:`os.replace` (atomic on POSIX and Windows when source and target share a directory).
:func:`atomic_files` groups several files: nothing is renamed until all of them are written,
and if a rename fails the files already replaced are put back, so on any failure the
directory holds exactly what it held before.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

__all__ = ["atomic_write_text", "atomic_files"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open(path, "w") would give (mkstemp gives 0o600)


def _temp_path(target: str) -> str:
    directory, name = os.path.split(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    os.chmod(tmp, _FILE_MODE)
    return tmp


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def atomic_files(directory: str | os.PathLike) -> Iterator[Callable[[str], str]]:
    """Stage files in ``directory``, then rename all of them into place in the order staged.

    Use as::

        with atomic_files(out) as stage:
            save_weights(stage("model.safetensors"))    # write to the returned temporary path
            write_config(stage("config.json"))

    Args:
        directory: where the files go (created if missing).

    Yields:
        ``stage(name) -> temporary path``: write the file there.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    staged: list[tuple[str, str]] = []

    def stage(name: str) -> str:
        target = os.path.join(directory, name)
        tmp = _temp_path(target)
        staged.append((tmp, target))
        return tmp

    try:
        yield stage
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        raise
    _commit(staged)


def _commit(staged: list[tuple[str, str]]) -> None:
    """Rename every temporary file onto its target; undo the done ones if one fails."""
    backups: list[tuple[str, str | None]] = []  # (target, backup of what it held, or None)
    try:
        for tmp, target in staged:
            backup = None
            if os.path.exists(target):
                backup = _temp_path(target)
                os.replace(target, backup)
            backups.append((target, backup))
            os.replace(tmp, target)
    except BaseException:
        for target, backup in reversed(backups):
            if backup is None:
                _remove(target)
            else:
                os.replace(backup, target)
        for tmp, _ in staged:
            _remove(tmp)
        raise
    for _, backup in backups:
        if backup is not None:
            _remove(backup)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    path = os.fspath(path)
    with atomic_files(os.path.dirname(os.path.abspath(path))) as stage:
        with open(stage(os.path.basename(path)), "w", encoding="utf-8") as fh:
            fh.write(text)
