"""The app in a real browser: headless Chromium uploads a face, the verdict card appears, a screenshot is saved.

Chromium is driven over the Chrome DevTools Protocol. Python has no websocket client in its standard library and
the project adds no dependency for one test, so `CdpSession` speaks the few parts of RFC 6455 that CDP needs
(client handshake, masked text frames out, unmasked text frames in, ping/close). Skipped when /usr/bin/chromium is
absent (.ci/run installs it with `apt-get install -y chromium`); GANTRACE_CHROMIUM points to another binary.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

import app
from test_pipeline import small_face_file, tiny_pipeline

SCREENSHOT_ENV = "GANTRACE_SCREENSHOT"  # where to keep the screenshot, e.g. docs/app-screenshot.png for the README
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1500", "--remote-debugging-port=0",
                  "--remote-allow-origins=*"]


def chromium_binary() -> str | None:
    candidate = os.environ.get("GANTRACE_CHROMIUM", "/usr/bin/chromium")
    return candidate if Path(candidate).is_file() else shutil.which("chromium")


class CdpSession:
    """One DevTools websocket: `call(method, **params)` returns the result; events are skipped."""

    def __init__(self, ws_url: str, timeout: float = 60.0):
        url = urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        header, self.buffer = response.split(b"\r\n\r\n", 1)
        if b" 101 " not in header.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket handshake refused: {header[:200]!r}")
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            message = json.loads(self._receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        self.sock.close()

    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _receive(self) -> bytes:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x9:
                self._send(payload, opcode=0xA)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the websocket")
            message += payload
            if first & 0x80:
                return message


def start_chromium(binary: str, user_data_dir: Path, url: str) -> tuple[subprocess.Popen, str]:
    """Start headless Chromium on `url`; return the process and the page's DevTools websocket URL."""
    process = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    port = None
    while port is None and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise RuntimeError(f"chromium exited with code {process.returncode}")
        found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        port = int(found.group(1)) if found else None
    if port is None:
        process.kill()
        raise RuntimeError("chromium did not print its DevTools address within 60 s")
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            pages = [t for t in json.load(response) if t.get("type") == "page"]
        if pages:
            return process, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("chromium opened no page")


def wait_for(session: CdpSession, expression: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = session.evaluate(expression)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def upload_and_screenshot(binary: str, url: str, image: Path, screenshot: Path, user_data_dir: Path,
                          timeout: float = 240.0) -> str:
    """Open the app, upload `image` through the file input, wait for the verdict card, save a PNG screenshot."""
    process, ws_url = start_chromium(binary, user_data_dir, url)
    session = CdpSession(ws_url)
    try:
        session.call("Runtime.enable")
        wait_for(session, "!!document.querySelector('#upload input[type=file]')", 60, "the upload box")
        root = session.call("DOM.getDocument", depth=-1, pierce=True)["root"]["nodeId"]
        node = session.call("DOM.querySelector", nodeId=root, selector="#upload input[type=file]")["nodeId"]
        session.call("DOM.setFileInputFiles", files=[str(image)], nodeId=node)
        card = wait_for(session, "(() => { const t = document.querySelector('#verdict-card')?.innerText || '';"
                                 " return /P\\(fake\\)|decision|Could not/.test(t) ? t : ''; })()",
                        timeout, "the verdict card")
        time.sleep(1.0)
        shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return card
    finally:
        session.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_browser_upload_shows_the_verdict_card_and_saves_a_screenshot(faces_dir, tmp_path):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found at /usr/bin/chromium (install it: apt-get install -y chromium; "
                    ".ci/run does) or set GANTRACE_CHROMIUM")
    face = small_face_file(faces_dir, tmp_path)
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "app-screenshot.png")
    demo = app.build_demo(tiny_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        card = upload_and_screenshot(binary, local_url, face, screenshot, tmp_path / "chromium")
    finally:
        demo.close()
    assert "P(fake)" in card, card
    assert face.name in card
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
