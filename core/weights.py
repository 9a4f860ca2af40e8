"""The one place that knows where every external weight lives, its checksum and its licence.

A missing weight must never surface as a crash deep inside a stage: `resolve` either returns a verified local
file or raises `WeightUnavailableError`, whose message says what the weight is, where it comes from and the
command that fetches it. Files live under GANTRACE_HOME (default ~/.cache/gantrace); Hub files use the Hugging
Face cache (or GANTRACE_HOME/hub when GANTRACE_HOME is set), so HF_HUB_OFFLINE and the usual HF variables apply.

A download never hangs start-up: connecting and every read wait at most `download_timeout()` seconds
(GANTRACE_DOWNLOAD_TIMEOUT, default 10), and offline (HF_HUB_OFFLINE=1 or `download=False`) no connection is
attempted. A "converted" weight is a file GANTrace makes from third-party files (GANOrigin's pickles) only when the
user consents; `resolve` finds it under GANTRACE_HOME but never fetches it, `fetch_files` downloads its sources.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
REGISTRY_PATH = REPO_ROOT / "artifacts" / "weights.json"
KINDS = ("hub", "url", "package", "local", "converted")
DEFAULT_DOWNLOAD_TIMEOUT_S = 10.0
HUB_URI_PREFIX = "hf://"


class WeightUnavailableError(RuntimeError):
    """A registered weight that is not on disk and cannot be fetched now."""

    def __init__(self, name: str, reason: str, source: str = "", fetch: str = ""):
        self.weight = name
        self.reason = reason
        message = f"weight '{name}' is unavailable: {reason}"
        if source:
            message += f"; it comes from {source}"
        if fetch:
            message += f"; fetch it with: {fetch}"
        super().__init__(message)


@dataclass(frozen=True)
class WeightSpec:
    name: str
    kind: str
    description: str = ""
    licence: str = ""
    used_by: str = ""
    repo_id: str | None = None
    filename: str | None = None
    files: tuple[str, ...] | None = None
    revision: str | None = None
    url: str | None = None
    package: str | None = None
    package_path: str | None = None
    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    origin: str | None = None  # where a `local` file not made in this repository came from (e.g. a staged Space's)

    @property
    def source(self) -> str:
        if self.kind == "hub":
            return f"the Hugging Face Hub repo {self.repo_id}, file {self.filename}, revision {self.revision}"
        if self.kind == "url":
            return self.url or ""
        if self.kind == "package":
            return f"the pip package {self.package} ({self.package_path})"
        if self.kind == "converted":
            return (f"the Hugging Face Hub repo {self.repo_id}, files {', '.join(self.files or ())}, revision "
                    f"{self.revision}, converted by GANTrace into GANTRACE_HOME/{self.path}")
        return f"this repository ({self.path})" + (f", from {self.origin}" if self.origin else "")

    @property
    def fetch_command(self) -> str:
        if self.kind == "package":
            return f"pip install {self.package}"
        if self.kind == "local":
            return "git checkout the repository's artifacts/ folder (or retrain it, see the README)"
        if self.kind == "converted":
            return f"python scripts/download_weights.py --name {self.name} --trust-foreign-pickle"
        if self.name.startswith(HUB_URI_PREFIX):
            return "rerun online (without --offline, HF_HUB_OFFLINE unset) to download it into the Hugging Face cache"
        return f"python scripts/download_weights.py --name {self.name}"


def load_registry(path: Path | None = None) -> dict[str, WeightSpec]:
    """Read artifacts/weights.json into specs, refusing unknown fields so typos do not pass silently."""
    path = Path(path) if path else REGISTRY_PATH
    entries = json.loads(path.read_text(encoding="utf-8"))["weights"]
    known = {f.name for f in fields(WeightSpec)}
    registry = {}
    for entry in entries:
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"{path}: weight {entry.get('name')!r} has unknown fields {sorted(unknown)}")
        spec = WeightSpec(**{**entry, "files": tuple(entry["files"])} if "files" in entry else entry)
        if spec.kind not in KINDS:
            raise ValueError(f"{path}: weight {spec.name!r} has kind {spec.kind!r}, not one of {KINDS}")
        registry[spec.name] = spec
    return registry


def registry_default(role: str, path: Path | None = None) -> str | None:
    """The registered weight that plays `role` (e.g. "attributor") when the user names none: the registry's
    `defaults` map, so that a copy of the registry (a published Space's) can name its own without code changes."""
    path = Path(path) if path else REGISTRY_PATH
    document = json.loads(path.read_text(encoding="utf-8"))
    name = document.get("defaults", {}).get(role)
    if name is not None and name not in {entry.get("name") for entry in document["weights"]}:
        raise ValueError(f"{path}: the default {role} {name!r} is not a registered weight")
    return name


def gantrace_home() -> Path:
    return Path(os.environ.get("GANTRACE_HOME") or Path.home() / ".cache" / "gantrace")


_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def sha256_file(path: Path) -> str:
    """The file's sha256, computed once per process for a given (path, size, mtime): status panels and loaders
    ask again and again, and the e4e checkpoint is 1.2 GB."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _HASHES_LOCK:
        if key not in _HASHES:
            _HASHES[key] = _digest(resolved)
        return _HASHES[key]


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name: str, download: bool = True, registry: dict[str, WeightSpec] | None = None) -> Path:
    """Return a verified local file for a registered weight, downloading it when allowed."""
    registry = registry if registry is not None else load_registry()
    if name not in registry:
        raise KeyError(f"no weight named {name!r} in the registry; known: {', '.join(sorted(registry))}")
    spec = registry[name]
    local = _local_path(spec)
    if local is not None and local.is_file():
        return _verified(spec, local)
    if spec.kind in ("package", "local", "converted"):
        raise WeightUnavailableError(name, "the file is not installed", spec.source, spec.fetch_command)
    if spec.kind == "hub":
        cached = _hub_download(spec, local_only=True)
        if cached is not None:
            return _verified(spec, cached)
    if not download or _offline():
        why = "it is not in the local cache and downloads are disabled" if not download else \
            "it is not in the local cache and HF_HUB_OFFLINE is set"
        raise WeightUnavailableError(name, why, spec.source, spec.fetch_command)
    if spec.kind == "hub":
        fetched = _hub_download(spec, local_only=False)
    else:
        fetched = _url_download(spec, local)
    return _verified(spec, fetched)


def names_a_file(name_or_path: str | Path) -> bool:
    """Whether a model's weights are named by a file rather than a registry name: a Path, or a string that is a
    file or looks like a path (a slash or a suffix)."""
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or bool(Path(text).suffix) or Path(text).is_file()


def resolve_name_or_path(name_or_path: str | Path, download: bool = False) -> Path:
    """A model's weights named either way: a file as given (its loader names it when missing), else a registry
    name through `resolve` (verified, fetched when allowed; WeightUnavailableError when absent)."""
    return Path(name_or_path) if names_a_file(name_or_path) else resolve(str(name_or_path), download=download)


def weight_sha256(name: str, path: Path, registry: dict[str, WeightSpec] | None = None) -> str:
    """The sha256 of a resolved weight: its pin (which `resolve` already verified) or, unpinned, the file's own hash,
    so a multi-GB file is never hashed twice just to be named in a verdict."""
    registry = registry if registry is not None else load_registry()
    return registry[name].sha256 or sha256_file(path)


def weight_status(name: str, registry: dict[str, WeightSpec] | None = None) -> str:
    """'present', 'missing' or 'checksum mismatch', without downloading anything."""
    try:
        resolve(name, download=False, registry=registry)
    except WeightUnavailableError as err:
        return "checksum mismatch" if "checksum" in err.reason else "missing"
    return "present"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def _local_path(spec: WeightSpec) -> Path | None:
    """Where a weight is found without any network: the package file, the repo file, or GANTRACE_HOME/weights."""
    if spec.kind == "package":
        found = importlib.util.find_spec(spec.package) if spec.package else None
        if found is None or not found.submodule_search_locations:
            return None
        return Path(list(found.submodule_search_locations)[0]) / spec.package_path
    if spec.kind == "local":
        return REPO_ROOT / spec.path
    if spec.kind == "converted":
        return converted_path(spec)
    return gantrace_home() / "weights" / spec.name / Path(spec.filename or spec.url.rsplit("/", 1)[-1]).name


def _verified(spec: WeightSpec, path: Path) -> Path:
    if spec.sha256:
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise WeightUnavailableError(
                spec.name, f"checksum mismatch for {path} (sha256 {actual}, expected {spec.sha256}); delete it",
                spec.source, spec.fetch_command)
    return path


def _hub_download(spec: WeightSpec, local_only: bool, filename: str | None = None) -> Path | None:
    """One Hub file of a weight from the cache, or (not `local_only`) downloaded with the bounded time-out.

    huggingface_hub retries a failed metadata request for up to a minute when nothing is cached, so the file's
    metadata is first asked for once with our time-out: a blocked host fails in seconds, not minutes. The body's
    read time-out is huggingface_hub's own (HF_HUB_DOWNLOAD_TIMEOUT, 10 s by default)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import LocalEntryNotFoundError

    filename = filename or spec.filename
    cache_dir = gantrace_home() / "hub" if os.environ.get("GANTRACE_HOME") else None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        if not local_only:
            get_hf_file_metadata(hf_hub_url(spec.repo_id, filename, revision=spec.revision, endpoint=endpoint),
                                 timeout=download_timeout(), retry_on_errors=False)
        return Path(hf_hub_download(spec.repo_id, filename, revision=spec.revision, cache_dir=cache_dir,
                                    local_files_only=local_only, endpoint=endpoint, etag_timeout=download_timeout()))
    except LocalEntryNotFoundError:
        if local_only:
            return None
        raise WeightUnavailableError(spec.name, "the Hub cannot be reached (offline?)", spec.source,
                                     spec.fetch_command) from None
    except Exception as err:  # noqa: BLE001 - any Hub/HTTP failure becomes the one registry error
        raise WeightUnavailableError(spec.name, _failure_reason(err), spec.source, spec.fetch_command) from None


def _url_download(spec: WeightSpec, target: Path) -> Path:
    """Stream to a temp file beside the target, check it, then rename: a killed download leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(spec.url, timeout=download_timeout()) as response:
            total = int(response.headers.get("Content-Length") or 0) or spec.size
            with tqdm(total=total, unit="B", unit_scale=True, desc=spec.name) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        _verified(spec, temp)
        os.replace(temp, target)
    except (urllib.error.URLError, OSError) as err:
        raise WeightUnavailableError(spec.name, _failure_reason(err), spec.source, spec.fetch_command) from None
    finally:
        temp.unlink(missing_ok=True)
    return target


def download_timeout() -> float:
    """Seconds a download waits to connect and for each block (GANTRACE_DOWNLOAD_TIMEOUT, default 10), so a
    blocked or silent host costs start-up seconds, not minutes."""
    value = os.environ.get("GANTRACE_DOWNLOAD_TIMEOUT", "")
    try:
        timeout = float(value) if value else DEFAULT_DOWNLOAD_TIMEOUT_S
    except ValueError:
        raise ValueError(f"GANTRACE_DOWNLOAD_TIMEOUT={value!r} is not a number of seconds") from None
    if not timeout > 0:
        raise ValueError(f"GANTRACE_DOWNLOAD_TIMEOUT={value!r} must be a positive number of seconds")
    return timeout


def converted_path(spec: WeightSpec) -> Path:
    """Where GANTrace keeps the file it converts a "converted" weight's sources into (under GANTRACE_HOME)."""
    return gantrace_home() / spec.path


def fetch_files(name: str, download: bool = True, registry: dict[str, WeightSpec] | None = None) -> list[Path]:
    """The source files of a multi-file Hub weight (`files` in its entry), from the cache or downloaded.

    Only fetches bytes: it never opens them, so the caller decides whether (and with whose consent) to load them."""
    registry = registry if registry is not None else load_registry()
    spec = registry[name]
    if not spec.files or not spec.repo_id:
        raise ValueError(f"weight {name!r} lists no Hub files to fetch")
    paths = []
    for filename in spec.files:
        cached = _hub_download(spec, local_only=True, filename=filename)
        if cached is None:
            if not download or _offline():
                raise WeightUnavailableError(name, f"{filename} is not in the local cache and downloads are "
                                             "disabled (offline)", spec.source, spec.fetch_command)
            cached = _hub_download(spec, local_only=False, filename=filename)
        paths.append(cached)
    return paths


def parse_hub_uri(uri: str, default_filename: str) -> tuple[str, str, str | None]:
    """(repo_id, filename, revision) of hf://OWNER/NAME[/PATH/IN/REPO][@REVISION]; the file defaults to
    `default_filename`, the revision to the repo's main branch."""
    if not uri.startswith(HUB_URI_PREFIX):
        raise ValueError(f"{uri}: not an {HUB_URI_PREFIX}OWNER/NAME[@REVISION] address")
    location, at, revision = uri[len(HUB_URI_PREFIX):].partition("@")
    owner, _, rest = location.partition("/")
    name, _, filename = rest.partition("/")
    if not owner or not name or (at and not revision):
        raise ValueError(f"{uri}: expected {HUB_URI_PREFIX}OWNER/NAME[/FILE][@REVISION]")
    return f"{owner}/{name}", filename or default_filename, revision or None


def resolve_hub_uri(uri: str, default_filename: str, download: bool = True) -> Path:
    """The local file for an hf:// address: from the Hugging Face cache, else downloaded (bounded time-out) unless
    `download` is False or HF_HUB_OFFLINE is set, in which case nothing touches the network."""
    repo_id, filename, revision = parse_hub_uri(uri, default_filename)
    spec = WeightSpec(name=uri, kind="hub", repo_id=repo_id, filename=filename, revision=revision)
    cached = _hub_download(spec, local_only=True)
    if cached is not None:
        return cached
    if not download or _offline():
        raise WeightUnavailableError(uri, "it is not in the Hugging Face cache and downloads are off", spec.source,
                                     spec.fetch_command)
    return _hub_download(spec, local_only=False)


def _failure_reason(err: BaseException) -> str:
    """One line for a failed download; a time-out says how to wait longer or start offline."""
    if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError) \
            or "Timeout" in type(err).__name__:
        return (f"download failed: no answer within {download_timeout():g} s (check the network; set "
                "GANTRACE_DOWNLOAD_TIMEOUT to wait longer, or HF_HUB_OFFLINE=1 to start without downloading)")
    return "download failed: " + " ".join(f"{type(err).__name__}: {err}".split())
