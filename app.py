"""GANTrace's web interface: upload a face, read the verdict and the evidence behind it.

The UI only renders what `pipeline.Pipeline` returns; nothing here decides anything. Forensic care:
* uploads go through `gr.File`, so the analysed bytes are exactly the uploaded bytes (gr.Image would re-encode
  some inputs) and every decoding error is core.images' own one-line message;
* uploaded files are served from Gradio's cache and deleted after an hour (`delete_cache`); nothing is written
  under a client-chosen name;
* the page uses system fonts, so opening it does not contact any third-party server;
* one model run at a time (`default_concurrency_limit=1`) with a bounded queue, since the models fill the CPU.

    python app.py                       # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
    python app.py --host 0.0.0.0 --port 8080 --attribution artifacts/latent-svm.joblib
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

import pipeline as P
from evidence_report import BRANCH_NAMES, LABEL_NAMES, write_report
from cli import add_pipeline_arguments, config_from_args

MAX_FILE_SIZE = "50mb"
MAX_BATCH_FILES = 200
QUEUE_SIZE = 32
RESULTS_MAX_AGE_S = 3600
UPLOAD_TYPES = sorted(P.IMAGE_SUFFIXES)
BATCH_HEADERS = ["file", "verdict", "P(fake)", "warnings or error"]
BRANCH_HEADERS = ["branch", "ran", "P(fake)", "top class", "why not run"]
INTRO = """# GANTrace
Is this face a real photo or made by a GAN, and if so by which architecture (ProGAN, StyleGAN2, StyleGAN3, or an
unknown generator)? Upload one face image; the verdict combines a CLIP detector, FingerprintNet and a latent-space
attribution, and shows the evidence of each. It is evidence for an analyst, not proof: read the warnings."""


def analyze_upload(pipe: P.Pipeline, path: str | None) -> tuple[dict, P.EvidencePictures | None]:
    """The API handler: the Verdict JSON for one uploaded file; a bad input raises gr.Error with its reason."""
    if not path:
        raise gr.Error("No file was uploaded: choose an image file first.", print_exception=False)
    result = pipe.analyze_one(path, name=Path(path).name, with_pictures=True)
    if isinstance(result, P.Failure):
        raise gr.Error(result.error, duration=None, print_exception=False)
    return result.to_dict(), result.pictures


def render_verdict(verdict: dict, pictures: P.EvidencePictures | None) -> tuple:
    """Card, per-class bars, the three evidence pictures and the per-branch table for one verdict."""
    bars = {LABEL_NAMES[label]: p for label, p in verdict["probabilities"].items() if p is not None}
    pictures = pictures or P.EvidencePictures()
    return (verdict_card(verdict), bars or None, pictures.aligned_face, pictures.spectrum, pictures.gradcam,
            branch_rows(verdict))


def render_failure() -> tuple:
    """What the evidence panels show when the upload could not be analysed (the reason is in the pop-up)."""
    card = ("### Could not analyse this file\nThe reason is in the message at the top right. GANTrace reads JPEG, "
            "PNG, WebP, BMP, GIF and TIFF images between 64 px and 50 megapixels.")
    return card, None, None, None, None, []


def render_pending() -> tuple:
    return "### Analysing…", None, None, None, None, []


def verdict_card(verdict: dict) -> str:
    """The verdict in words, with what the analyst must know before trusting it."""
    p_fake = verdict["fake_probability"]
    if verdict["is_fake"] is None:
        headline = "No real/fake decision: no trusted detector ran (see the Branches and Model status tabs)"
    elif not verdict["is_fake"]:
        headline = f"Real photo — P(fake) = {p_fake:.2f}"
    elif verdict["label"] == "unknown":
        headline = f"GAN-generated or synthetic, generator unknown — P(fake) = {p_fake:.2f}"
    else:
        headline = (f"GAN-generated: {LABEL_NAMES[verdict['label']]} — P(fake) = {p_fake:.2f}, "
                    f"P({LABEL_NAMES[verdict['label']]}) = {verdict['probabilities'][verdict['label']]:.2f}")
    lines = [f"### {headline}",
             f"{_escape(verdict['file'])} · {verdict['width']}×{verdict['height']} px · "
             f"{len(verdict['faces'])} face(s) · sha256 `{verdict['sha256'][:16]}…`"]
    said = [f"- {row[0]}: {row[3]}" + (f", {row[2]}" if row[2].startswith("no ") else
                                        f", P(fake) {row[2]}" if row[2] else "")
            for row in branch_rows(verdict) if row[1] == "yes"]
    if said:
        lines.append("**What each branch says on its own**\n" + "\n".join(said))
    if verdict["warnings"]:
        lines.append("**Warnings**\n" + "\n".join(f"- {_escape(w)}" for w in verdict["warnings"]))
    skipped = {b: e["reason"] for b, e in verdict["evidence"].items() if e and e["probabilities"] is None}
    if skipped:
        lines.append("**Branches that did not run**\n" + "\n".join(
            f"- {BRANCH_NAMES.get(b, b)}: {_escape(reason or 'unknown reason')}" for b, reason in skipped.items()))
    return "\n\n".join(lines)


def branch_rows(verdict: dict) -> list[list[str]]:
    """One row per branch: whether it ran, its own P(fake) and top class, or why it did not run."""
    rows = []
    for branch, evidence in verdict["evidence"].items():
        probs = (evidence or {}).get("probabilities")
        if probs is None:
            rows.append([BRANCH_NAMES.get(branch, branch), "no", "", "", (evidence or {}).get("reason") or ""])
            continue
        p_fake = evidence.get("fake_probability")
        no_skill = any(note.startswith("no real/fake skill") for note in evidence.get("skill_notes") or [])
        top = max(probs, key=probs.get)
        own = evidence.get("label")
        top_text = f"{top} ({probs[top]:.2f})" + (f", says {own}" if own and own != top else "")
        p_text = "no real/fake skill" if no_skill else ("" if p_fake is None else f"{p_fake:.3f}")
        rows.append([BRANCH_NAMES.get(branch, branch), "yes", p_text, top_text, ""])
    return rows


def analyze_batch(pipe: P.Pipeline, paths: list[str] | None) -> tuple[list[list[str]], str]:
    """Many files → a table and a CSV (the same columns as scripts/scan.py) to download."""
    if not paths:
        raise gr.Error("No files were uploaded: choose one or more image files first.", print_exception=False)
    if len(paths) > MAX_BATCH_FILES:
        raise gr.Error(f"{len(paths)} files is more than the {MAX_BATCH_FILES} this page takes at once; use "
                       "scripts/scan.py for large folders.", print_exception=False)
    results = pipe.analyze(paths, names=[Path(p).name for p in paths])
    rows = []
    for result in results:
        if isinstance(result, P.Failure):
            rows.append([result.file, "not analysed", "", result.error])
        else:
            p_fake = "" if result.fake_probability is None else f"{result.fake_probability:.3f}"
            rows.append([result.file, LABEL_NAMES[result.label], p_fake, " | ".join(result.warnings)])
    out = new_results_path()
    out.write_text(P.write_csv(results), encoding="utf-8")
    return rows, str(out)


def report_download(verdict: dict, pictures: P.EvidencePictures | None) -> gr.DownloadButton:
    """The last verdict's evidence report (evidence_report.py) as a download; kept an hour, like batch CSVs."""
    path = write_report(verdict, pictures, new_results_path().parent)
    return gr.DownloadButton(value=str(path), interactive=True)


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


