"""The on-disk format of extracted W+ latents: a folder with `manifest.json` and `shard-NNNNN.npz` files.

Extraction over many images must survive being killed and must never silently mix latents made with different
settings, so:
- a shard covers a fixed slice of the sorted input list and is written atomically (temp file + rename), so a
  shard file either is complete or does not exist, and a re-run skips the shards that exist;
- shard bytes are a pure function of their content: the zip is written with a fixed timestamp (np.savez stamps
  the current time), so a killed-and-resumed run gives byte-identical shards to an uninterrupted one;
- the manifest records every setting that changes the latents; a re-run with different settings is refused.

Shard arrays (one row per augmented face): `latents` (N×styles×dim, float16 or float32), `labels`, `groups`,
`paths`, `sha256` (strings), `resolutions`, `jpeg_qualities` (0 = not re-encoded), `alignment_error` (of the
face the copies come from, a fraction of the crop side, lower is better; older shards call it `face_quality`,
and training reads neither); plus the images of the slice that gave no latent: `failed_paths`, `failed_labels`,
`failed_kinds` (the error's type) and `failed_reasons` (its one-line message).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import TEMP_PREFIX, write_bytes_atomic, write_json_atomic

FORMAT = "gantrace-latent-shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FAILURES_NAME = "failures.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

TRAINING_FIELDS = ("latents", "labels", "groups", "paths", "resolutions", "jpeg_qualities")
FAILURE_FIELDS = ("failed_paths", "failed_labels", "failed_kinds", "failed_reasons")


class ShardSettingsError(ValueError):
    """A shard folder that already holds latents made with other settings (or unknown files)."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def settings_digest(settings: dict[str, Any]) -> str:
    """A stable hash of the settings that determine shard content (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def inputs_digest(rows: list[tuple[str, str, str]]) -> str:
    """Hash of the sorted (path, label, group) list: part of the settings, since shard slices are indexed by it."""
    return hashlib.sha256(json.dumps(sorted(rows)).encode("utf-8")).hexdigest()


def open_shard_folder(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Create the folder and manifest, or check that an existing one was made with exactly these settings."""
    folder = Path(folder)
    settings = json.loads(json.dumps(settings))
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.exists():
        manifest = read_manifest(folder)
        if manifest["settings_sha256"] != settings_digest(settings):
            changed = _changed_keys(manifest["settings"], settings)
            raise ShardSettingsError(
                f"{folder} already holds latents made with different settings (changed: {', '.join(changed)}); "
                "use a new --out folder, or delete this one to start again")
        return manifest
    if folder.exists() and any(folder.iterdir()):
        raise ShardSettingsError(f"{folder} is not empty and has no {MANIFEST_NAME}; choose an empty --out folder")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": settings,
                "settings_sha256": settings_digest(settings),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "complete": False}
    write_json_atomic(manifest_path, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST_NAME}: not a latent shard folder (run extract_latents.py)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not a GANTrace latent manifest (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {manifest.get('format_version')}, this code reads "
                         f"{FORMAT_VERSION}; re-extract the latents")
    return manifest


def remove_partial_files(folder: Path) -> int:
    """Delete temp files a killed run left behind; they are never read, this only frees disk."""
    stale = list(Path(folder).glob(f"{TEMP_PREFIX}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz that np.load reads, byte-identical for identical arrays, via temp file + rename."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(value), allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())


def read_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@dataclass
class LatentSet:
    """Every row of a shard folder (optionally only some classes), ready for `LatentAttributor.fit`."""

    latents: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    paths: np.ndarray
    resolutions: np.ndarray
    jpeg_qualities: np.ndarray
    manifest: dict[str, Any]


def load_latent_set(folder: Path, classes: list[str] | None = None) -> LatentSet:
    """Read all shards of a finished extraction; refuses an unfinished one so training never sees half the data."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    expected = manifest["settings"]["num_shards"]
    missing = [shard_name(i) for i in range(expected) if not (folder / shard_name(i)).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: extraction is unfinished ({len(missing)} of {expected} shards missing, "
                                f"first {missing[0]}); re-run extract_latents.py with the same settings to finish")
    known = manifest["settings"]["classes"]
    if classes is not None:
        unknown = sorted(set(classes) - set(known))
        if unknown:
            raise ValueError(f"classes {unknown} are not in {folder} (it has {known})")
    parts: dict[str, list[np.ndarray]] = {key: [] for key in TRAINING_FIELDS}
    for index in range(expected):
        shard = read_shard(folder / shard_name(index))
        keep = np.isin(shard["labels"], classes) if classes is not None else slice(None)
        for key in TRAINING_FIELDS:
            parts[key].append(shard[key][keep])
    return LatentSet(**{key: np.concatenate(values) for key, values in parts.items()}, manifest=manifest)


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            changed += _changed_keys(old[key], new[key], f"{prefix}{key}.")
        elif old.get(key) != new.get(key):
            changed.append(f"{prefix}{key}")
    return changed
