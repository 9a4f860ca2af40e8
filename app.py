"""GANTrace's web interface: upload a face, read the verdict and the evidence behind it.

The UI only renders what `pipeline.Pipeline` returns; nothing here decides anything. Forensic care:
* uploads go through `gr.File`, so the analysed bytes are exactly the uploaded bytes (gr.Image would re-encode
  some inputs) and every decoding error is core.images' own one-line message;
* Gradio stores each upload in its cache as `<cache>/<sha>/<client's file name, cleaned>` (the name is stripped
  of folders and unsafe characters, so it stays inside the cache) and deletes it after an hour (`delete_cache`);
  GANTrace itself writes nothing under a client-chosen name (batch CSVs get random names);
* memory per visitor is bounded: the evidence pictures wait for the page in a small server-side store (at most
  PICTURES_KEPT of them, PICTURE_BYTES in all, PICTURES_MAX_AGE_S each) and the session holds only a token; Gradio
  keeps at most STATE_SESSIONS sessions, and the memory freed after each analysis is handed back to the system;
* the page uses system fonts, so opening it does not contact any third-party server;
* one model run at a time (`default_concurrency_limit=1`) with a bounded queue, since the models fill the CPU.

    python app.py                       # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
    python app.py --host 0.0.0.0 --port 8080 --attribution artifacts/latent-svm.skops
    python app.py --offline             # never touch the network (also HF_HUB_OFFLINE=1); by default missing
                                        # registered weights are fetched at start, each with a bounded time-out

API: `Client(url).predict(handle_file("face.jpg"), api_name="/analyze")` returns the Verdict JSON.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from outputs.bounded_store import BoundedStore
from outputs.evidence_report import write_report
from outputs.memory import release_free_memory
from pipeline import (IMAGE_SUFFIXES, LABELS, BranchStatus, EvidencePictures, Failure, Pipeline, wording,
                      write_csv)
from pipeline.provenance_wording import provenance_lines
from pipeline.verdict import primary_face_index
from runners.cli import add_pipeline_arguments, config_from_args

MAX_FILE_SIZE = "50mb"
MAX_BATCH_FILES = 200
QUEUE_SIZE = 32
RESULTS_MAX_AGE_S = 3600
PICTURES_KEPT = 16
PICTURE_BYTES = 64 * 1024 * 1024
PICTURES_MAX_AGE_S = 300
PROVENANCE = "provenance"
PROVENANCE_TITLE = "#### Provenance: what the file says about itself"
TRUST_LIST_RECORD = "artifacts/c2pa-trust-list.md"
STATE_SESSIONS = 256
UPLOAD_TYPES = sorted(IMAGE_SUFFIXES)
BATCH_HEADERS = ["file", "verdict", "P(fake)", "warnings or error"]
BRANCH_HEADERS = ["branch", "ran", "P(fake)", "top class", "why not run"]
INTRO = """# GANTrace
Is this face a real photo or made by a GAN, and if so by which architecture (ProGAN, StyleGAN2, StyleGAN3, or an
unknown generator)? Upload one face image; {branches}. Each branch's evidence is shown. It is evidence for an
analyst, not proof; when none of the loaded checks is reliable enough to decide, the answer is "no decision"."""


def analyze_upload(pipe: Pipeline, path: str | None) -> tuple[dict, EvidencePictures | None]:
    """The API handler: the Verdict JSON for one uploaded file; a bad input raises gr.Error with its reason."""
    if not path:
        raise gr.Error("No file was uploaded: choose an image file first.", print_exception=False)
    result = pipe.analyze_one(path, name=Path(path).name, with_pictures=True)
    release_free_memory()
    if isinstance(result, Failure):
        raise gr.Error(result.error, duration=None, print_exception=False)
    return result.to_dict(), result.pictures


def render_verdict(verdict: dict, pictures: EvidencePictures | None) -> tuple:
    """Every panel for one verdict: card, bars, provenance, the faces (boxed overview, aligned crops, the verdict's
    face in detail), spectrum, Grad-CAM, the per-branch table and the evidence report to download."""
    report = write_report(verdict, pictures, new_results_path().parent)
    pictures = pictures or EvidencePictures()
    return (verdict_card(verdict), probability_panel(verdict), provenance_panel(verdict), pictures.faces_overview,
            face_gallery(verdict, pictures), face_markdown(verdict, primary_face_index(verdict["faces"])),
            pictures.spectrum, pictures.gradcam, branch_rows(verdict),
            gr.DownloadButton(value=str(report), interactive=True))


def render_failure() -> tuple:
    """What the evidence panels show when the upload could not be analysed (the reason is in the pop-up)."""
    card = ("### Could not analyse this file\nThe reason is in the message at the top right. GANTrace reads JPEG, "
            "PNG, WebP, BMP, GIF and TIFF images between 64 px and 50 megapixels.")
    return card, _no_bars(), "", None, None, "", None, None, [], gr.DownloadButton(value=None, interactive=False)


def render_pending() -> tuple:
    return ("### Analysing…", _no_bars(), "", None, None, "", None, None, [],
            gr.DownloadButton(value=None, interactive=False))


def probability_panel(verdict: dict) -> gr.Label:
    """The fused probabilities under a fixed title; for an undecided verdict, each branch's own P(fake) under a
    title that says it is not a vote, or one sentence when no branch gave one (never an empty box)."""
    if verdict["fake_probability"] is not None:
        bars = {wording.label_name(label): p for label, p in verdict["probabilities"].items() if p is not None}
        return gr.Label(bars, label=wording.PROBABILITIES_TITLE, show_heading=False)
    readings = wording.own_readings(verdict["evidence"])
    if not readings:
        return gr.Label(wording.NO_READING, label=wording.PROBABILITIES_TITLE)
    return gr.Label(readings, label=wording.OWN_READINGS_TITLE, show_heading=False)


def provenance_panel(verdict: dict) -> str:
    """What the file declares about its own origin, one line a finding (`provenance_lines`), or why it was not
    read."""
    evidence = verdict["evidence"].get(PROVENANCE)
    if evidence is None:
        return ""
    if evidence.get("details") is None:
        why = wording.without_remedy(evidence.get("reason") or "not read")
        return f"{PROVENANCE_TITLE}\n\n- not read: {_escape(why)}"
    return PROVENANCE_TITLE + "\n\n" + "\n".join(f"- {_escape(line)}" for line in provenance_lines(
        evidence["details"]))


def _no_bars() -> gr.Label:
    return gr.Label(None, label=wording.PROBABILITIES_TITLE, show_heading=False)


def face_gallery(verdict: dict, pictures: EvidencePictures) -> list[tuple]:
    """The aligned crop of every analysed face, captioned with its number (as in the overview) and its label."""
    return [(crop, wording.face_caption(index + 1, face))
            for index, (crop, face) in enumerate(zip(pictures.faces, verdict["faces"]))]


def face_markdown(verdict: dict, index: int | None) -> str:
    """One face's answer and the face-level evidence behind it (numbered from 1, as in the overview). The face the
    verdict is about points to the card instead of saying the verdict again; another face gets its own reason."""
    if index is None or index >= len(verdict["faces"]):
        return "No face was found, so there is no face-level evidence (see the warnings on the card)."
    face = verdict["faces"][index]
    label = wording.label_name(face.get("label"))
    if face.get("primary"):
        lines = [f"#### Face {index + 1} (the verdict is about this face): {label}",
                 "The verdict card says why."]
    else:
        p_fake = face.get("fake_probability")
        said = wording.statement({**face, "evidence": {**verdict["evidence"], **(face.get("evidence") or {})}})
        lines = [f"#### Face {index + 1}: {label}" + ("" if p_fake is None else f" — P(fake) = {p_fake:.2f}"),
                 _escape(said.reason)]
    lines.append(f"box {face['box']} · alignment error {face['alignment_error']:.3f}")
    rows = branch_rows({"evidence": face.get("evidence") or {}})
    items = [_said(row) if row[1] == "yes" else f"- {row[0]}: did not run ({_escape(row[4])})" for row in rows]
    return "\n\n".join(lines + (["\n".join(items)] if items else []))


def verdict_card(verdict: dict) -> str:
    """The verdict said once: the headline, one plain reason, the file, the warnings the reason does not cover,
    and the technical detail (votes, skill figures, each branch's reading) behind a disclosure."""
    said = wording.statement(verdict)
    lines = [f"### {_escape(said.headline)}", _escape(said.reason),
             f"{_escape(verdict['file'])} · {verdict['width']}×{verdict['height']} px · "
             f"{len(verdict['faces'])} face(s) · sha256 `{verdict['sha256'][:16]}…`"]
    notes = wording.notes(verdict)
    if notes:
        lines.append("**Warnings**\n" + "\n".join(f"- {_escape(w)}" for w in notes))
    detail = ["**Decision**\n" + "\n".join(f"- {_escape(line)}" for line in said.details)]
    rows = branch_rows(verdict)
    said_alone = [_said(row) for row in rows if row[1] == "yes"]
    if said_alone:
        detail.append("**What each branch read on its own**\n" + "\n".join(said_alone))
    not_run = [f"- {row[0]}: {_escape(row[4] or 'unknown reason')}" for row in rows if row[1] == "no"]
    if not_run:
        detail.append("**Branches that did not run** (the Model status tab says how to enable each)\n"
                      + "\n".join(not_run))
    lines.append('<details id="verdict-detail"><summary>Technical detail</summary>\n\n' + "\n\n".join(detail)
                 + "\n\n</details>")
    return "\n\n".join(lines)


def _said(row: list[str]) -> str:
    """One branch's own reading as a list item: its top class and its P(fake) (marked when it is not a vote)."""
    return f"- {row[0]}: {row[3]}" + (f", P(fake) {row[2]}" if row[2] else "")


def branch_rows(verdict: dict) -> list[list[str]]:
    """One row per branch: whether it ran, its P(fake) (marked when it is its own reading, not a vote) and top
    class, or why it did not run (the command that fixes it is on the Model status tab)."""
    rows = []
    for branch, evidence in verdict["evidence"].items():
        if (evidence or {}).get("probabilities") is None:
            reason = wording.without_remedy((evidence or {}).get("reason") or "")
            rows.append([wording.branch_title(branch), "no", "", "", reason])
            continue
        rows.append([wording.branch_title(branch), "yes", wording.fake_reading(evidence),
                     wording.top_class(evidence), ""])
    return rows


def analyze_batch(pipe: Pipeline, paths: list[str] | None) -> tuple[list[list[str]], str]:
    """Many files → a table and a CSV (the same columns as scripts/scan.py) to download."""
    if not paths:
        raise gr.Error("No files were uploaded: choose one or more image files first.", print_exception=False)
    if len(paths) > MAX_BATCH_FILES:
        raise gr.Error(f"{len(paths)} files is more than the {MAX_BATCH_FILES} this page takes at once; use "
                       "scripts/scan.py for large folders.", print_exception=False)
    results = pipe.analyze(paths, names=[Path(p).name for p in paths])
    release_free_memory()
    rows = []
    for result in results:
        if isinstance(result, Failure):
            rows.append([result.file, "not analysed", "", result.error])
        else:
            p_fake = "" if result.fake_probability is None else f"{result.fake_probability:.3f}"
            rows.append([result.file, wording.label_name(result.label), p_fake, " | ".join(result.warnings)])
    out = new_results_path()
    out.write_text(write_csv(results), encoding="utf-8")
    return rows, str(out)


def new_results_path(root: Path | None = None) -> Path:
    """A fresh path for one batch's CSV; batches older than an hour are deleted, like the uploads, so the names of
    analysed files do not pile up on the server."""
    root = root or Path(tempfile.gettempdir()) / "gantrace-batch"
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - RESULTS_MAX_AGE_S
    for old in root.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root)) / "gantrace-results.csv"