def status_markdown(pipe: P.Pipeline) -> str:
    """Which branches can run, which cannot and the exact command that enables each."""
    lines = ["| branch | state | weights | how to enable |", "|---|---|---|---|"]
    for status in pipe.status():
        if status.ready:
            state = "ready"
        elif status.ready is None:
            state = "not loaded yet"
        else:
            state = "off: " + _escape(status.reason or "")
        weights = "<br>".join(f"{_escape(n)}: {_escape(s[:12] if len(s) == 64 else s)}"
                              for n, s in status.weights.items())
        fix = "<br>".join(f"`{_escape(f)}`" for f in status.fix)
        lines.append(f"| {BRANCH_NAMES.get(status.branch, status.branch)} | {state} | {weights} | {fix} |")
    return "\n".join(lines)


def build_demo(pipe: P.Pipeline) -> gr.Blocks:
    """The whole interface around one pipeline; tests launch it with a pipeline of tiny models."""
    with gr.Blocks(title="GANTrace", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Face image (original file, analysed byte for byte)",
                                     file_types=UPLOAD_TYPES, type="filepath", elem_id="upload")
                    run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                    report = gr.DownloadButton("Download report", interactive=False, elem_id="report")
                with gr.Column(scale=2):
                    card = gr.Markdown("Upload an image to analyse it.", elem_id="verdict-card")
                    bars = gr.Label(label="Probabilities", num_top_classes=len(LABEL_NAMES), elem_id="bars")
            with gr.Tab("Aligned face"):
                aligned = gr.Image(label="FFHQ-aligned face fed to e4e", interactive=False)
            with gr.Tab("Spectrum"):
                spectrum = gr.Image(label="High-pass residual spectrum (GAN up-sampling shows as peaks)",
                                    interactive=False)
            with gr.Tab("Grad-CAM"):
                gradcam = gr.Image(label="FingerprintNet Grad-CAM for its predicted class", interactive=False)
            with gr.Tab("Branches"):
                table = gr.Dataframe(headers=BRANCH_HEADERS, interactive=False, wrap=True)
            with gr.Tab("JSON"):
                verdict_json = gr.JSON(label="Verdict")
            pictures = gr.State()
        with gr.Tab("Batch"):
            batch_files = gr.File(label="Image files", file_count="multiple", file_types=UPLOAD_TYPES,
                                  type="filepath")
            batch_run = gr.Button("Analyse all", variant="primary")
            batch_table = gr.Dataframe(headers=BATCH_HEADERS, interactive=False, wrap=True)
            batch_csv = gr.File(label="Results (CSV)", interactive=False)
        with gr.Tab("Model status"):
            status = gr.Markdown(status_markdown(pipe))
            refresh = gr.Button("Refresh")

        panels = [card, bars, aligned, spectrum, gradcam, table]
        started = gr.on([run.click, upload.upload], render_pending, None, panels, api_visibility="private",
                        queue=False)
        analysed = started.then(lambda path: analyze_upload(pipe, path), upload, [verdict_json, pictures],
                                api_name="analyze", api_description="Verdict JSON for one image file")
        analysed.success(render_verdict, [verdict_json, pictures], panels, api_visibility="private")
        analysed.failure(render_failure, None, panels, api_visibility="private")
        gr.on([run.click, upload.upload], lambda: gr.DownloadButton(value=None, interactive=False), None, report,
              api_visibility="private", queue=False)
        analysed.success(report_download, [verdict_json, pictures], report, api_visibility="private")
        batch_run.click(lambda paths: analyze_batch(pipe, paths), batch_files, [batch_table, batch_csv],
                        api_name="analyze_batch")
        refresh.click(lambda: status_markdown(pipe), None, status, api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


THEME_FONTS = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, **kwargs: Any) -> Any:
    """Start the server; host/port None lets Gradio read GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    return demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE,
                       theme=gr.themes.Default(**THEME_FONTS), **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None, help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    add_pipeline_arguments(parser)
    args = parser.parse_args(argv)
    pipe = P.Pipeline(config_from_args(args))
    for status in pipe.load_all():
        state = "ready" if status.ready else f"OFF ({status.reason})"
        print(f"{status.branch}: {state}", file=sys.stderr)
    launch(build_demo(pipe), args.host, args.port)
    return 0


def _escape(text: str) -> str:
    """Neutralise Markdown/HTML in file names and messages that come from the uploader."""
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", html.escape(str(text), quote=False))


if __name__ == "__main__":
    sys.exit(main())
