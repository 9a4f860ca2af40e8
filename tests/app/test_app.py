"""The Gradio app: handlers render what the pipeline says, bad inputs get their message, the API returns a Verdict."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import gradio as gr
import pytest

import app
from pipeline import EvidencePictures, Pipeline, PipelineConfig, wording
from tiny_models import DESIGN_FIELDS, png_bytes, tiny_pipeline, unskilled_pipeline

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return tiny_pipeline(tmp_path_factory.mktemp("tiny-models"))


def verdict(**changes) -> dict:
    base = {"file": "face.png", "sha256": "ab" * 32, "width": 512, "height": 512, "is_fake": True,
            "fake_probability": 0.9, "label": "stylegan2",
            "probabilities": {"real": 0.1, "progan": 0.1, "stylegan2": 0.7, "stylegan3": 0.1, "unknown": 0.0},
            "evidence": {"clip_probe": {"probabilities": None, "label": None, "reason": "weight missing",
                                        "fake_probability": None},
                         "fingerprint_net": {"probabilities": {"real": 0.1, "progan": 0.1, "stylegan2": 0.7,
                                                               "stylegan3": 0.1}, "label": None, "reason": None,
                                             "fake_probability": 0.9},
                         "latent_svm": {"probabilities": {"progan": 0.2, "stylegan2": 0.5, "stylegan3": 0.3},
                                        "label": "unknown", "reason": None, "fake_probability": None}},
            "faces": [], "warnings": [], "timings_ms": {}, "models": {}}
    base.update(changes)
    return base


def test_card_says_the_verdict_once_in_plain_words_with_the_technical_detail_behind_a_disclosure():
    card = app.verdict_card(verdict())
    plain, detail = card.split("<details", 1)
    assert plain.startswith("### GAN-generated: StyleGAN2\n\nThe checks reliable enough to vote put the chance that "
                            "this image is generated at 90%, and the chance that StyleGAN2 made it at 70%.\n\n")
    assert "P(fake)" not in plain and "FingerprintNet" not in plain
    assert "- P(fake) = 0.900, P(StyleGAN2) = 0.700" in detail and "- Voted on real vs fake: FingerprintNet" in detail
    assert "- FingerprintNet: stylegan2 (0.70), P(fake) 0.900" in detail
    assert "- Latent SVM (e4e W+): stylegan2 (0.50), says unknown" in detail
    assert "- CLIP probe (UFD): weight missing" in detail and detail.rstrip().endswith("</details>")


def test_warnings_in_plain_words_stay_on_the_card_and_branch_by_branch_ones_go_behind_the_disclosure():
    card = app.verdict_card(verdict(warnings=["2 faces analysed; the verdict is for face 1",
                                              "the attribution branches disagree: fingerprint_net says stylegan2, "
                                              "latent_svm says progan"]))
    plain, detail = card.split("<details", 1)
    assert "**Warnings**\n- 2 faces analysed; the verdict is for face 1\n" in plain and "disagree" not in plain
    assert card.count("the attribution branches disagree") == 1 and "- the attribution branches disagree" in detail


def test_the_warnings_fusion_writes_to_restate_a_verdict_are_left_to_the_statement():
    from pipeline.branch import BranchRole
    from pipeline.evidence import BranchEvidence
    from pipeline.fusion import FusionConfig, fuse

    evidence = {"detector": BranchEvidence({"real": 0.45, "fake": 0.55}),
                "first": BranchEvidence({"progan": 0.4, "stylegan2": 0.35, "stylegan3": 0.25}),
                "second": BranchEvidence({"progan": 0.1, "stylegan2": 0.8, "stylegan3": 0.1})}
    for trusted in (True, False):
        roles = dict.fromkeys(evidence, BranchRole(trust_unmeasured=trusted))
        fused = fuse(evidence, roles=roles, config=FusionConfig(), skills={})
        said = {"label": fused.label, "is_fake": fused.is_fake, "fake_probability": fused.fake_probability,
                "probabilities": fused.probabilities, "warnings": fused.warnings, "uncertain": fused.uncertain,
                "evidence": {name: {"probabilities": item.probabilities} for name, item in evidence.items()}}
        assert fused.warnings and wording.notes(said) == [], fused.warnings
        caution = "Treat it with caution: the result is close to the line between real and generated."
        assert (caution in wording.statement(said).reason) == trusted  # P(fake) 0.55: near the decision point


def test_card_for_a_real_photo_and_for_an_unknown_generator():
    real = app.verdict_card(verdict(is_fake=False, fake_probability=0.2, label="real"))
    assert real.startswith("### Real photo: the checks found no trace of a GAN\n\nThe checks reliable enough to vote "
                           "put the chance that this image is generated at 20%.")
    unknown = verdict(label="unknown", warnings=["generator unknown: the most likely architecture, stylegan2, has "
                                                 "P = 0.45, under the 0.50 needed"])
    card = app.verdict_card(unknown)
    assert card.startswith("### GAN-generated or synthetic, generator unknown\n\nThe checks reliable enough to vote "
                           "put the chance that this image is generated at 90%, but it matches none of the generators")
    assert card.count("generator unknown: the most likely architecture") == 1
    assert "**Warnings**" not in card  # the one warning restates the verdict: it is in the detail only


def test_a_near_call_says_treat_with_caution_in_plain_words_and_keeps_the_figure_in_the_detail():
    near = verdict(fake_probability=0.55, uncertain=["P(fake) = 0.55 is within 0.10 of the decision point"],
                   warnings=["uncertain: P(fake) = 0.55 is within 0.10 of the decision point"])
    plain, detail = app.verdict_card(near).split("<details", 1)
    assert "Treat it with caution: the result is close to the line between real and generated." in plain
    assert "0.10" not in plain and "Caution: P(fake) = 0.55 is within 0.10 of the decision point" in detail


SKILL_NOTE = "no real/fake skill: held-out AUC 0.70 < 0.85; held-out AUC 0.72 after JPEG q75 < 0.85"
UNDECIDED = {"is_fake": None, "fake_probability": None, "label": "undecided",
             "probabilities": dict.fromkeys(("real", "progan", "stylegan2", "stylegan3", "unknown")),
             "uncertain": ["nothing voted on real vs fake: clip_probe: did not run; spectral_dct: " + SKILL_NOTE],
             "warnings": ["no real-vs-fake detector with the skill to vote ran, so real or fake cannot be decided; "
                          "see `evidence` for each branch's own output and why the others did not run or vote"],
             "evidence": {"clip_probe": {"probabilities": None, "label": None, "fake_probability": None,
                                         "reason": "weight 'clip-vit-l14-openai' is unavailable: it is not in the "
                                                   "local cache and downloads are disabled; it comes from the Hub; "
                                                   "fetch it with: python scripts/download_weights.py --name "
                                                   "clip-vit-l14-openai"},
                          "spectral_dct": {"probabilities": {"real": 0.75, "progan": 0.05, "stylegan2": 0.15,
                                                             "stylegan3": 0.05},
                                           "label": None, "reason": None, "fake_probability": None,
                                           "skill_notes": [SKILL_NOTE]}}}


def test_an_undecided_verdict_gives_its_reason_once_and_the_face_panel_refers_to_the_card():
    face = {"box": [0, 0, 10, 10], "alignment_error": 0.02, "primary": True, "evidence": {},
            **{k: v for k, v in UNDECIDED.items() if k not in ("warnings", "evidence")}}
    undecided = verdict(**UNDECIDED, faces=[face])
    card, caption, panel = app.verdict_card(undecided), app.face_gallery(undecided, _one_crop())[0][1], \
        app.face_markdown(undecided, 0)
    plain, detail = card.split("<details", 1)
    assert plain.startswith("### No decision: none of the loaded checks is reliable enough to call this face real or "
                            "generated\n\nThe check that gave an answer has not proved reliable on images from "
                            "sources it was not trained on, so its answer does not count; 1 other check could not "
                            "run.\n\n")
    assert "AUC" not in plain and "**Warnings**" not in plain and "Why there is no decision" not in card
    assert card.count("held-out AUC 0.70 &lt; 0.85") == 1 and "- Spectral DCT baseline: no real/fake skill" in detail
    assert "download\\_weights" not in card and "it comes from" not in card
    assert "- CLIP probe (UFD): weight 'clip-vit-l14-openai' is unavailable: it is not in the local cache and " \
           "downloads are disabled\n" in detail
    assert caption == "1: No decision"
    assert panel.startswith("#### Face 1 (the verdict is about this face): No decision\n\nThe verdict card says why.")
    assert "AUC" not in panel and "reliable" not in panel
    assert not any("Unknown generator" in text for text in (card, caption, panel))


def test_an_undecided_verdict_where_no_branch_ran_says_so_instead_of_blaming_their_skill():
    nothing_ran = {"clip_probe": {"probabilities": None, "reason": "weight 'x' is unavailable: not installed"},
                   "latent_svm": {"probabilities": None, "reason": "wall.png: no face found"}}
    card = app.verdict_card(verdict(**{**UNDECIDED, "evidence": nothing_ran}))
    assert card.startswith("### No decision: no check could run on this image\n\nEvery check failed to load or had "
                           "nothing to look at")
    assert "reliable" not in card and "- Latent SVM (e4e W+): wall.png: no face found" in card.split("<details")[1]


def test_another_face_of_the_picture_gets_its_own_plain_reason_in_the_face_panel():
    face = {"box": [0, 0, 10, 10], "alignment_error": 0.02, "evidence": {},
            **{k: v for k, v in UNDECIDED.items() if k not in ("warnings", "evidence")}}
    group = verdict(faces=[{**face, "primary": True, "label": "stylegan2", "is_fake": True, "fake_probability": 0.9},
                           {**face, "primary": False}], evidence=UNDECIDED["evidence"])
    assert app.face_markdown(group, 1).startswith("#### Face 2: No decision\n\nThe check that gave an answer has not "
                                                  "proved reliable")


def test_the_probabilities_panel_has_a_fixed_title_and_no_heading_of_its_own():
    decided = app.probability_panel(verdict())
    assert decided.label == "Probabilities" and decided.show_heading is False
    evidence = {"clip_probe": {"probabilities": {"real": 0.3, "fake": 0.7}, "label": None, "reason": None,
                               "fake_probability": None, "skill_notes": ["no real/fake skill: none measured"]}}
    panel = app.probability_panel(verdict(**{**UNDECIDED, "evidence": evidence}))
    assert panel.label == "No decision: each check's own P(fake), not a vote" and panel.show_heading is False
    assert panel.value["confidences"] == [{"label": "CLIP probe (UFD)", "confidence": 0.7}]
    empty = app.probability_panel(verdict(**{**UNDECIDED, "evidence": {"clip_probe": {"probabilities": None}}}))
    assert empty.value == {"label": "No decision, and no branch gave a real/fake reading of its own",
                           "confidences": None}
    assert app.branch_rows(verdict(**{**UNDECIDED, "evidence": evidence}))[0][2] == "0.700 own reading, not a vote"


def test_the_header_names_the_branches_from_the_registry_as_they_stand(pipe, tmp_path):
    from tiny_models import Missing

    before = app.intro_markdown(tiny_pipeline(tmp_path / "models", clip_probe=Missing("clip_probe", "clip-x")))
    assert ("combines FingerprintNet, Spectral DCT baseline, Latent SVM (e4e W+) and "
            "Provenance (Content Credentials, metadata) (they load on the first analysis); off: CLIP probe (UFD) (see "
            "the Model status tab)") in before
    loaded = tiny_pipeline(tmp_path / "models", clip_probe=Missing("clip_probe", "clip-x"),
                           latent_svm=Missing("latent_svm", "svm-x", "face"))
    loaded.load_all()
    intro = app.intro_markdown(loaded)
    assert ("the branches loaded, FingerprintNet, Spectral DCT baseline and Provenance "
            "(Content Credentials, metadata); off: CLIP probe (UFD) and Latent SVM (e4e W+) (see") in intro


def _one_crop() -> EvidencePictures:
    import numpy as np

    return EvidencePictures(faces=[np.zeros((256, 256, 3), np.uint8)])


def test_uploader_controlled_text_cannot_inject_markup():
    card = app.verdict_card(verdict(file="<img src=x onerror=alert(1)>**bold**.png", warnings=["`x` | y"]))
    assert "<img" not in card and "**bold**" not in card and "&lt;img" in card


def test_branch_table_shows_each_branch_own_opinion_and_open_set_label():
    rows = {row[0]: row for row in app.branch_rows(verdict())}
    assert rows["CLIP probe (UFD)"][1:] == ["no", "", "", "weight missing"]
    assert rows["FingerprintNet"][2:4] == ["0.900", "stylegan2 (0.70)"]
    assert rows["Latent SVM (e4e W+)"][3] == "stylegan2 (0.50), says unknown"


def test_upload_handler_returns_the_verdict_json_and_pictures(pipe, real_face):
    data, pictures = app.analyze_upload(pipe, str(real_face))
    assert set(data) == DESIGN_FIELDS and data["file"] == real_face.name
    card, bars, provenance, overview, gallery, face, spectrum, gradcam, table, report = app.render_verdict(data,
                                                                                                   pictures)
    assert overview.shape == (data["height"], data["width"], 3) and spectrum.ndim == 3
    assert [crop.shape for crop, _ in gallery] == [(256, 256, 3)] and gallery[0][1].startswith("1: ")
    assert face.startswith("#### Face 1 (the verdict is about this face)")
    shown = {item["label"] for item in bars.value["confidences"]}
    assert shown <= set(wording.LABEL_NAMES.values()) and len(table) == 5 and report.interactive
    assert provenance.splitlines()[2] == "- Content Credentials: none (absence is not evidence: most files carry " \
                                         "none, and they are easy to strip)"


def test_each_face_of_a_group_photo_has_its_own_evidence_panel():
    face = {"box": [0, 0, 10, 10], "alignment_error": 0.02, "label": "stylegan2", "fake_probability": 0.9,
            "uncertain": [], "evidence": {"latent_svm": {"probabilities": {"progan": 0.1, "stylegan2": 0.8,
                                                                           "stylegan3": 0.1},
                                                         "label": "stylegan2", "reason": None,
                                                         "fake_probability": None, "skill_notes": []}}}
    group = verdict(faces=[{**face, "primary": True}, {**face, "label": "real", "fake_probability": 0.2,
                                                       "primary": False}])
    first, second = app.face_markdown(group, 0), app.face_markdown(group, 1)
    assert first.startswith("#### Face 1 (the verdict is about this face): StyleGAN2\n\nThe verdict card says why.")
    assert second.startswith("#### Face 2: Real photo — P(fake) = 0.20")
    assert "- Latent SVM (e4e W+): stylegan2 (0.80)" in first
    assert app.face_markdown(verdict(faces=[]), None).startswith("No face was found")


def test_corrupt_and_missing_uploads_raise_the_image_module_message(pipe, tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    with pytest.raises(gr.Error, match="broken.png: not an image file Pillow can read"):
        app.analyze_upload(pipe, str(corrupt))
    with pytest.raises(gr.Error, match="No file was uploaded"):
        app.analyze_upload(pipe, None)


def test_faceless_upload_is_analysed_with_the_no_face_warning_in_the_card(pipe, tmp_path):
    noise = tmp_path / "wall.png"
    noise.write_bytes(png_bytes(__import__("numpy").full((128, 128, 3), 90, dtype="uint8")))
    data, _ = app.analyze_upload(pipe, str(noise))
    assert "wall.png: no face found" in app.verdict_card(data)


def test_batch_handler_gives_a_table_and_a_csv_with_a_row_per_file(pipe, real_face, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"junk")
    rows, csv_path = app.analyze_batch(pipe, [str(real_face), str(junk)])
    assert rows[1][:2] == ["junk.jpg", "not analysed"] and "not an image file" in rows[1][3]
    with open(csv_path, newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["file"] for r in written] == [real_face.name, "junk.jpg"]
    assert written[0]["label"] and written[1]["error"]


def test_batch_results_older_than_an_hour_are_deleted_when_a_new_batch_starts(tmp_path):
    import os
    import time

    old = app.new_results_path(tmp_path)
    old.write_text("file\nsecret-name.jpg\n")
    recent = app.new_results_path(tmp_path)
    recent.write_text("file\n")
    stale = time.time() - app.RESULTS_MAX_AGE_S - 60
    os.utime(old.parent, (stale, stale))
    fresh = app.new_results_path(tmp_path)
    assert not old.parent.exists() and recent.parent.exists()
    assert fresh.parent.parent == tmp_path and not fresh.exists()


def test_status_panel_says_how_to_enable_a_branch_that_is_off(pipe):
    text = app.status_markdown(pipe)
    assert "| Latent SVM (e4e W+) | ready |" in text
    assert text.split("\n\n")[0].count("\n") == 6


def test_fix_commands_live_on_the_model_status_tab_not_on_the_verdict_card(real_face, tmp_path):
    from tiny_models import Missing

    missing = tiny_pipeline(tmp_path / "models", clip_probe=Missing("clip_probe", "clip-x"))
    data, _ = app.analyze_upload(missing, str(real_face))
    assert "| CLIP probe (UFD) | off: weight 'clip-x' is unavailable" in app.status_markdown(missing)
    assert "fetch it with" not in app.status_markdown(missing)  # the command has its own column there
    assert "download\\_weights" not in app.verdict_card(data)
    assert "CLIP probe (UFD): weight 'clip-x' is unavailable: it is not in the local cache and downloads are " \
           "disabled" in app.verdict_card(data)
    assert not any("download_weights" in row[4] for row in app.branch_rows(data))


def test_status_panel_names_the_attribution_model_it_runs_or_that_none_is_loaded(pipe, tmp_path, monkeypatch):
    assert attribution_line(app.status_markdown(pipe)).startswith(
        "**Attribution model:** an injected model: trained by GANTrace")
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    bare = Pipeline(PipelineConfig(download=False))
    assert attribution_line(app.status_markdown(bare)) == \
        "**Attribution model:** none loaded, so no face is attributed (see the Latent SVM row)"


def attribution_line(status: str) -> str:
    return next(line for line in status.splitlines() if line.startswith("**Attribution model:**"))


def test_launched_app_answers_the_api_with_a_verdict_of_the_uploaded_bytes(pipe, real_face, tmp_path):
    from gradio_client import Client, handle_file

    demo = app.build_demo(pipe)
    _, local_url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", max_file_size=app.MAX_FILE_SIZE)
    try:
        client = Client(local_url, verbose=False, analytics_enabled=False)
        data = client.predict(handle_file(str(real_face)), api_name="/analyze")
        assert set(data) == DESIGN_FIELDS
        assert data["sha256"] == hashlib.sha256(real_face.read_bytes()).hexdigest()
        assert data["label"] in wording.LABEL_NAMES
        corrupt = tmp_path / "corrupt.jpg"
        corrupt.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
        with pytest.raises(Exception, match="corrupt.jpg: "):
            client.predict(handle_file(str(corrupt)), api_name="/analyze")
    finally:
        demo.close()


def test_the_api_answers_undecided_for_a_real_face_when_no_loaded_branch_has_the_skill(real_face, tmp_path):
    from gradio_client import Client, handle_file

    demo = app.build_demo(unskilled_pipeline(tmp_path / "models"))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        data = Client(local_url, verbose=False, analytics_enabled=False).predict(handle_file(str(real_face)),
                                                                                 api_name="/analyze")
    finally:
        demo.close()
    assert data["schema_version"] == 2 and data["label"] == "undecided" and data["is_fake"] is None
    assert data["uncertain"][0].startswith("nothing voted on real vs fake") and data["faces"][0]["label"] == "undecided"


def _noise_png(path: Path, seed: int = 0) -> Path:
    import numpy as np

    path.write_bytes(png_bytes(np.random.default_rng(seed).integers(0, 255, (96, 96, 3), dtype="uint8")))
    return path


def _session_state_bytes(demo: gr.Blocks) -> int:
    """Bytes of every value Gradio holds in gr.State across all sessions (numpy arrays counted by size)."""
    import pickle

    return sum(len(pickle.dumps(value)) for session in demo.state_holder.session_data.values()
               for value in session.state_data.values())


def test_many_fresh_sessions_keep_no_more_pictures_than_the_bound(pipe, tmp_path):
    from gradio_client import Client, handle_file

    store = app.picture_store(max_items=3)
    demo = app.build_demo(pipe, store)
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        for index in range(8):
            client = Client(local_url, verbose=False, analytics_enabled=False)
            client.predict(handle_file(str(_noise_png(tmp_path / f"wall{index}.png", index))), api_name="/analyze")
        assert len(store) == 3 and 0 < store.nbytes <= app.PICTURE_BYTES
        assert len(demo.state_holder.session_data) >= 8
        assert _session_state_bytes(demo) < 8 * 200
    finally:
        demo.close()


def test_the_page_shows_the_pictures_kept_under_the_session_token(pipe, tmp_path):
    store = app.picture_store()
    data, pictures = app.analyze_upload(pipe, str(_noise_png(tmp_path / "wall.png")))
    _, token = app._keep_pictures(store, data, pictures)
    assert isinstance(token, str) and len(token) < 40 and len(store) == 1
    panels = app.render_verdict(data, store.take(token))
    assert panels[6] is not None and len(store) == 0


def test_ctrl_c_while_the_models_load_stops_in_one_line_without_a_traceback(tmp_path):
    import signal
    import subprocess
    import sys

    code = ("import sys, time, pipeline\n"
            "def slow(self):\n"
            "    print('LOADING', flush=True)\n"
            "    time.sleep(60)\n"
            "pipeline.Pipeline.load_all = slow\n"
            "import app\n"
            "sys.exit(app.main(['--port', '0']))\n")
    root = Path(app.__file__).resolve().parent
    # a suite started in the background (nohup, `&` without job control) passes SIGINT on ignored, and Python then
    # installs no Ctrl-C handler: the child gets the default disposition back, as a terminal would give it
    process = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout.readline().strip() == "LOADING"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted during start-up; the server is not running"


def test_the_docstring_says_where_gradio_keeps_uploads_and_the_verdict_names_the_cleaned_file(pipe, tmp_path):
    from gradio_client import Client, handle_file

    assert "nothing is written\n  under a client-chosen name" not in app.__doc__
    assert "<cache>/<sha>/<client's file name, cleaned>" in app.__doc__
    demo = app.build_demo(pipe)
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        upload = _noise_png(tmp_path / "wall name;1.png")
        data = Client(local_url, verbose=False, analytics_enabled=False).predict(handle_file(str(upload)),
                                                                                 api_name="/analyze")
        cached = [p for p in Path(demo.GRADIO_CACHE).rglob("*.png") if p.name == data["file"]]
        assert cached and all(Path(demo.GRADIO_CACHE) in p.parents for p in cached)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def trusting_pipe(tmp_path_factory):
    """The tiny pipeline that trusts the C2PA test chain (as --c2pa-trust tests/data/c2pa/es256_certs.pem would)."""
    from made_files import CHAIN

    return tiny_pipeline(tmp_path_factory.mktemp("tiny-models"), branch_options={"provenance": {"trust": str(CHAIN)}})


@pytest.fixture(scope="module")
def signed_face(tmp_path_factory) -> Path:
    from made_files import signed_face as sign

    return sign(tmp_path_factory.mktemp("signed") / "signed.jpg", agent="Diffusion Studio 3")


def test_a_face_signed_by_a_trusted_generator_reads_generated_in_plain_words_with_the_provenance_panel(
        trusting_pipe, signed_face):
    """/analyze returns evidence.provenance; the card says why once, in plain words; the panel says each finding."""
    data, pictures = app.analyze_upload(trusting_pipe, str(signed_face))
    details = data["evidence"]["provenance"]["details"]
    assert details["votes_fake"] and details["content_credentials"]["validation"] == "trusted"
    assert data["is_fake"] is True and data["label"] == "unknown"
    card, _, provenance, *_ = app.render_verdict(data, pictures)
    plain = card.split("<details")[0]
    assert plain.startswith("### Generated by a generative model\n\nThe file carries Content Credentials signed by a "
                            "trusted signer")
    assert plain.count("Content Credentials") == 1 and "The checks reliable enough" not in plain
    lines = provenance.splitlines()
    assert lines[0] == app.PROVENANCE_TITLE and lines[2].startswith("- Content Credentials: signed by ")
    assert "trusted (on the C2PA trust list or your --c2pa-trust anchors); declares: created by a generative " \
           "model (trainedAlgorithmicMedia); software agent Diffusion Studio 3" in lines[2]
    assert any(line.startswith("- Vote: fake") for line in lines)


def test_the_same_signed_face_without_the_anchor_is_shown_untrusted_and_left_to_the_other_checks(pipe, signed_face):
    data, _ = app.analyze_upload(pipe, str(signed_face))
    provenance = app.provenance_panel(data)
    assert "not on your trust list \\[signingCredential.untrusted\\]; declares: created by a generative model " \
           "(trainedAlgorithmicMedia)" in provenance
    assert data["evidence"]["provenance"]["fake_probability"] is None
    assert not app.verdict_card(data).startswith("### Generated")


def test_the_model_status_tab_names_the_trust_list_its_source_date_and_the_users_anchors(trusting_pipe):
    from made_files import CHAIN

    trusting_pipe.load_all()
    assert "**Content Credentials trust:** trusts the C2PA trust list" in app.status_markdown(trusting_pipe)
    trust = app.trust_state(trusting_pipe.status())
    assert "C2PA trust list" in trust and "c2pa-org/conformance-public" in trust and "2025-12-05" in trust
    assert f"your anchors from {CHAIN}" in trust and app.TRUST_LIST_RECORD in trust