def status_markdown(pipe: Pipeline) -> str:
    """Which branches can run, which cannot and the exact command that enables each; then which attribution model
    runs (name, sha256 prefix, origin)."""
    statuses = pipe.status()
    lines = ["| branch | state | weights | how to enable |", "|---|---|---|---|"]
    for status in statuses:
        if status.ready:
            state = "ready"
        elif status.ready is None:
            state = "not loaded yet"
        else:
            state = "off: " + _escape(wording.without_remedy(status.reason or ""))
        weights = "<br>".join(f"{_escape(n)}: {_escape(s[:12] if len(s) == 64 else s)}"
                              for n, s in status.weights.items())
        fix = "<br>".join(f"`{_escape(f)}`" for f in status.fix)
        lines.append(f"| {wording.branch_title(status.branch)} | {state} | {weights} | {fix} |")
    return ("\n".join(lines) + "\n\n**Attribution model:** " + _escape(attributor_state(statuses))
            + "\n\n**Content Credentials trust:** " + _escape(trust_state(statuses)))


def attributor_state(statuses: list[BranchStatus]) -> str:
    """Which attribution model the latent branch runs (name, sha256 prefix, origin), or why none does."""
    latent = next((s for s in statuses if s.branch == "latent_svm"), None)
    if latent is None or not latent.origin:
        return "none loaded, so no face is attributed (see the Latent SVM row)"
    return latent.origin if latent.ready is not False else \
        f"{latent.origin} — loaded, but the Latent SVM branch is off (see its row)"


