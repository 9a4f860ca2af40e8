"""Which signers GANTrace trusts when it validates Content Credentials, and the reader settings that keep it offline.

Trust is explicit: the user's own anchors (`--c2pa-trust PEM` or GANTRACE_C2PA_TRUST) plus the C2PA trust list
shipped in artifacts/. c2pa-python 0.38 carries no claim-signing trust list of its own (its native library embeds
only two legacy time-stamp certificates), so without a list it trusts no signer at all. Reading never touches the
network: remote manifests and OCSP are not fetched and no host is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.weights import REPO_ROOT

TRUST_ENV = "GANTRACE_C2PA_TRUST"
SHIPPED_LIST = REPO_ROOT / "artifacts" / "c2pa-trust-list.pem"
SHIPPED_LIST_SOURCE = ("the C2PA trust list (C2PA-TRUST-LIST.pem of the C2PA conformance programme, "
                       "c2pa-org/conformance-public at commit b9ffd204, 17 certificates, newest issued 2025-12-05)")
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
MAX_PEM_BYTES = 5_000_000


@dataclass(frozen=True)
class TrustAnchors:
    """The certificates a signature must chain to, and where each set came from (for the status panel)."""

    shipped_pem: str
    user_pem: str = ""
    user_source: str | None = None

    @property
    def description(self) -> str:
        """One line naming every list in force."""
        user = f"; your anchors from {self.user_source}" if self.user_pem else "; no anchors of your own"
        return f"{SHIPPED_LIST_SOURCE}{user}"

    def reader_settings(self) -> dict[str, Any]:
        """c2pa-python Context settings: validate and check trust, fetch nothing."""
        trust: dict[str, Any] = {"trust_anchors": self.shipped_pem}
        if self.user_pem:
            trust["user_anchors"] = self.user_pem
        return {"verify": {"verify_after_reading": True, "verify_trust": True, "ocsp_fetch": False,
                           "remote_manifest_fetch": False},
                "core": {"allowed_network_hosts": []},
                "trust": trust}


def trust_path(option: str | os.PathLike | None) -> str | None:
    """The user's anchors file: the option when given, else GANTRACE_C2PA_TRUST, else None."""
    value = option or os.environ.get(TRUST_ENV) or None
    return str(value) if value else None


def load_trust(user_path: str | os.PathLike | None = None, shipped: Path = SHIPPED_LIST) -> TrustAnchors:
    """The shipped list plus the user's PEM anchors; a missing or non-PEM file is one-line bad input."""
    shipped_pem = _read_pem(shipped, "the shipped C2PA trust list") if shipped.is_file() else ""
    if not user_path:
        return TrustAnchors(shipped_pem=shipped_pem)
    path = Path(user_path)
    return TrustAnchors(shipped_pem=shipped_pem, user_pem=_read_pem(path, f"--c2pa-trust {path}"),
                        user_source=str(path))


def _read_pem(path: Path, what: str) -> str:
    if not path.is_file():
        raise InputError(f"{what}: no such file")
    if path.stat().st_size > MAX_PEM_BYTES:
        raise InputError(f"{what}: {path.stat().st_size:,} bytes is too large for a list of PEM certificates")
    text = path.read_bytes().decode("ascii", errors="replace")
    if PEM_BEGIN not in text:
        raise InputError(f"{what}: holds no PEM certificate ({PEM_BEGIN} ... lines)")
    return text
