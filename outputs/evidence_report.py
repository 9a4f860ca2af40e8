"""The evidence report: one self-contained HTML file per image that an analyst can attach to a case.

Why this shape:
* A verdict is only fileable if the document holds everything needed to check it later: the verdict and what
  each branch said, the pictures behind it, the exact input (sha256) and the exact models (sha256), the GANTrace
  version and the time. JSON has the numbers but not the pictures; a screenshot has neither hashes nor text.
* The file must open anywhere, years later, offline, and must not call home when a suspect's image is opened:
  pictures are PNG `data:` URIs, the CSS (`evidence_report.css` beside this module) is inlined, fonts are the
  system's, there is no script, and a strict Content-Security-Policy stops the browser from fetching anything
  even if a string slipped through.
* File names and messages come from whoever made the image: every string from the verdict is HTML-escaped, and
  control and bidirectional-override characters in the file name are shown as `\\u202e`-style codes so a name
  cannot disguise itself (``photo\\u202egnp.exe``).
* Like app.py this module decides nothing: it renders a `pipeline.Verdict` dict and its `EvidencePictures`.

    html = render_html(verdict.to_dict(), verdict.pictures)
    path = write_report(verdict.to_dict(), verdict.pictures, Path("reports"))
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline import EvidencePictures, wording
from pipeline.provenance_wording import provenance_lines

__all__ = ["CSP", "LIMITS_TEXT", "gantrace_version", "render_html", "report_name", "write_report"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
LIMITS_TEXT = (
    "These findings are statistical evidence, not proof. Each branch is a model trained on a limited set of "
    "generators and photo sources; an image from an unseen source can be misjudged either way. Re-encoding (JPEG, "
    "messaging apps, social networks), resizing, cropping and screenshots weaken the traces the branches read. "
    "\u201cUnknown generator\u201d means fake, but no known class fits well enough; it names no generator. "
    "\u201cNo decision\u201d means no branch had the skill to vote: neither real nor fake. A \u201creal\u201d verdict "
    "does not prove that an image is authentic or unedited: only that these detectors found no trace of the "
    "generators they know.")
MAX_PICTURE_SIDE = 1024
PROVENANCE = "provenance"  # the branch whose findings get a section of their own
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"[0-9a-f]+")

_CSS = Path(__file__).with_suffix(".css").read_text(encoding="utf-8")


def render_html(verdict: Mapping[str, Any], pictures: EvidencePictures | None, *,
                generated_at: datetime | None = None, version: str | None = None) -> str:
    """The whole report as one HTML document that loads nothing from anywhere (see the module docstring).

    generated_at: the time the report states (default: now); a naive datetime is taken as UTC.
    version: the GANTrace version it states (default: the installed package's).
    """
    when = _utc_iso(generated_at or datetime.now(timezone.utc))
    version = version or gantrace_version()
    pictures = pictures or EvidencePictures()
    name = _visible(Path(str(verdict.get("file", ""))).name or str(verdict.get("file", "")))
    body = "\n".join([
        "<header>",
        '<div class="kicker">GANTrace · synthetic face analysis</div>',
        f"<h1>Evidence report: {name}</h1>",
        '<div class="meta">'
        f"<span>Generated <b>{_e(when)}</b></span>"
        f"<span>GANTrace <b>{_e(version)}</b></span>"
        f"<span>Image sha256 <b class=\"mono\">{_e(str(verdict.get('sha256', ''))[:16])}…</b></span>"
        f"<span>Faces <b>{len(verdict.get('faces') or [])}</b></span>"
        "</div>",
        "</header>",
        _section("input", "1 · Item examined", _input_table(verdict)),
        _section("verdict", "2 · Finding", _finding(verdict)),
        _section("faces", "3 · Faces", _faces(verdict, pictures)),
        _section("branches", "4 · Evidence by branch",
                 _branch_table(verdict.get("evidence") or {}, "No branch reported evidence.")),
        _section("provenance", "5 · Provenance: what the file says about itself",
                 _provenance((verdict.get("evidence") or {}).get(PROVENANCE))),
        _section("pictures", "6 · Evidence pictures", _pictures(pictures)),
        _section("models", "7 · Models used", _models(verdict.get("models") or {})),
        _section("warnings", "8 · Warnings", _warnings(wording.notes(verdict))),
        _section("limits", "9 · What this evidence can and cannot show", f'<p class="limits">{_e(LIMITS_TEXT)}</p>'),
        _section("record", "10 · Verdict record",
                 f"<p>The verdict exactly as GANTrace produced it (JSON, verdict schema "
                 f"<b>{_e(verdict.get('schema_version', 1))}</b>), for machine comparison.</p>"
                 f"<details><summary>Show the verdict JSON</summary><pre>{_e(_json(verdict))}</pre></details>"),
        f"<footer>Generated by GANTrace {_e(version)} at {_e(when)} (UTC). This file is self-contained: it embeds "
        "its pictures and loads nothing from the network.</footer>",
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>GANTrace evidence report: {name}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def report_name(verdict: Mapping[str, Any]) -> str:
    """`<safe stem>-<sha256[:12]>.html`: readable, unique per input, and safe on every file system."""
    stem = _SAFE_NAME.sub("_", Path(str(verdict.get("file", ""))).stem).strip("._")[:60] or "image"
    digest = str(verdict.get("sha256", "")).lower()[:12]
    return f"{stem}-{digest if _HEX.fullmatch(digest) else 'no-sha256'}.html"


def write_report(verdict: Mapping[str, Any], pictures: EvidencePictures | None, out_dir: Path, *,
                 generated_at: datetime | None = None, version: str | None = None) -> Path:
    """Write the report into `out_dir` atomically and return its path.

    An existing file is never replaced: the same bytes already there are kept (nothing written), a different
    report for the same name goes to `<name>-1.html`, `-2`... Publishing refuses a name taken meanwhile, so two
    writers cannot overwrite each other either.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = render_html(verdict, pictures, generated_at=generated_at, version=version).encode("utf-8")
    base = report_name(verdict)[:-len(".html")]
    handle, temp = tempfile.mkstemp(dir=out_dir, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        for n in count():
            target = out_dir / (f"{base}.html" if n == 0 else f"{base}-{n}.html")
            if target.is_file() and target.read_bytes() == data:
                return target
            if _publish(temp, target, data):
                return target
    finally:
        os.unlink(temp)


def _publish(temp: str, target: Path, data: bytes) -> bool:
    """Give the finished temp file the name `target` unless that name exists (then False). A hard link is atomic
    and refuses an existing name; file systems without hard links (FAT, some shares) get an exclusive create."""
    try:
        os.link(temp, target)
    except FileExistsError:
        return False
    except OSError:
        try:
            with open(target, "xb") as out:
                out.write(data)
        except FileExistsError:
            return False
    return True


def gantrace_version() -> str:
    """The installed package's version; a source checkout that was never installed says so instead."""
    try:
        return metadata.version("gantrace")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


# -- sections -------------------------------------------------------------------------------------------------------

def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}">\n<h2>{title}</h2>\n{content}\n</section>'


def _input_table(verdict: Mapping[str, Any]) -> str:
    rows = [("File name", _visible(str(verdict.get("file", "")))),
            ("Size", f"{_e(verdict.get('width'))} × {_e(verdict.get('height'))} px")]
    if verdict.get("format"):
        rows.append(("Format", _e(verdict["format"])))
    rows.append(("SHA-256", f'<span class="mono hash">{_e(verdict.get("sha256", ""))}</span>'))
    return _kv(rows)


def _finding(verdict: Mapping[str, Any]) -> str:
    """The verdict said once (headline and plain reason), the technical detail one click away, and the bars."""
    said = wording.statement(verdict)
    evidence = verdict.get("evidence") or {}
    ran = sum(1 for item in evidence.values() if item and item.get("probabilities") is not None)
    facts = (f"{len(verdict.get('faces') or [])} face(s) · {ran} of {len(evidence)} branches ran · "
             f"{len(wording.notes(verdict))} warning(s)")
    detail = "".join(f"<li>{_visible(line)}</li>" for line in said.details)
    box = (f'<div class="label-box {said.kind}"><div class="big">{_e(said.headline)}</div>'
           f'<div class="sub">{_e(said.reason)}</div><div class="facts">{facts}</div>'
           f'<details><summary>Technical detail</summary><ul>{detail}</ul></details></div>')
    bars = _probabilities(verdict.get("probabilities"), verdict.get("evidence") or {})
    return f'<div class="finding">{box}<div style="flex:1">{bars}</div></div>'


def _probabilities(probabilities: Mapping[str, Any] | None, evidence: Mapping[str, Any], header: bool = True) -> str:
    """The fused probabilities as bars; with no decision, each branch's own P(fake) marked as not a vote, or one
    sentence when no branch gave one."""
    if not probabilities:
        return '<p class="none">No probabilities.</p>'
    if all(p is None for p in probabilities.values()):
        readings = wording.own_readings(evidence)
        if not readings:
            return f'<p class="none">{_e(wording.NO_READING)}.</p>'
        return f"<p>{_e(wording.OWN_READINGS_TITLE)}.</p>" + _bars(readings, "branch", header)
    return _bars({wording.label_name(label): p for label, p in probabilities.items()}, "class", header)


def _bars(values: Mapping[str, Any], what: str, header: bool) -> str:
    rows = []
    for name, p in values.items():
        width = 0.0 if p is None else max(0.0, min(1.0, float(p))) * 100
        rows.append(f"<tr><td>{_e(name)}</td><td class=\"mono\">{_p(p)}</td>"
                    f'<td><div class="bar"><span style="width:{width:.1f}%"></span></div></td></tr>')
    head = f"<tr><th>{what}</th><th>probability</th><th></th></tr>" if header else ""
    return "<table>" + head + "".join(rows) + "</table>"


def _faces(verdict: Mapping[str, Any], pictures: EvidencePictures) -> str:
    faces = verdict.get("faces") or []
    crops = list(getattr(pictures, "faces", None) or [])
    if not crops and pictures.aligned_face is not None:
        crops = [pictures.aligned_face]
    if not faces and not crops:
        return '<p class="none">No face was found; the face-level evidence could not be gathered.</p>'
    cards = []
    for index in range(max(len(faces), len(crops))):
        face = faces[index] if index < len(faces) else {}
        crop = crops[index] if index < len(crops) else None
        picture = (_img(crop, f"aligned face {index + 1}") if crop is not None
                   else '<div class="empty">no aligned picture</div>')
        cards.append(f'<div class="face"><div class="top">{picture}<div><h3>Face {index + 1}{_face_pill(face)}</h3>'
                     f"{_face_answer(face, verdict.get('evidence') or {})}{_face_facts(face)}</div></div>"
                     f"{_face_evidence(face, verdict.get('evidence') or {})}</div>")
    note = ("<p>Faces are numbered largest first. Each picture is the FFHQ-aligned crop the face-level branches "
            "analysed.</p>")
    return note + '<div class="faces">' + "".join(cards) + "</div>"


def _face_pill(face: Mapping[str, Any]) -> str:
    if "label" not in face:
        return ""
    kind = wording.statement(face).kind
    return f' <span class="pill {kind}">{_e(wording.label_name(face["label"]))}</span>'


def _face_answer(face: Mapping[str, Any], image_evidence: Mapping[str, Any]) -> str:
    """The face the finding is about points to it; another face with its own label gets its own plain reason (it
    was fused with the image-level evidence too)."""
    if face.get("primary"):
        return '<p class="sub">The finding (section 2) is about this face.</p>'
    if "label" not in face:
        return ""
    said = wording.statement({**face, "evidence": {**image_evidence, **(face.get("evidence") or {})}})
    return f'<p class="sub">{_e(said.reason)}</p>'


def _face_facts(face: Mapping[str, Any]) -> str:
    """Where the face is and how well it aligned, plus any other plain field the pipeline records per face."""
    rows = []
    if "fake_probability" in face:
        rows.append(("P(fake)", _p(face["fake_probability"])))
    if face.get("box") is not None:
        rows.append(("box (x0, y0, x1, y1)", _e(", ".join(str(v) for v in face["box"]))))
    if face.get("landmarks") is not None:
        rows.append(("landmarks", f"{len(face['landmarks'])} points"))
    for key, value in face.items():
        if key not in ("label", "fake_probability", "box", "landmarks", "probabilities", "evidence") and \
                not isinstance(value, (Mapping, list, tuple)):
            rows.append((_e(key.replace("_", " ")), _p(value) if value is None else _e(value)))
    return _kv(rows)


def _face_evidence(face: Mapping[str, Any], image_evidence: Mapping[str, Any]) -> str:
    """The face's own probabilities and branch evidence, when the pipeline gives per-face verdicts (a face is fused
    with the image-level evidence too, so an undecided face shows those branches' own readings)."""
    parts = []
    if face.get("probabilities"):
        evidence = {**image_evidence, **(face.get("evidence") or {})}
        parts.append(_probabilities(face["probabilities"], evidence, header=False))
    if face.get("evidence"):
        parts.append(_branch_table(face["evidence"], ""))
    return "".join(parts)


def _branch_table(evidence: Mapping[str, Any], empty: str) -> str:
    """Each branch's own reading (every class it scores, its own open-set label) or why it did not run."""
    if not evidence:
        return f'<p class="none">{_e(empty)}</p>'
    rows = []
    for branch, item in evidence.items():
        item = item or {}
        probabilities = item.get("probabilities")
        name = _e(wording.branch_title(branch))
        if probabilities is None:
            reason = _visible(wording.without_remedy(item.get("reason") or "no reason recorded"))
            rows.append(f'<tr><td>{name}</td><td><span class="pill">did not run</span></td><td>—</td>'
                        f"<td>{reason}</td></tr>")
            continue
        scores = "".join(f"<span>{_e(k)} {_p(v)}</span>" for k, v in probabilities.items())
        notes = [f"its own label: <b>{_e(item['label'])}</b>"] if item.get("label") else []
        notes += [_visible(note) for note in item.get("skill_notes") or []]
        if item.get("out_of_distribution"):
            notes.append("outside its training data: " + _visible(item["out_of_distribution"]))
        rows.append(f'<tr><td>{name}</td><td><span class="pill ran">ran</span></td>'
                    f'<td class="mono scores">{scores}</td><td>{"<br>".join(notes)}</td></tr>')
    return ("<table><tr><th>branch</th><th>status</th><th>its own probabilities</th><th>note / why not run</th></tr>"
            + "".join(rows) + "</table>")


def _provenance(item: Mapping[str, Any] | None) -> str:
    """The provenance branch's findings, one line each (`provenance_lines`, as in the app), or why it was not read."""
    if item is None:
        return '<p class="none">The provenance branch was not run.</p>'
    if item.get("details") is None:
        reason = wording.without_remedy(item.get("reason") or "no reason recorded")
        return f'<p class="none">Not read: {_visible(reason)}</p>'
    return '<ul class="provenance">' + "".join(f"<li>{_visible(line)}</li>"
                                                for line in provenance_lines(item["details"])) + "</ul>"


def _pictures(pictures: EvidencePictures) -> str:
    figures = []
    for array, caption in (
            (pictures.spectrum, "High-pass residual spectrum (magma scale). GAN up-sampling leaves regular peaks "
                                "away from the centre; camera images show a smooth fall-off."),
            (pictures.gradcam, "FingerprintNet Grad-CAM for its predicted class: warm regions drove the decision.")):
        if array is None:
            continue
        figures.append(f"<figure>{_img(array, caption)}<figcaption>{_e(caption)}{_scaled(array)}</figcaption>"
                       "</figure>")
    if not figures:
        return '<p class="none">No evidence pictures were produced for this image.</p>'
    return '<div class="pictures">' + "".join(figures) + "</div>"


def _models(models: Mapping[str, Any]) -> str:
    if not models:
        return '<p class="none">No model ran.</p>'
    rows = "".join(f'<tr><td>{_visible(name)}</td><td class="mono hash">{_e(digest)}</td></tr>' for name, digest in
                   models.items())
    return ("<table><tr><th>model / weights</th><th>SHA-256 (or how it was built)</th></tr>" + rows + "</table>")


def _warnings(warnings: Sequence[Any]) -> str:
    """The warnings the finding does not already say (`wording.notes`)."""
    if not warnings:
        return '<p class="none">None.</p>'
    return '<ul class="warnings">' + "".join(f"<li>{_visible(w)}</li>" for w in warnings) + "</ul>"


# -- small pieces ---------------------------------------------------------------------------------------------------

def _kv(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table; both cells must already be escaped HTML."""
    return '<table class="kv">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _img(array: np.ndarray, alt: str) -> str:
    """An <img> whose picture is embedded as a PNG data: URI (lossless, so the evidence is not re-compressed)."""
    image = Image.fromarray(np.ascontiguousarray(array))
    if max(image.size) > MAX_PICTURE_SIDE:
        image.thumbnail((MAX_PICTURE_SIDE, MAX_PICTURE_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _scaled(array: np.ndarray) -> str:
    height, width = array.shape[:2]
    if max(height, width) <= MAX_PICTURE_SIDE:
        return ""
    return f" (shown reduced from {width}×{height} px to at most {MAX_PICTURE_SIDE} px.)"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _visible(text: Any) -> str:
    """Escaped text with control and format characters (bidi overrides, zero-width) shown as \\uXXXX codes."""
    shown = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in str(text))
    return _e(shown)


def _p(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _json(verdict: Mapping[str, Any]) -> str:
    return json.dumps(dict(verdict), indent=1, ensure_ascii=True, default=str)
