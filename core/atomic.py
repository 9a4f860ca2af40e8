"""Atomic file writes: a reader, or a run resumed after a kill, sees the old file or the complete new one, never half.

Every writer of a file that something else reads back (latent shards, manifests, model artifacts, checkpoints,
reports) goes through here, so the temp-file-and-rename rule lives in one place. Temp files sit beside their
target (a rename is atomic only within one file system) and start with TEMP_PREFIX, so a folder's leftovers from a
killed run can be found and removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".partial-"


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temp path beside `path` for any writer (torch.save, joblib, safetensors); renamed over `path` on success.

    On an exception the temp file is deleted and `path` is left as it was. The file gets mode 0644 (mkstemp makes
    0600, which would hide a shared artifact from other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.")
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, 0o644)
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, document: Any) -> None:
    """Replace `path` with `document` as indented JSON (values JSON cannot hold, such as paths, become strings)."""
    write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