def trust_state(statuses: list[BranchStatus]) -> str:
    """The trust anchors Content Credentials must chain to in order to vote: the shipped list (its source and date)
    and the user's own (--c2pa-trust / GANTRACE_C2PA_TRUST), as the loaded provenance branch reports them."""
    provenance = next((s for s in statuses if s.branch == PROVENANCE), None)
    if provenance is None:
        return "the provenance branch is not registered"
    if not provenance.origin:
        return ("not loaded yet (press Refresh after the first analysis)" if provenance.ready is None
                else "none: the provenance branch is off (see its row)")
    return f"{provenance.origin} (the shipped list's record and licence: {TRUST_LIST_RECORD})"


def intro_markdown(pipe: Pipeline) -> str:
    """The page header, naming the registered branches as they stand: loaded, still to load, or off."""
    titles = {state: [wording.branch_title(s.branch) for s in pipe.status() if s.ready is state]
              for state in (True, None, False)}
    if titles[True]:
        branches = f"the verdict combines the branches loaded, {wording.branches_sentence(titles[True])}"
    elif titles[None]:
        branches = f"the verdict combines {wording.branches_sentence(titles[None])} (they load on the first analysis)"
    else:
        branches = "no branch could be loaded, so there is nothing to decide with"
    if titles[False]:
        branches += f"; off: {wording.branches_sentence(titles[False])} (see the Model status tab)"
    return INTRO.format(branches=branches)


