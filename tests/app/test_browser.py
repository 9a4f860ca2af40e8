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
from playwright.sync_api import Locator, Page, expect, sync_playwright

import app
from pipeline import wording
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


def wait_for_verdict(page: Page) -> Locator:
    """The verdict card once it holds a final answer (a failure card ends the wait too, failing at once)."""
    card = page.locator("#verdict-card")
    expect(card).to_contain_text(re.compile(r"Real photo|GAN-generated|Generated|No decision|Could not"),
                                 timeout=VERDICT_TIMEOUT_MS)
    page.wait_for_timeout(1000)  # let the probability bars finish drawing before a screenshot
    return card


def save_screenshot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def fits(locator: Locator) -> bool:
    """Whether an element shows all of its text (nothing cut off by its box)."""
    return locator.evaluate("e => e.scrollWidth <= e.clientWidth && e.scrollHeight <= e.clientHeight")


def required_chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium not found at /usr/bin/chromium (install it: apt-get install -y chromium; "
                    ".ci/run does) or set GANTRACE_CHROMIUM")
    return binary


def test_browser_upload_says_the_verdict_once_with_the_detail_one_click_away(real_face, tmp_path):
    """The reason line is on the page exactly once; the technical detail is in a closed disclosure that one click
    opens; the probabilities panel has its fixed title and no heading of its own."""
    binary = required_chromium()
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "app-screenshot.png")
    pipe = tiny_pipeline(tmp_path / "models")
    said = wording.statement(pipe.analyze_one(str(real_face), name=real_face.name).to_dict())  # what the page shows
    demo = app.build_demo(pipe)
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        with app_page(binary, local_url, real_face) as page:
            card = wait_for_verdict(page)
            save_screenshot(page, screenshot)
            expect(card).to_contain_text(said.headline)
            assert page.locator("body").inner_text().count(said.reason) == 1
            assert real_face.name in card.inner_text()
            detail = page.locator("#verdict-detail")
            expect(detail.locator("summary")).to_have_text("Technical detail")
            expect(detail.get_by_text(said.details[0], exact=True)).to_be_hidden()
            detail.locator("summary").click()
            expect(detail.get_by_text(said.details[0], exact=True)).to_be_visible()
            assert page.locator("body").inner_text().count(said.reason) == 1
            bars = page.locator("#bars")
            expect(bars.locator("label[data-testid=block-label]")).to_have_text(wording.PROBABILITIES_TITLE)
            assert bars.locator("[data-testid=label-output-value]").count() == 0  # no bar named again in large type
    finally:
        demo.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def two_face_picture(real_face: Path, path: Path) -> Path:
    """The committed face and its mirror image side by side: dlib finds two faces."""
    face = Image.open(real_face).convert("RGB")
    canvas = Image.new("RGB", (2 * face.width + 20, face.height + 20), (200, 200, 200))
    canvas.paste(face, (5, 10))
    canvas.paste(ImageOps.mirror(face), (face.width + 15, 10))
    canvas.save(path)
    return path


