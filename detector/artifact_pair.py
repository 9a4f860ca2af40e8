"""Our trained artifacts are pairs: the weights (safetensors or npz, never pickle) and a JSON document beside them
with the same stem (format, version, config, threshold, skill). One reader checks both, for every such model.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_artifact_pair(path: Path, weights_suffix: str, file_format: str, version: int, what: str
                       ) -> tuple[Path, dict]:
    """(weights path, JSON document) of the artifact at `path` (either file, or the stem); a missing half or a
    document of another format or version is an error naming the file."""
    weights = Path(path).with_suffix(weights_suffix)
    document_path = weights.with_suffix(".json")
    for required in (weights, document_path):
        if not required.is_file():
            raise FileNotFoundError(f"{required}: missing ({what} is a {weights_suffix} plus a .json)")
    document = json.loads(document_path.read_text(encoding="utf-8"))
    if document.get("format") != file_format or document.get("version") != version:
        raise ValueError(f"{document_path}: not a {file_format} v{version} file")
    return weights, document
