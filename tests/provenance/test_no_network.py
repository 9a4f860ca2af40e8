"""Reading provenance never touches the network: not from Python (the socket layer is patched to fail), and not
from c2pa's native library (a remote manifest on a local server is never requested, though the library's defaults
would fetch it)."""

from __future__ import annotations

import http.server
import io
import socket
import threading

import pytest

from made_files import CHAIN, remote_manifest_face
from provenance.c2pa_manifest import ManifestReader
from provenance.read import read_provenance
from provenance.trust import load_trust


@pytest.fixture
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("provenance reading opened a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def local_server():
    """An HTTP server on 127.0.0.1 that records every path asked for (and answers 404)."""
    asked: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", asked
    server.shutdown()
    server.server_close()


def test_every_made_file_reads_with_the_socket_layer_refusing(made, no_sockets):
    reader = ManifestReader(load_trust(CHAIN))
    results = {name: read_provenance(path.read_bytes(), path.name, reader) for name, path in made.items()}
    assert results["signed"].votes_fake and results["altered"].content_credentials.validation == "invalid"
    assert all(not found.notes for found in results.values())


def test_a_remote_manifest_is_never_fetched(local_server):
    import c2pa

    base, asked = local_server
    data = remote_manifest_face(f"{base}/credentials-store")
    found = read_provenance(data, "remote.jpg", ManifestReader(load_trust(CHAIN)))
    assert asked == []
    assert found.content_credentials is None and not found.votes_fake
    assert any("stored remotely and were not fetched" in note for note in found.notes)
    with pytest.raises(c2pa.C2paError):  # the library's defaults would have asked the server: the test can see it
        c2pa.Reader(io.BytesIO(data), context=c2pa.Context())
    assert asked == ["/credentials-store"]