def test_browser_shows_two_numbered_faces_with_a_legend_that_fits_and_opens_each_face_evidence(real_face, tmp_path):
    binary = required_chromium()
    image = two_face_picture(real_face, tmp_path / "two-faces.png")
    demo = app.build_demo(tiny_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        with app_page(binary, local_url, image) as page:
            expect(page.locator("#verdict-card")).to_contain_text("2 face(s)", timeout=VERDICT_TIMEOUT_MS)
            page.get_by_role("tab", name="Faces").click()
            expect(page.locator("#faces-overview img")).to_be_visible()
            legend = page.locator("#faces-legend")
            expect(legend).to_have_text(wording.FACE_LEGEND)
            assert fits(legend.locator("p")) and fits(page.locator("#faces-overview label[data-testid=block-label]"))
            thumbnails = page.locator("#faces-gallery button.thumbnail-item")
            expect(thumbnails).to_have_count(2)
            evidence = page.locator("#face-evidence")
            expect(evidence).to_contain_text("Face 1")
            for number in (2, 1):
                thumbnails.nth(number - 1).click()
                expect(evidence).to_contain_text(f"Face {number}")
                expect(evidence).to_contain_text("Latent SVM")
            save_screenshot(page, Path(os.environ.get(SCREENSHOT_ENV + "_FACES") or tmp_path / "faces.png"))
    finally:
        demo.close()


def test_browser_says_no_decision_once_when_only_unskilled_branches_are_loaded(real_face, tmp_path):
    """Every branch runs, none has the skill to vote: the card says no decision and why, once, with the skill
    figures behind the disclosure; the face panel refers to the card; no element says "Unknown generator", and the
    faces are numbered from 1."""
    binary = required_chromium()
    demo = app.build_demo(unskilled_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    reason = "checks that gave an answer have not proved reliable"
    try:
        with app_page(binary, local_url, real_face) as page:
            card = wait_for_verdict(page)
            expect(card).to_contain_text("No decision: none of the loaded checks is reliable enough to call this "
                                         "face real or generated")
            expect(page.locator("#bars label[data-testid=block-label]")).to_have_text(wording.OWN_READINGS_TITLE)
            assert "held-out AUC" not in page.locator("body").inner_text()
            page.get_by_role("tab", name="Faces").click()
            expect(page.locator("#faces-overview img")).to_be_visible()
            expect(page.locator("#faces-gallery")).to_contain_text("1: No decision")
            evidence = page.locator("#face-evidence")
            expect(evidence).to_contain_text("Face 1 (the verdict is about this face): No decision")
            expect(evidence).to_contain_text("The verdict card says why.")
            page.locator("#faces-gallery button.thumbnail-item").first.click()
            expect(evidence).to_contain_text("Face 1")
            page.locator("#verdict-detail summary").click()
            skill = card.get_by_text(re.compile("Spectral DCT baseline: no real/fake skill: held-out AUC"))
            expect(skill).to_be_visible()
            text, captions = page.locator("body").inner_text(), page.locator("#faces-gallery").inner_text()
            assert text.count(reason) == 1 and text.count("Spectral DCT baseline: no real/fake skill") == 1, text
            assert "Unknown generator" not in text and "Face 0" not in text, text
            assert not re.search(r"(^|\n)0: ", captions), captions
    finally:
        demo.close()


def test_browser_shows_the_provenance_panel_of_a_face_signed_by_a_trusted_generator(tmp_path):
    """A face signed with the C2PA test chain, with the chain as the user's trust anchor: the card says generated and
    why, once; the provenance panel says who signed it, that the signer is trusted and what the file declares."""
    from made_files import CHAIN, signed_face

    binary = required_chromium()
    image = signed_face(tmp_path / "signed.jpg")
    pipe = tiny_pipeline(tmp_path / "models", branch_options={"provenance": {"trust": str(CHAIN)}})
    said = wording.statement(pipe.analyze_one(str(image), name=image.name).to_dict())
    demo = app.build_demo(pipe)
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True)
    try:
        with app_page(binary, local_url, image) as page:
            card = wait_for_verdict(page)
            expect(card).to_contain_text(said.headline)
            assert said.headline.startswith("Generated") and "trusted signer" in said.reason
            assert page.locator("body").inner_text().count(said.reason) == 1
            panel = page.locator("#provenance")
            expect(panel).to_contain_text("Provenance: what the file says about itself")
            expect(panel).to_contain_text("Content Credentials: signed by C2PA Signer (C2PA Test Signing Cert), "
                                          "trusted (on the C2PA trust list or your --c2pa-trust anchors)")
            expect(panel).to_contain_text("declares: created by a generative model (trainedAlgorithmicMedia)")
            expect(panel).to_contain_text("Vote: fake")
            save_screenshot(page, tmp_path / "provenance.png")
    finally:
        demo.close()
