"""The evidence report: every section, the verdict's own hashes, escaped strings, and nothing fetched from anywhere.

The report is parsed the way a browser reads it (html.parser) and, when Chromium is installed, opened in headless
Chromium with every connection sent to a dead proxy while a network log records what the page asks for.
`GANTRACE_REPORT_SCREENSHOT=docs/report-example.png` keeps the screenshot for the README.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import shutil
import subprocess
from collections import defaultdict
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from outputs import evidence_report as R
import pipeline as P
from pipeline import wording
from pipeline.wording import branch_title
from core.weights import load_registry
from tiny_models import png_bytes, tiny_pipeline, unskilled_pipeline

from runners import batch_scan as scan_script

SECTIONS = ["input", "verdict", "faces", "branches", "provenance", "pictures", "models", "warnings", "limits", "record"]
WHEN = datetime(2026, 11, 30, 4, 0, tzinfo=timezone.utc)
SCREENSHOT_ENV = "GANTRACE_REPORT_SCREENSHOT"
HOSTILE_NAME = '"><img src=http://evil.example/x.png onerror=alert(1)><script>alert(1)</script>cat\u202egnp.exe'
NETWORK_BLOCKED = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                   "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


class ReportReader(HTMLParser):
    """Tags with their attributes, the <style> text, and the text, table rows and pictures of each <section id>
    (and of the header, the footer and the <pre> of the verdict record)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.styles: list[str] = []
        self.text: dict[str, str] = defaultdict(str)
        self.rows: dict[str, list[list[str]]] = defaultdict(list)
        self.images: dict[str, list[str]] = defaultdict(list)
        self._section: str | None = None
        self._in_style = False
        self._cell: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "section":
            self._section = attributes.get("id")
        elif tag in ("header", "footer", "pre"):
            self._section = tag
        elif tag == "style":
            self._in_style = True
        elif self._section and tag == "tr":
            self.rows[self._section].append([])
        elif self._section and tag in ("td", "th"):
            self._cell = ""
        elif self._section and tag == "img":
            self.images[self._section].append(attributes.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("section", "header", "footer"):
            self._section = None
        elif tag == "pre":
            self._section = "record"
        elif tag == "style":
            self._in_style = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[self._section][-1].append(" ".join(self._cell.split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        if self._section:
            self.text[self._section] += data
        if self._cell is not None:
            self._cell += data


def drawn_group_photo() -> tuple[np.ndarray, list[list[int]]]:
    """Two cartoon faces on a soft background (no dataset image may enter the repository), and their boxes."""
    height, width = 384, 576
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    background = (np.array([196, 210, 222]) * (1 - ramp) + np.array([120, 136, 150]) * ramp)
    image = Image.fromarray(np.broadcast_to(background, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    boxes = []
    for cx, skin, hair in ((170, (233, 190, 160), (70, 45, 30)), (410, (200, 150, 115), (25, 20, 20))):
        draw.ellipse([cx - 120, 300, cx + 120, 470], fill=(60, 80, 110) if cx < 300 else (150, 60, 55))
        draw.ellipse([cx - 78, 70, cx + 78, 250], fill=hair)
        draw.ellipse([cx - 68, 95, cx + 68, 275], fill=skin)
        for side in (-1, 1):
            eye = cx + side * 28
            draw.ellipse([eye - 13, 160, eye + 13, 176], fill=(250, 250, 250))
            draw.ellipse([eye - 6, 162, eye + 6, 174], fill=(60, 90, 70))
            draw.line([eye - 16, 148, eye + 14, 145], fill=hair, width=4)
        draw.line([cx, 175, cx - 6, 212, cx + 6, 214], fill=tuple(c - 40 for c in skin), width=3)
        draw.arc([cx - 26, 215, cx + 26, 245], 20, 160, fill=(150, 60, 60), width=4)
        boxes.append([cx - 70, 90, cx + 70, 280])
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = np.random.default_rng(0).normal(0.0, 4.0, (height, width, 3))
    return np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8), boxes


def example_report_inputs() -> tuple[dict, P.EvidencePictures]:
    """The README example: a drawn two-face image and a hand-built verdict in the pipeline's format, per-face
    fields included; pictures come from the drawing through the real spectrum and overlay code."""
    from detector.gradcam import overlay
    from detector.spectrum import spectrum_picture

    pixels, boxes = drawn_group_photo()
    crops = [np.asarray(Image.fromarray(pixels).crop(tuple(box)).resize((256, 256))) for box in boxes]
    yy, xx = np.mgrid[0:pixels.shape[0], 0:pixels.shape[1]]
    heat = np.exp(-(((xx - 410) / 60.0) ** 2 + ((yy - 190) / 80.0) ** 2))
    pictures = P.EvidencePictures(aligned_face=crops[0], spectrum=spectrum_picture(pixels),
                                  gradcam=overlay(pixels, heat))
    pictures.faces = crops
    models = {name: spec.sha256 for name, spec in load_registry().items() if spec.sha256}
    models["latent-svm-example.skops"] = hashlib.sha256(b"example latent svm").hexdigest()
    clip_reason = ("clip-vit-l14-openai is missing: it is not in the local cache and downloads are disabled; "
                   "fetch it with: python scripts/download_weights.py --name clip-vit-l14-openai")
    face_probs = [{"real": 0.81, "progan": 0.05, "stylegan2": 0.09, "stylegan3": 0.05, "unknown": 0.0},
                  {"real": 0.04, "progan": 0.03, "stylegan2": 0.88, "stylegan3": 0.05, "unknown": 0.0}]
    faces = []
    for index, (box, probs) in enumerate(zip(boxes, face_probs)):
        label = max(probs, key=probs.get)
        faces.append({"box": box, "landmarks": [[0.0, 0.0]] * 68, "alignment_error": 0.021 + 0.008 * index,
                      "primary": index == 1, "label": label, "is_fake": label != "real",
                      "fake_probability": round(1 - probs["real"], 2), "probabilities": probs,
                      "evidence": {"latent_svm": {"probabilities": {k: v for k, v in probs.items()
                                                                    if k in ("progan", "stylegan2", "stylegan3")},
                                                  "label": label if label != "real" else None, "reason": None}}})
    verdict = {
        "schema_version": P.SCHEMA_VERSION,
        "file": "group-photo.png", "sha256": hashlib.sha256(png_bytes(pixels)).hexdigest(),
        "width": pixels.shape[1], "height": pixels.shape[0], "is_fake": True, "fake_probability": 0.96,
        "label": "stylegan2",
        "probabilities": {"real": 0.04, "progan": 0.03, "stylegan2": 0.88, "stylegan3": 0.05, "unknown": 0.0},
        "evidence": {"clip_probe": {"probabilities": None, "label": None, "reason": clip_reason},
                     "fingerprint_net": {"probabilities": {"real": 0.22, "progan": 0.11, "stylegan2": 0.58,
                                                           "stylegan3": 0.09}, "label": None, "reason": None},
                     "latent_svm": {"probabilities": face_probs[1], "label": "stylegan2", "reason": None}},
        "faces": faces,
        "warnings": ["2 faces found; the image is called fake because face 2 is confidently fake "
                     "(P(fake) 0.96)", "clip_probe did not run: its P(fake) is missing from the decision"],
        "timings_ms": {"total": 812.4}, "models": models}
    return verdict, pictures


def text_of(page: ReportReader) -> str:
    """Everything the report says outside its verdict record (the JSON keeps every string as the pipeline gave it)."""
    return "".join(text for section, text in page.text.items() if section not in ("record", "pre"))


def decoded(src: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:60]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src[len(prefix):]))))


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> P.Pipeline:
    return tiny_pipeline(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def drawn_verdict(pipe) -> P.Verdict:
    """A Verdict from the real pipeline (tiny random models) on the drawn image, with its pictures."""
    pixels, _ = drawn_group_photo()
    verdict = pipe.analyze_one(png_bytes(pixels), name="drawn.png", with_pictures=True)
    assert isinstance(verdict, P.Verdict)
    return verdict


def test_report_of_a_pipeline_verdict_has_every_section_and_the_verdict_hashes(drawn_verdict):
    verdict = drawn_verdict.to_dict()
    page = ReportReader(R.render_html(verdict, drawn_verdict.pictures, generated_at=WHEN, version="9.9"))
    assert [attrs["id"] for tag, attrs in page.tags if tag == "section"] == SECTIONS
    assert verdict["sha256"] in page.text["input"] and f"{verdict['width']} × {verdict['height']} px" in \
        page.text["input"]
    assert verdict["models"] and {row[0]: row[1] for row in page.rows["models"][1:]} == verdict["models"]
    assert json.loads(page.text["pre"]) == json.loads(json.dumps(verdict))
    for row, (branch, evidence) in zip(page.rows["branches"][1:], verdict["evidence"].items()):
        assert row[0] == branch_title(branch)
        assert row[1] == ("ran" if evidence["probabilities"] is not None else "did not run")
        if evidence["probabilities"] is None:
            assert row[3] == " ".join(wording.without_remedy(evidence["reason"]).split())
    assert "2026-11-30T04:00:00Z" in page.text["footer"] and "GANTrace 9.9" in page.text["footer"]
    assert "2026-11-30T04:00:00Z" in page.text["header"] and verdict["sha256"][:16] in page.text["header"]
    assert [decoded(src).shape for src in page.images["pictures"]] == [
        drawn_verdict.pictures.spectrum.shape, drawn_verdict.pictures.gradcam.shape]


def test_report_has_a_provenance_section_with_one_line_a_finding(tmp_path):
    """A face signed with the C2PA test chain, read with the chain as a trust anchor: the section says who signed,
    that the signer is trusted and what the file declares, in the words of the app's panel; the finding says it was
    generated because of that declaration; a file without provenance says so in the same section."""
    from made_files import CHAIN, signed_face
    from pipeline.branch import BranchEntry
    from pipeline.branches import ProvenanceBranch
    from pipeline.provenance_wording import provenance_lines

    config = P.PipelineConfig(device="cpu", branch_options={"provenance": {"trust": str(CHAIN)}})
    pipe = P.Pipeline(config, registry=(BranchEntry(ProvenanceBranch),))
    verdict = pipe.analyze_one(str(signed_face(tmp_path / "signed.jpg")), name="signed.jpg").to_dict()
    page = ReportReader(R.render_html(verdict, None, generated_at=WHEN, version="9.9"))
    lines = provenance_lines(verdict["evidence"]["provenance"]["details"])
    assert lines[0].startswith("Content Credentials: signed by C2PA Signer") and "trusted (on the C2PA" in lines[0]
    assert all(" ".join(line.split()) in " ".join(page.text["provenance"].split()) for line in lines)
    assert "made by a generative model" in page.text["verdict"]
    plain = R.render_html(P.Pipeline(P.PipelineConfig(device="cpu"), registry=(BranchEntry(ProvenanceBranch),))
                          .analyze_one(png_bytes(drawn_group_photo()[0]), name="drawn.png").to_dict(), None)
    assert "Content Credentials: none (absence is not evidence" in ReportReader(plain).text["provenance"]


def test_report_embeds_the_aligned_face_of_a_real_face_pixel_for_pixel(real_face, tmp_path):
    face = real_face
    verdict = tiny_pipeline(tmp_path / "models").analyze_one(str(face), name=face.name, with_pictures=True)
    page = ReportReader(R.render_html(verdict.to_dict(), verdict.pictures, generated_at=WHEN))
    assert verdict.faces, "dlib should find the development face"
    assert np.array_equal(decoded(page.images["faces"][0]), verdict.pictures.aligned_face)
    assert "68 points" in page.text["faces"] and f"{verdict.faces[0]['alignment_error']}" in page.text["faces"]


def test_report_of_an_undecided_real_face_says_no_decision_once_with_the_detail_behind_a_disclosure(real_face,
                                                                                                  tmp_path):
    verdict = unskilled_pipeline(tmp_path / "models").analyze_one(str(real_face), name=real_face.name,
                                                                  with_pictures=True)
    text = R.render_html(verdict.to_dict(), verdict.pictures, generated_at=WHEN)
    page = ReportReader(text)
    finding, faces = page.text["verdict"], page.text["faces"]
    said = wording.statement(verdict.to_dict())
    assert verdict.label == "undecided" and said.headline.startswith("No decision: none of the loaded checks")
    assert said.headline in finding and "gave an answer have not proved reliable" in said.reason
    assert text.count(html.escape(said.reason)) == 1 and "Uncertain:" not in finding
    summary, _, hidden = text.partition("<details><summary>Technical detail</summary>")
    assert "no real/fake skill: none measured" not in summary.split('id="verdict"')[1]
    assert "no real/fake skill: none measured" in hidden.split("</details>")[0]
    assert "No decision: each check's own P(fake), not a vote." in finding
    assert "The finding (section 2) is about this face." in faces and said.reason not in faces
    assert "No decision" in faces and "Unknown generator" not in finding + faces
    assert any(row[0] == "CLIP probe (UFD)" for row in page.rows["faces"])  # its own reading, under that title
    assert "no real-vs-fake detector with the skill to vote ran" not in page.text["warnings"]
    assert "verdict schema 2" in page.text["record"]


def test_per_face_verdicts_and_crops_are_shown_when_the_faces_carry_them():
    verdict, pictures = example_report_inputs()
    page = ReportReader(R.render_html(verdict, pictures, generated_at=WHEN))
    faces = page.text["faces"]
    assert "Face 1" in faces and "Face 2" in faces
    assert faces.index("Real photo") < faces.index("StyleGAN2")
    assert "P(fake)0.190" in faces.replace(" ", "") and "P(fake)0.960" in faces.replace(" ", "")
    assert [decoded(src).tolist() for src in page.images["faces"]] == [crop.tolist() for crop in pictures.faces]
    assert "GAN-generated: StyleGAN2" in page.text["verdict"]
    said = wording.statement(verdict)
    assert said.reason == ("The checks reliable enough to vote put the chance that this face is generated at 96%, "
                           "and the chance that StyleGAN2 made it at 88%.")
    assert page.text["verdict"].count(said.reason) == 1 and said.reason not in faces
    assert "The finding (section 2) is about this face." in faces.split("Face 2")[1]
    assert "put the chance that this face is generated at 19%." in faces.split("Face 2")[0]
    assert "clip-vit-l14-openai is missing" in page.text["branches"] and "download_weights" not in text_of(page)


def test_a_verdict_without_faces_or_pictures_says_so_instead_of_leaving_holes():
    verdict, _ = example_report_inputs()
    verdict.update(faces=[], warnings=[], models={})
    page = ReportReader(R.render_html(verdict, None, generated_at=WHEN))
    assert "No face was found" in page.text["faces"]
    assert "No evidence pictures" in page.text["pictures"]
    assert "None." in page.text["warnings"] and "No model ran." in page.text["models"]


def test_hostile_file_name_cannot_inject_markup_or_hide_its_extension():
    verdict, pictures = example_report_inputs()
    verdict.update(file=HOSTILE_NAME, warnings=["<b>bold</b> & </section><script>x()</script>"])
    text = R.render_html(verdict, pictures, generated_at=WHEN)
    page = ReportReader(text)
    assert not [tag for tag, _ in page.tags if tag == "script"]
    assert all(attrs.get("src", "").startswith("data:image/png;base64,") for tag, attrs in page.tags if tag == "img")
    assert [attrs["id"] for tag, attrs in page.tags if tag == "section"] == SECTIONS
    assert "cat\\u202egnp.exe" in page.text["input"] and "\u202e" not in page.text["input"]
    assert "<script>x()</script>" in page.text["warnings"]


def test_report_references_nothing_outside_itself(drawn_verdict):
    verdict, pictures = example_report_inputs()
    for text in (R.render_html(verdict, pictures), R.render_html(drawn_verdict.to_dict(), drawn_verdict.pictures)):
        page = ReportReader(text)
        tags = {tag for tag, _ in page.tags}
        assert not tags & {"script", "link", "iframe", "frame", "object", "embed", "base", "form", "audio", "video",
                           "source", "svg"}
        for tag, attrs in page.tags:
            assert "url(" not in attrs.get("style", "")
            assert not set(attrs) & {"href", "action", "srcset", "poster", "background"}
            if "src" in attrs:
                assert tag == "img" and attrs["src"].startswith("data:image/png;base64,")
        css = "".join(page.styles)
        assert "url(" not in css and "@import" not in css and "@font-face" not in css
        csp = [attrs["content"] for tag, attrs in page.tags
               if tag == "meta" and attrs.get("http-equiv", "").lower() == "content-security-policy"]
        assert csp == [R.CSP] and "default-src 'none'" in R.CSP and "img-src data:" in R.CSP


def test_write_report_names_by_stem_and_hash_and_never_overwrites_a_different_report(tmp_path):
    verdict, pictures = example_report_inputs()
    first = R.write_report(verdict, pictures, tmp_path, generated_at=WHEN)
    assert first.name == f"group-photo-{verdict['sha256'][:12]}.html"
    assert first.read_text(encoding="utf-8") == R.render_html(verdict, pictures, generated_at=WHEN)
    stamp = first.stat().st_mtime_ns
    assert R.write_report(verdict, pictures, tmp_path, generated_at=WHEN) == first
    assert first.stat().st_mtime_ns == stamp
    later = R.write_report(verdict, pictures, tmp_path, generated_at=WHEN.replace(hour=5))
    assert later.name == f"group-photo-{verdict['sha256'][:12]}-1.html"
    assert first.read_text(encoding="utf-8") == R.render_html(verdict, pictures, generated_at=WHEN)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, later.name])


