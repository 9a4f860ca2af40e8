"""Stand-ins for a weight host on 127.0.0.1: a minimal Hugging Face Hub, a host that never answers, a refusing one.

The Hub stand-in answers `HEAD`/`GET /{repo}/resolve/{revision}/{file}` with the headers huggingface_hub needs
(X-Repo-Commit, ETag, Content-Length), so `hf_hub_download(..., endpoint=...)` runs its real code path against it.
Every server counts the connections it accepts, so a test can prove that nothing touched the network.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Hub(http.server.ThreadingHTTPServer):
    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.files = files
        self.connections = 0

    def get_request(self):
        self.connections += 1
        return super().get_request()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    server: _Hub

    def _headers(self) -> bytes | None:
        body = self.server.files.get(self.path.split("/resolve/", 1)[-1].split("/", 1)[-1])
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._headers()

    def do_GET(self) -> None:  # noqa: N802
        body = self._headers()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_hub(files: dict[str, bytes]) -> Iterator[_Hub]:
    """A Hub endpoint serving `files` (path in repo → bytes) for any repo and revision; its URL is `endpoint(hub)`."""
    hub = _Hub(files)
    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.shutdown()
        hub.server_close()


def endpoint(server: _Hub | socket.socket) -> str:
    host, port = server.server_address if isinstance(server, _Hub) else server.getsockname()
    return f"http://{host}:{port}"


@contextmanager
def silent_host() -> Iterator[socket.socket]:
    """A host whose kernel completes the TCP handshake but which never sends a byte: a hung or filtered server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener
    finally:
        listener.close()


def refusing_port() -> int:
    """A loopback port with nothing listening: connections are refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port
