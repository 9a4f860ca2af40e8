"""The app in a real browser: headless Chromium uploads a face, the verdict card appears, a screenshot is saved.

Playwright drives the system's Chromium (Debian's /usr/bin/chromium, or GANTRACE_CHROMIUM) through
`executable_path`: no browser is downloaded, so `playwright install` is never needed. Skipped with a message when
the binary is absent (.ci/run installs it with `apt-get install -y chromium`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from playwright.sync_api import Page, expect, sync_playwright

import app
from tiny_models import tiny_pipeline, unskilled_pipeline

SCREENSHOT_ENV = "GANTRACE_SCREENSHOT"  # where to keep the screenshot, e.g. docs/app-screenshot.png for the README
# No sandbox (CI runs as root), no GPU, and nothing that phones home: the test must work offline.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
VERDICT_TIMEOUT_MS = 240_000  # the tiny models answer in seconds; a loaded CI machine can take minutes


def chromium_binary() -> str | None:
    candidate = os.environ.get("GANTRACE_CHROMIUM", "/usr/bin/chromium")
    return candidate if Path(candidate).is_file() else shutil.which("chromium")


@contextmanager
def app_page(binary: str, url: str, image: Path) -> Iterator[Page]:
    """The app open in headless Chromium with `image` chosen in the upload field (which starts the analysis)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.goto(url)
            page.locator("#upload input[type=file]").set_input_files(str(image))
            yield page
        finally:
            browser.close()


def upload_and_screenshot(binary: str, url: str, image: Path, screenshot: Path) -> str:
    """Open the app, upload `image` through the file input, wait for the verdict card, save a PNG screenshot."""
    with app_page(binary, url, image) as page:
        card = page.locator("#verdict-card")
        # Any final card ends the wait (a failure card fails the assertion at once instead of timing out).
        expect(card).to_contain_text(re.compile(r"P\(fake\)|decision|Could not"), timeout=VERDICT_TIMEOUT_MS)
        page.wait_for_timeout(1000)  # let the probability bars finish drawing before the screenshot
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        return card.inner_text()


def required_chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found at /usr/bin/chromium (install it: apt-get install -y chromium; "
                    ".ci/run does) or set GANTRACE_CHROMIUM")
    return binary


def test_browser_upload_shows_the_verdict_card_and_saves_a_screenshot(real_face, tmp_path):
    binary = required_chromium()
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "app-screenshot.png")
    demo = app.build_demo(tiny_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        card = upload_and_screenshot(binary, local_url, real_face, screenshot)
    finally:
        demo.close()
    assert "P(fake)" in card, card
    assert real_face.name in card
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def two_face_picture(real_face: Path, path: Path) -> Path:
    """The committed face and its mirror image side by side: dlib finds two faces."""
    face = Image.open(real_face).convert("RGB")
    canvas = Image.new("RGB", (2 * face.width + 20, face.height + 20), (200, 200, 200))
    canvas.paste(face, (5, 10))
    canvas.paste(ImageOps.mirror(face), (face.width + 15, 10))
    canvas.save(path)
    return path


def test_browser_shows_two_numbered_faces_and_opens_each_face_evidence(real_face, tmp_path):
    binary = required_chromium()
    image = two_face_picture(real_face, tmp_path / "two-faces.png")
    demo = app.build_demo(tiny_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        with app_page(binary, local_url, image) as page:
            expect(page.locator("#verdict-card")).to_contain_text("2 face(s)", timeout=VERDICT_TIMEOUT_MS)
            page.get_by_role("tab", name="Faces").click()
            expect(page.locator("#faces-overview img")).to_be_visible()
            thumbnails = page.locator("#faces-gallery button.thumbnail-item")
            expect(thumbnails).to_have_count(2)
            evidence = page.locator("#face-evidence")
            expect(evidence).to_contain_text("Face 1")
            for number in (2, 1):
                thumbnails.nth(number - 1).click()
                expect(evidence).to_contain_text(f"Face {number}")
                expect(evidence).to_contain_text("Latent SVM")
            screenshot = Path(os.environ.get(SCREENSHOT_ENV + "_FACES") or tmp_path / "faces.png")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        demo.close()


def test_browser_shows_no_decision_when_only_unskilled_branches_are_loaded(real_face, tmp_path):
    """Every branch runs, none has the skill to vote: the headline, the caption and the face panel say no decision,
    no element says "Unknown generator", and the faces are numbered from 1."""
    binary = required_chromium()
    demo = app.build_demo(unskilled_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        with app_page(binary, local_url, real_face) as page:
            card = page.locator("#verdict-card")
            expect(card).to_contain_text("No real/fake decision", timeout=VERDICT_TIMEOUT_MS)
            expect(card).to_contain_text("Why there is no decision")
            expect(page.locator("#bars")).to_contain_text("not a vote")
            page.get_by_role("tab", name="Faces").click()
            expect(page.locator("#faces-overview img")).to_be_visible()
            expect(page.locator("#faces-gallery")).to_contain_text("1: No decision")
            evidence = page.locator("#face-evidence")
            expect(evidence).to_contain_text("Face 1 (the verdict is about this face): No decision")
            page.locator("#faces-gallery button.thumbnail-item").first.click()
            expect(evidence).to_contain_text("Face 1")
            text, captions = page.locator("body").inner_text(), page.locator("#faces-gallery").inner_text()
            assert "Unknown generator" not in text and "Face 0" not in text, text
            assert not re.search(r"(^|\n)0: ", captions), captions
    finally:
        demo.close()