def test_write_report_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(R.os, "link", no_links)
    verdict, pictures = example_report_inputs()
    first = R.write_report(verdict, pictures, tmp_path, generated_at=WHEN)
    second = R.write_report(verdict, pictures, tmp_path, generated_at=WHEN.replace(hour=5))
    assert second.name == first.name.replace(".html", "-1.html")
    assert first.read_text(encoding="utf-8") == R.render_html(verdict, pictures, generated_at=WHEN)
    assert len(list(tmp_path.iterdir())) == 2


def test_report_file_name_is_safe_whatever_the_input_is_called():
    digest = "0123456789abcdef" * 4
    assert R.report_name({"file": "../../etc/pass wd.jpg", "sha256": digest}) == "pass_wd-0123456789ab.html"
    assert R.report_name({"file": HOSTILE_NAME, "sha256": digest}).endswith("-0123456789ab.html")
    assert "/" not in R.report_name({"file": HOSTILE_NAME, "sha256": digest})
    assert R.report_name({"file": "...", "sha256": "../x"}) == "image-no-sha256.html"


def test_scan_writes_one_report_per_analysed_image_and_pictures_only_when_asked(pipe, tmp_path, monkeypatch):
    pixels, _ = drawn_group_photo()
    case = tmp_path / "case"
    case.mkdir()
    for name in ("a.png", "b.png"):
        (case / name).write_bytes(png_bytes(np.roll(pixels, len(name) * ord(name[0]), axis=1)))
    (case / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    asked = []
    analyze = pipe.analyze
    monkeypatch.setattr(pipe, "analyze", lambda *args, **kwargs: asked.append(kwargs["with_pictures"]) or
                        analyze(*args, **kwargs))
    files = scan_script.expand_inputs([str(case)], recursive=False)
    scan_script.scan(files, tmp_path / "plain.csv", pipe, progress=False)
    assert asked and not any(asked)
    asked.clear()
    scan_script.scan(files, tmp_path / "with-reports.csv", pipe, progress=False, report_dir=tmp_path / "reports")
    assert asked and all(asked)
    verdicts = [json.loads(line) for line in (tmp_path / "with-reports.jsonl").read_text().splitlines()]
    expected = sorted(R.report_name(v) for v in verdicts if "sha256" in v)
    assert len(expected) == 2 and sorted(p.name for p in (tmp_path / "reports").iterdir()) == expected
    for verdict in (v for v in verdicts if "sha256" in v):
        page = ReportReader((tmp_path / "reports" / R.report_name(verdict)).read_text(encoding="utf-8"))
        assert verdict["sha256"] in page.text["input"] and len(page.images["pictures"]) == 2


def test_scan_refuses_a_report_folder_that_is_a_file_before_any_work(tmp_path, capsys):
    image, taken = tmp_path / "a.png", tmp_path / "reports"
    image.write_bytes(png_bytes(drawn_group_photo()[0]))
    taken.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        scan_script.main([str(image), "--out", str(tmp_path / "out.csv"), "--report", str(taken)])
    assert exit_info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_app_offers_the_report_of_the_last_verdict_as_a_download(pipe, drawn_verdict):
    import app

    demo = app.build_demo(pipe)
    assert [b.label for b in demo.blocks.values() if getattr(b, "elem_id", None) == "report"] == ["Download report"]
    button = app.render_verdict(drawn_verdict.to_dict(), drawn_verdict.pictures)[-1]
    assert button.interactive and button.value["orig_name"] == R.report_name(drawn_verdict.to_dict())
    page = ReportReader(Path(button.value["path"]).read_text(encoding="utf-8"))
    assert drawn_verdict.sha256 in page.text["input"] and len(page.images["pictures"]) == 2


def chromium() -> str:
    binary = os.environ.get("GANTRACE_CHROMIUM") or shutil.which("chromium")
    if not binary:
        pytest.skip("chromium is not installed (apt-get install -y chromium) and GANTRACE_CHROMIUM is not set")
    return binary


def open_offline(page: Path, work: Path, window: str) -> tuple[Path, list[str]]:
    """Screenshot `page` with every connection sent to a dead proxy; return it and the URLs the page requested
    (the network log tags a page's own requests with its file:// site; the browser's background calls differ)."""
    screenshot, netlog = work / f"{page.stem}.png", work / f"{page.stem}-net.json"
    subprocess.run([chromium(), *NETWORK_BLOCKED, f"--user-data-dir={work / 'profile'}", f"--log-net-log={netlog}",
                    f"--screenshot={screenshot}", f"--window-size={window}", page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    log = json.loads(netlog.read_text(encoding="utf-8"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = [event["params"]["url"] for event in log["events"]
                 if event["type"] == start and "url" in event.get("params", {})
                 and "file://" in event["params"].get("network_isolation_key", "")]
    return screenshot, requested


def test_network_log_sees_what_a_page_fetches(tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text('<p>x</p><img src="http://192.0.2.1/x.png"><link rel="stylesheet" href="https://a.invalid/s.css">')
    _, requested = open_offline(page, tmp_path, "400,300")
    assert sorted(requested) == ["http://192.0.2.1/x.png", "https://a.invalid/s.css"]


def test_report_renders_every_section_in_chromium_with_the_network_blocked_and_requests_nothing(tmp_path):
    verdict, pictures = example_report_inputs()
    page = R.write_report(verdict, pictures, tmp_path / "reports", generated_at=WHEN, version="0.1.0")
    screenshot, requested = open_offline(page, tmp_path, "1200,3200")
    assert requested == []
    shot = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert shot.shape == (3200, 1200, 3)
    assert (np.abs(shot[-60:] - [0xE9, 0xEC, 0xEF]).max(axis=-1) <= 2).all(), \
        "the report runs past 3200 px, so the screenshot does not show every section"
    colourful = int(((shot.max(axis=-1) - shot.min(axis=-1)) > 60).sum())
    assert colourful > 40_000, f"only {colourful} saturated pixels: the embedded pictures did not render"
    keep = os.environ.get(SCREENSHOT_ENV)
    if keep:
        content = np.flatnonzero((np.abs(shot - [0xE9, 0xEC, 0xEF]).max(axis=-1) > 2).any(axis=1))
        Image.open(screenshot).convert("RGB").crop((0, 0, 1200, int(content[-1]) + 24)).quantize(colors=256).save(
            keep, optimize=True)
