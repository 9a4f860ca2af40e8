"""Checks a command-line program makes before it loads a model, so a mistake costs a second, not a run.

An --out that cannot be written (a folder where a file goes, a file where a folder goes, a folder the user may not
write in), one that would overwrite something that is not ours, or one that two outputs would share, is refused
in one line with exit status 2 before anything is read or loaded. A branch the user asked for by a flag (e.g.
`--attribution FILE`) that cannot run after loading is an error too: running without it would silently answer a
different question than the one asked.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class OutputError(ValueError):
    """An output path that cannot be used; `str()` is one line: '<path>: <problem and what to do>'."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")


def check_output(path: Path, folder: bool = False, csv_header: Sequence[str] | None = None,
                 companions: Iterable[Path] = ()) -> None:
    """Raise OutputError unless `path` can be written as a file (or a folder) without losing anything.

    csv_header: an existing non-empty file must start with exactly this header line (it is appended to).
    companions: files written beside `path`; one that resolves to `path` itself would mix two formats in one file.
    Nothing is created: a probe file is made in the nearest existing folder and removed at once.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(path, "is a file, not a folder; give a folder path (it is created if missing)")
    if not folder and path.is_dir():
        raise OutputError(path, "is a folder, not a file; give a file path")
    for companion in companions:
        if Path(companion).resolve() == path.resolve():
            raise OutputError(path, f"{Path(companion).name} is also where the companion output goes, so the two "
                              "would overwrite each other; choose a name with another suffix (e.g. .csv)")
    _probe_folder(path, path if folder else path.parent)
    if not folder and path.is_file() and csv_header is not None and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            first = handle.readline(64 * 1024).rstrip(b"\r\n")
        if first != ",".join(csv_header).encode():
            shown = first[:80].decode("utf-8", "replace")
            raise OutputError(path, f"exists and does not start with the header this program writes (it starts "
                              f"{shown!r}); refusing to touch it: choose another output file")


def require_output(path: Path, folder: bool = False, csv_header: Sequence[str] | None = None,
                   companions: Iterable[Path] = ()) -> None:
    """`check_output` for scripts: print 'error: <path>: <problem>' and exit with status 2 when it fails."""
    try:
        check_output(path, folder, csv_header, companions)
    except OutputError as err:
        _fail(str(err))


def require_ready(statuses: Iterable[Any], branch: str, flag: str, value: object | None) -> None:
    """Exit with status 2 when the user gave `flag value` and `branch` (a Pipeline.status() entry) cannot run."""
    if value is None:
        return
    for status in statuses:
        if status.branch == branch and not status.ready:
            fix = "; to fix: " + "; ".join(status.fix) if status.fix else ""
            _fail(f"{flag} {value} was given but the {branch} branch cannot run: "
                  f"{status.reason or 'not loaded'}{fix}")


def _probe_folder(path: Path, folder: Path) -> None:
    """Try to create a file in `folder` (or its nearest existing parent): permissions, read-only mounts, quotas
    and even root on procfs all answer the same way."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(path, f"cannot be created: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".gantrace-write-probe-"):
            pass
    except OSError as err:
        raise OutputError(path, f"cannot write in {existing} ({err.strerror or err}); choose another place") from None


def _fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)