def picture_store(max_items: int = PICTURES_KEPT) -> BoundedStore[EvidencePictures]:
    """Where evidence pictures wait between the analysis and the page showing them (sessions hold only a token)."""
    return BoundedStore(max_items, PICTURE_BYTES, PICTURES_MAX_AGE_S, size_of=_picture_bytes)


def _picture_bytes(pictures: EvidencePictures | None) -> int:
    if pictures is None:
        return 0
    arrays = (pictures.spectrum, pictures.gradcam, pictures.faces_overview, *pictures.faces)
    return sum(a.nbytes for a in arrays if a is not None)


def build_demo(pipe: Pipeline, pictures: BoundedStore[EvidencePictures] | None = None) -> gr.Blocks:
    """The whole interface around one pipeline; tests launch it with a pipeline of tiny models."""
    store = pictures if pictures is not None else picture_store()
    with gr.Blocks(title="GANTrace", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(intro_markdown(pipe))
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Face image (original file, analysed byte for byte)",
                                     file_types=UPLOAD_TYPES, type="filepath", elem_id="upload")
                    run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                    report = gr.DownloadButton("Download report", interactive=False, elem_id="report")
                with gr.Column(scale=2):
                    card = gr.Markdown("Upload an image to analyse it.", elem_id="verdict-card")
                    bars = gr.Label(label=wording.PROBABILITIES_TITLE, elem_id="bars", show_heading=False,
                                    num_top_classes=max(len(LABELS), len(pipe.branches)))
                    provenance = gr.Markdown(elem_id="provenance")
            with gr.Tab("Faces"):
                with gr.Row():
                    with gr.Column():
                        overview = gr.Image(label="Faces found", interactive=False, elem_id="faces-overview")
                        gr.Markdown(wording.FACE_LEGEND, elem_id="faces-legend")
                    with gr.Column():
                        gallery = gr.Gallery(label="Aligned faces: click one to see its evidence", columns=4,
                                             height="auto", allow_preview=False, elem_id="faces-gallery")
                        face_view = gr.Markdown(elem_id="face-evidence")
            with gr.Tab("Spectrum"):
                spectrum = gr.Image(label="High-pass residual spectrum (GAN up-sampling shows as peaks)",
                                    interactive=False)
            with gr.Tab("Grad-CAM"):
                gradcam = gr.Image(label="FingerprintNet Grad-CAM for its predicted class (a research branch: "
                                         "shown only with --branch fingerprint_net)", interactive=False)
            with gr.Tab("Branches"):
                table = gr.Dataframe(headers=BRANCH_HEADERS, interactive=False, wrap=True)
            with gr.Tab("JSON"):
                verdict_json = gr.JSON(label="Verdict")
            picture_token = gr.State(time_to_live=PICTURES_MAX_AGE_S, delete_callback=store.discard)
        with gr.Tab("Batch"):
            batch_files = gr.File(label="Image files", file_count="multiple", file_types=UPLOAD_TYPES,
                                  type="filepath")
            batch_run = gr.Button("Analyse all", variant="primary")
            batch_table = gr.Dataframe(headers=BATCH_HEADERS, interactive=False, wrap=True)
            batch_csv = gr.File(label="Results (CSV)", interactive=False)
        with gr.Tab("Model status"):
            status = gr.Markdown(status_markdown(pipe))
            refresh = gr.Button("Refresh")

        panels = [card, bars, provenance, overview, gallery, face_view, spectrum, gradcam, table, report]
        started = gr.on([run.click, upload.upload], render_pending, None, panels, api_visibility="private",
                        queue=False)
        analysed = started.then(lambda path: _keep_pictures(store, *analyze_upload(pipe, path)), upload,
                                [verdict_json, picture_token], api_name="analyze",
                                api_description="Verdict JSON for one image file")
        analysed.success(lambda data, token: render_verdict(data, store.take(token)), [verdict_json, picture_token],
                         panels, api_visibility="private")
        analysed.failure(render_failure, None, panels, api_visibility="private")
        gallery.select(_selected_face, verdict_json, face_view, api_visibility="private", queue=False)
        batch_run.click(lambda paths: analyze_batch(pipe, paths), batch_files, [batch_table, batch_csv],
                        api_name="analyze_batch")
        refresh.click(lambda: status_markdown(pipe), None, status, api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def _selected_face(verdict: dict, event: gr.SelectData) -> str:
    return face_markdown(verdict, event.index)


def _keep_pictures(store: BoundedStore[EvidencePictures], data: dict, pictures: EvidencePictures | None
                   ) -> tuple[dict, str]:
    return data, store.put(pictures)


THEME_FONTS = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, **kwargs: Any) -> Any:
    """Start the server; host/port None lets Gradio read GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    return demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE,
                       state_session_capacity=STATE_SESSIONS, theme=gr.themes.Default(**THEME_FONTS), **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None, help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    add_pipeline_arguments(parser)
    args = parser.parse_args(argv)
    print("loading the models (Ctrl-C to cancel)…", file=sys.stderr)
    try:
        pipe = Pipeline(config_from_args(args))
        statuses = pipe.load_all()
        for status in statuses:
            state = "ready" if status.ready else f"OFF ({status.reason})"
            print(f"{status.branch}: {state}", file=sys.stderr)
        print(f"attribution model: {attributor_state(statuses)}", file=sys.stderr)
        launch(build_demo(pipe), args.host, args.port)
    except KeyboardInterrupt:
        print("interrupted during start-up; the server is not running", file=sys.stderr)
        return 130
    return 0


def _escape(text: str) -> str:
    """Neutralise Markdown/HTML in file names and messages that come from the uploader."""
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", html.escape(str(text), quote=False))


if __name__ == "__main__":
    sys.exit(main())
