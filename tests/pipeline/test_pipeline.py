"""Pipeline: every branch it can run, missing weights reported not fatal, bad inputs as results, the JSON contract.

The tiny models come from `tests/tiny_models.py`, so these tests need no weights and run in seconds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import (DESIGN_FIELDS, CentreFaceFinder, Missing, ToyDetector, _tiny_models, png_bytes,
                         tiny_branches, tiny_pipeline, unskilled_pipeline)

import pipeline as P
from pipeline.branches import BRANCHES, FingerprintBranch
from pipeline.branch import BranchEntry
from pipeline.evidence import BranchEvidence

@pytest.fixture(scope="module")
def face_file(real_face: Path) -> Path:
    """A real photograph with one frontal face (tests/data, public domain): dlib finds it in a bare clone."""
    return real_face


@pytest.fixture(scope="module")
def faceless_png() -> bytes:
    """A smooth gradient: an image dlib finds no face in."""
    ramp = np.linspace(0, 255, 128, dtype=np.uint8)
    return png_bytes(np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128 * np.ones((1, 1), np.uint8)),
                              axis=-1).astype(np.uint8))


def test_real_face_gets_a_verdict_with_every_design_field_and_all_branches(tiny_dir, face_file):
    verdict = tiny_pipeline(tiny_dir).analyze_one(str(face_file))
    assert isinstance(verdict, P.Verdict)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert set(data) == DESIGN_FIELDS
    assert data["label"] in P.LABELS and set(data["probabilities"]) == set(P.PROBABILITY_LABELS)
    assert all(evidence["probabilities"] is not None for evidence in data["evidence"].values()), data["evidence"]
    assert set(data["evidence"]) == {"clip_probe", "fingerprint_net", "spectral_dct", "latent_svm", "provenance"}
    face = data["faces"][0]
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 68 and face["alignment_error"] >= 0
    assert face["label"] == data["label"] and face["primary"] is True
    assert {"load", "clip_probe", "fingerprint_net", "align", "latent_svm", "total"} <= set(data["timings_ms"])
    assert data["models"]["dlib-landmarks-68"] and "e4e-tiny" in data["models"]
    assert data["width"] == Image.open(face_file).width


def test_missing_weight_turns_only_that_branch_off_with_the_fetch_command(tiny_dir, faceless_png):
    pipe = tiny_pipeline(tiny_dir, clip_probe=Missing("clip_probe", "clip-vit-l14-openai"))
    verdict = pipe.analyze_one(faceless_png)
    clip = verdict.evidence["clip_probe"]
    assert clip["probabilities"] is None
    assert "python scripts/download_weights.py --name clip-vit-l14-openai" in clip["reason"]
    assert verdict.evidence["fingerprint_net"]["probabilities"] is not None
    assert verdict.evidence["latent_svm"]["reason"] and verdict.is_fake is None
    status = {s.branch: s for s in pipe.status()}
    assert status["clip_probe"].ready is False and "clip-vit-l14-openai" in status["clip_probe"].reason
    assert status["fingerprint_net"].ready is True


class _Exploding:
    classes_ = ("real", "progan", "stylegan2", "stylegan3")

    def predict_proba(self, images):
        if any(image.shape[1] == 200 for image in images):
            raise RuntimeError("cannot handle width 200")
        return np.tile([[0.1, 0.2, 0.6, 0.1]], (len(images), 1))


def test_runtime_error_in_a_branch_is_recorded_for_the_image_that_caused_it_only(tiny_dir):
    pipe = tiny_pipeline(tiny_dir, fingerprint_net=FingerprintBranch(_Exploding(), {"exploding": "x"}))
    rng = np.random.default_rng(1)
    good, bad = (png_bytes(rng.integers(0, 255, (128, w, 3), dtype=np.uint8)) for w in (128, 200))
    first, second = pipe.analyze([good, bad], names=["good.png", "bad.png"])
    assert first.evidence["fingerprint_net"]["probabilities"]["stylegan2"] == pytest.approx(0.6)
    assert "fingerprint_net failed: RuntimeError: cannot handle width 200" in \
        second.evidence["fingerprint_net"]["reason"]
    assert second.evidence["clip_probe"]["probabilities"] is not None


def test_bad_inputs_become_failures_with_the_image_module_message_in_order(tiny_dir, face_file, tmp_path):
    truncated = face_file.read_bytes()[:2000]
    tiny = png_bytes(np.zeros((20, 20, 3), np.uint8))
    results = tiny_pipeline(tiny_dir).analyze(
        [b"not an image", str(tmp_path / "absent.jpg"), truncated, tiny, str(face_file)],
        names=["junk.png", "absent.jpg", "cut.webp", "small.png", "face"])
    assert [type(r).__name__ for r in results] == ["Failure"] * 4 + ["Verdict"]
    junk, absent, cut, small, _ = results
    assert junk.error.startswith("junk.png: not an image file")
    assert absent.error == "absent.jpg: no such file"
    assert cut.error.startswith("cut.webp:") and ("truncated" in cut.error or "decoded" in cut.error)
    assert "under the 64-pixel minimum" in small.error
    assert junk.to_dict() == {"schema_version": P.SCHEMA_VERSION, "file": "junk.png", "error": junk.error}


def test_image_without_a_face_is_analysed_with_a_no_face_warning(tiny_dir, faceless_png):
    verdict = tiny_pipeline(tiny_dir).analyze_one(faceless_png, name="gradient.png")
    assert verdict.faces == []
    assert "no face found" in verdict.evidence["latent_svm"]["reason"]
    assert any("gradient.png: no face found" in w for w in verdict.warnings)
    assert verdict.evidence["clip_probe"]["probabilities"] is not None


def test_models_load_once_and_results_stream_in_input_order(tiny_dir):
    calls = []
    model = _tiny_models(str(tiny_dir))["fingerprint_net"]

    class Counting(FingerprintBranch):
        def _build(self, context):
            calls.append(context.batch_size)
            return model

    pipe = tiny_pipeline(tiny_dir, batch_size=2, fingerprint_net=Counting())
    rng = np.random.default_rng(2)
    sources = [png_bytes(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) for _ in range(3)] + [b"junk"]
    names = [f"img{i}" for i in range(4)]
    first = [r.file for r in pipe.analyze_iter(sources, names)]
    pipe.analyze(sources[:1])
    assert first == names
    assert len(calls) == 1


def test_pictures_are_returned_on_request_and_never_in_the_json(tiny_dir, face_file):
    verdict = tiny_pipeline(tiny_dir).analyze_one(str(face_file), with_pictures=True)
    assert verdict.pictures.aligned_face.shape == (256, 256, 3)
    assert verdict.pictures.spectrum.dtype == np.uint8 and verdict.pictures.spectrum.ndim == 3
    assert verdict.pictures.gradcam.shape == (verdict.height, verdict.width, 3)
    assert "pictures" not in verdict.to_dict()
    assert tiny_pipeline(tiny_dir).analyze_one(str(face_file)).pictures is None


def test_gated_attribution_skips_the_latent_branch_for_images_judged_real(tiny_dir, face_file):
    class Real:
        classes_ = ("real", "progan", "stylegan2", "stylegan3")

        def predict_proba(self, images):
            return np.tile([[0.97, 0.01, 0.01, 0.01]], (len(images), 1))

    branches = tiny_branches(tiny_dir, clip_probe=Missing("clip_probe", "clip-vit-l14-openai"),
                             fingerprint_net=FingerprintBranch(Real(), {"real": "x"}))
    config = P.PipelineConfig(device="cpu", dtype="fp32", gate_attribution=True,
                              fusion=P.FusionConfig(trust_unmeasured=("fingerprint_net",)))
    verdict = P.Pipeline(config, branches).analyze_one(str(face_file))
    assert verdict.label == "real"
    assert "gate_attribution" in verdict.evidence["latent_svm"]["reason"]
    assert "latent_svm" not in verdict.timings_ms


def test_random_weights_are_used_only_when_allowed_and_then_said_loudly(tiny_dir, monkeypatch, tmp_path):
    from detector.clip_probe import ClipProbe

    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny = _tiny_models(str(tiny_dir))["clip_probe"]
    monkeypatch.setattr(ClipProbe, "random_init", classmethod(lambda cls, config=None, seed=0, precision=None: tiny))
    rng = np.random.default_rng(3)
    image = png_bytes(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    only_clip = ("spectral_dct", "latent_svm")
    refused = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", disabled_branches=only_clip))
    assert "clip-vit-l14-openai" in refused.analyze_one(image).evidence["clip_probe"]["reason"]
    allowed = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", disabled_branches=only_clip,
                                          random_weights_ok=True))
    verdict = allowed.analyze_one(image)
    assert verdict.models == {"clip_probe": P.RANDOM_WEIGHTS}
    assert any("RANDOM weights" in w for w in verdict.warnings)


def test_status_names_missing_weights_and_how_to_fetch_them(monkeypatch, tmp_path):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = P.Pipeline(P.PipelineConfig(
        branch_options={"fingerprint_net": {"weights": str(tmp_path / "absent.safetensors")}},
        disabled_branches=("clip_probe",), extra_branches=("fingerprint_net",)))
    status = {s.branch: s for s in pipe.status()}
    assert status["clip_probe"].enabled is False and "turned off" in status["clip_probe"].reason
    assert status["fingerprint_net"].ready is False
    latent = status["latent_svm"]
    assert latent.ready is False and latent.weights["e4e-ffhq"] == "missing"
    assert "python scripts/download_weights.py --name e4e-ffhq" in latent.fix
    assert "python scripts/download_weights.py --name ganorigin-svm --trust-foreign-pickle" in latent.fix


def test_csv_rows_carry_every_column_for_verdicts_and_failures(tiny_dir, faceless_png):
    results = tiny_pipeline(tiny_dir).analyze([faceless_png, b"junk"], names=["face.webp", "junk.bin"])
    text = P.write_csv(results)
    assert text.splitlines()[0].split(",") == list(P.CSV_COLUMNS)
    face, junk = csv.DictReader(io.StringIO(text))
    assert face["file"] == "face.webp" and face["label"] in P.LABELS and face["error"] == ""
    assert float(face["p_real"]) + float(face["fake_probability"]) == pytest.approx(1.0, abs=1e-5)
    assert junk["label"] == "" and junk["error"].startswith("junk.bin: not an image file")


def test_every_branch_runs_end_to_end_without_the_face_set(tiny_dir):
    rng = np.random.default_rng(5)
    image = png_bytes(rng.integers(0, 255, (160, 200, 3), dtype=np.uint8))
    verdict = tiny_pipeline(tiny_dir, face_finder=CentreFaceFinder()).analyze_one(image, name="noise.png",
                                                                                  with_pictures=True)
    assert all(evidence["probabilities"] is not None for evidence in verdict.evidence.values()), verdict.evidence
    assert verdict.faces[0]["box"] == [20, 0, 180, 160]
    assert verdict.label in P.LABELS and verdict.models["centre-face-finder"] == "test"
    assert verdict.pictures.aligned_face.shape == (256, 256, 3) and len(verdict.pictures.faces) == 1


class Toy:
    """A branch the pipeline has never heard of: registered, it must show up in every verdict."""

    name, level, warning, skill = "toy", "image", None, None
    models = {"toy-weights": "0" * 64}

    def required_weights(self, context) -> list[str]:
        return []

    def load(self, context) -> None:
        self.batch_size = context.batch_size

    def run(self, inputs):
        return [BranchEvidence({"real": 0.25, "fake": 0.75}) for _ in inputs]


def test_a_registered_toy_branch_reaches_the_verdict_without_editing_the_pipeline(tiny_dir, faceless_png):
    pipe = tiny_pipeline(tiny_dir, registry=(*BRANCHES, BranchEntry(Toy)))
    verdict = pipe.analyze_one(faceless_png)
    status = {s.branch: s for s in pipe.status()}
    assert verdict.evidence["toy"] == {"probabilities": {"real": 0.25, "fake": 0.75}, "label": None, "reason": None,
                                       "out_of_distribution": None, "fake_probability": None,
                                       "skill_notes": ["no real/fake skill: none measured on held-out sources"]}
    assert verdict.models["toy-weights"] == "0" * 64 and "toy" in verdict.timings_ms
    assert status["toy"].ready is True
    assert "toy" not in P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32")).branches


def test_each_weight_file_is_hashed_at_most_once_across_load_and_status(monkeypatch, tmp_path):
    import core.weights as W

    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(W, "_HASHES", {})
    hashed = []
    real_digest = W._digest
    monkeypatch.setattr(W, "_digest", lambda path: hashed.append(Path(path).name) or real_digest(path))
    research = ("fingerprint_net", "residual_npr")
    pipe = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", extra_branches=research))
    pipe.load_all()
    pipe.status()
    statuses = {s.branch: s for s in pipe.status()}
    assert statuses["fingerprint_net"].ready is True and statuses["residual_npr"].ready is True
    assert hashed, "the shipped FingerprintNet, residual and dlib weights should have been verified"
    assert len(hashed) == len(set(hashed)), f"hashed more than once: {hashed}"


def test_a_branch_that_misleads_is_out_of_the_default_set_and_runs_only_when_asked_for_by_name():
    from runners.cli import add_pipeline_arguments, config_from_args

    default = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32"))
    assert not {"fingerprint_net", "residual_npr"} & set(default.branches)
    assert not {"fingerprint_net", "residual_npr"} & {s.branch for s in default.status()}
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    asked = P.Pipeline(config_from_args(parser.parse_args(["--branch", "fingerprint_net", "--device", "cpu"])))
    assert list(asked.branches) == ["clip_probe", "fingerprint_net", "spectral_dct", "latent_svm", "provenance"]
    with pytest.raises(ValueError, match="unknown branches \\['nope'\\]"):
        P.Pipeline(P.PipelineConfig(extra_branches=("nope",)))


def test_the_registry_is_the_tuple_the_pipeline_is_handed_and_names_each_branch_once():
    """No import registers anything: a pipeline built on a smaller tuple holds only its branches, and a tuple that
    names a branch twice is refused before any branch is built."""
    spectral_only = tuple(entry for entry in BRANCHES if entry.name == "spectral_dct")
    assert list(P.Pipeline(P.PipelineConfig(device="cpu"), registry=spectral_only).branches) == ["spectral_dct"]
    assert [entry.name for entry in BRANCHES if entry.default] == ["clip_probe", "spectral_dct", "latent_svm",
                                                                   "provenance"]
    with pytest.raises(ValueError, match="names \\['spectral_dct'\\] more than once"):
        P.Pipeline(P.PipelineConfig(device="cpu"), registry=(*BRANCHES, *spectral_only))


def test_the_shipped_residual_branch_reads_native_pixels_and_stays_silent_below_its_bars(tiny_dir, face_file):
    verdict = tiny_pipeline(tiny_dir, research=("residual_npr",)).analyze_one(str(face_file)).to_dict()
    residual = verdict["evidence"]["residual_npr"]
    assert set(residual["probabilities"]) == {"real", "progan", "stylegan2", "stylegan3"}
    assert sum(residual["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert verdict["models"]["residual-npr"] == "d092412e1cb8a7ce0d97966e6e86bb07851ffbe6cffca5c4fbf5066626a8b66d"
    assert residual["fake_probability"] is None  # its held-out JPEG q75 AUC (0.53) keeps it from voting
    assert any("no real/fake skill" in note for note in residual["skill_notes"])


def test_every_face_of_a_group_photo_gets_its_own_answer_and_the_cap_warns(tiny_dir):
    rng = np.random.default_rng(6)
    image = png_bytes(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    pipe = tiny_pipeline(tiny_dir, face_finder=CentreFaceFinder(per_image=3))
    verdict = pipe.analyze_one(image, name="group.png")
    assert len(verdict.faces) == 3
    assert sum(face["primary"] for face in verdict.faces) == 1
    for face in verdict.faces:
        assert face["evidence"]["latent_svm"]["probabilities"] is not None
        assert face["label"] in P.LABELS
    assert any("3 faces analysed" in w for w in verdict.warnings)
    drawn = pipe.analyze_one(image, name="group.png", with_pictures=True).pictures
    assert len(drawn.faces) == 3 and drawn.faces_overview.shape == (128, 128, 3)
    assert not np.array_equal(drawn.faces_overview, np.asarray(Image.open(io.BytesIO(image))))
    capped = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", max_faces=2), tiny_branches(tiny_dir),
                        CentreFaceFinder(per_image=3)).analyze_one(image, name="group.png")
    assert len(capped.faces) == 2 and any("only the 2 largest were analysed" in w for w in capped.warnings)


def test_a_real_face_that_no_skilled_branch_votes_on_is_undecided_not_unknown(tiny_dir, face_file):
    verdict = unskilled_pipeline(tiny_dir).analyze_one(str(face_file))
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["schema_version"] == 2 and data["label"] == "undecided" and data["is_fake"] is None
    assert data["fake_probability"] is None and set(data["probabilities"].values()) == {None}
    assert data["uncertain"][0].startswith("nothing voted on real vs fake: clip_probe: no real/fake skill: none "
                                           "measured"), data["uncertain"]
    face = data["faces"][0]
    assert face["label"] == "undecided" and face["is_fake"] is None and face["uncertain"] == data["uncertain"]
    assert all(e["fake_probability"] is None for e in data["evidence"].values()), data["evidence"]
    assert data["evidence"]["clip_probe"]["probabilities"]["fake"] is not None  # its own reading stays visible


def test_a_registered_toy_branch_with_a_passing_skill_record_votes_without_editing_fusion(tiny_dir, face_file):
    """It is the only voter: its fake call makes a fake, and with no attribution branch allowed to vote, the
    generator is unknown and a warning says why."""
    verdict = unskilled_pipeline(tiny_dir, registry=(*BRANCHES, BranchEntry(ToyDetector))).analyze_one(str(face_file))
    assert verdict.evidence["toy_detector"]["fake_probability"] == pytest.approx(0.9)
    assert verdict.is_fake is True and verdict.fake_probability == pytest.approx(0.9)
    assert verdict.label == "unknown" and verdict.faces[0]["label"] == "unknown"
    assert "generator unknown: no attribution branch with the skill to vote ran" in verdict.warnings
    assert verdict.evidence["clip_probe"]["fake_probability"] is None  # a non-voter's reading is not shown as a vote


def test_faces_overview_boxes_each_face_in_the_colour_of_its_label():
    from pipeline.image_record import FAKE_COLOUR, LABEL_COLOURS, faces_overview

    picture = faces_overview(np.zeros((200, 300, 3), np.uint8),
                             [(10, 20, 110, 120), (150, 30, 250, 130), (120, 140, 180, 195)],
                             ["real", "stylegan2", "undecided"])
    assert tuple(picture[119, 60]) == LABEL_COLOURS["real"]
    assert tuple(picture[129, 200]) == FAKE_COLOUR
    assert tuple(picture[194, 150]) == LABEL_COLOURS["undecided"] != LABEL_COLOURS["unknown"]
    assert tuple(picture[180, 5]) == (0, 0, 0)


def test_a_float_image_converted_at_intake_says_so_in_the_verdict(tiny_dir, tmp_path):
    ramp = np.linspace(0.0, 1.0, 96 * 96 * 3, dtype=np.float32).reshape(96, 96, 3)
    path = tmp_path / "float.tiff"
    Image.fromarray(ramp[..., 0], mode="F").save(path)
    verdict = tiny_pipeline(tiny_dir).analyze_one(str(path), name="float.tiff")
    assert verdict.warnings[0] == "float.tiff: 32-bit float pixels in 0–1 were scaled ×255 to 8 bits"


def test_an_image_smaller_than_the_clip_crop_is_flagged_and_the_verdict_uncertain(tiny_dir):
    pipe = tiny_pipeline(tiny_dir)
    crop = pipe.branches["clip_probe"].estimator.config.crop_size
    rng = np.random.default_rng(7)
    small = png_bytes(rng.integers(0, 255, (crop - 20, crop - 10, 3), dtype=np.uint8))
    verdict = pipe.analyze_one(small, name="small.png")
    note = verdict.evidence["clip_probe"]["out_of_distribution"]
    assert note.startswith(f"the image is {crop - 10}×{crop - 20} px, under the {crop} px crop")
    assert verdict.uncertain and verdict.uncertain[0] == f"clip_probe: {note}"
    large = pipe.analyze_one(png_bytes(rng.integers(0, 255, (crop + 8, crop + 8, 3), dtype=np.uint8)))
    assert large.evidence["clip_probe"]["out_of_distribution"] is None


def test_the_spectral_branch_reports_the_shipped_artifact_and_its_out_of_distribution_note(tiny_dir):
    from pipeline.branches import SpectralBranch

    rng = np.random.default_rng(8)
    noise = png_bytes(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8))
    spectral = SpectralBranch()
    verdict = tiny_pipeline(tiny_dir, spectral_dct=spectral).analyze_one(noise, name="noise.png")
    evidence = verdict.evidence["spectral_dct"]
    assert set(evidence["probabilities"]) == {"real", "progan", "stylegan2", "stylegan3"}
    assert sum(evidence["probabilities"].values()) == pytest.approx(1.0)
    assert evidence["fake_probability"] is None and evidence["skill_notes"][0].startswith("no real/fake skill")
    assert len(verdict.models["spectral-dct-codecblind"]) == 64
    assert evidence["out_of_distribution"] == spectral.estimator.out_of_distribution(
        [np.asarray(Image.open(io.BytesIO(noise)).convert("RGB"))])[0]


def composite(faces: list[Image.Image], gap: int = 20) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Faces pasted side by side on grey; returns the picture and where each face image was placed."""
    height = max(face.height for face in faces) + 2 * gap
    canvas = Image.new("RGB", (sum(face.width for face in faces) + gap * (len(faces) + 1), height), (128, 128, 128))
    placed, left = [], gap
    for face in faces:
        canvas.paste(face, (left, gap))
        placed.append((left, gap, left + face.width, gap + face.height))
        left += face.width + gap
    return canvas, placed


def assert_one_face_per_placement(verdict: P.Verdict, placed: list[tuple[int, int, int, int]]) -> None:
    centres = sorted(((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in (f["box"] for f in verdict.faces))
    assert len(centres) == len(placed)
    for (cx, cy), (x0, y0, x1, y1) in zip(centres, sorted(placed)):
        assert x0 <= cx <= x1 and y0 <= cy <= y1, (centres, placed)


def test_a_group_picture_of_three_real_faces_gets_three_entries_where_they_were_placed(tiny_dir, real_face,
                                                                                      tmp_path):
    face = Image.open(real_face).convert("RGB")
    picture, placed = composite([face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                                 face.resize((260, 260), Image.Resampling.LANCZOS)])
    picture.save(tmp_path / "group.png")
    verdict = tiny_pipeline(tiny_dir).analyze_one(str(tmp_path / "group.png"), name="group.png")
    assert_one_face_per_placement(verdict, placed)
    assert all(f["evidence"]["latent_svm"]["probabilities"] is not None for f in verdict.faces)
    capped = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", max_faces=2),
                        tiny_branches(tiny_dir)).analyze_one(str(tmp_path / "group.png"), name="group.png")
    assert len(capped.faces) == 2 and any("3 faces found; only the 2 largest" in w for w in capped.warnings)


def test_a_group_picture_of_three_development_faces_gets_three_entries(tiny_dir, faces_dir, tmp_path):
    sources = [sorted((faces_dir / cls).iterdir())[0] for cls in ("real", "stylegan2", "stylegan3")]
    faces = [Image.open(path).convert("RGB").resize((320, 320), Image.Resampling.LANCZOS) for path in sources]
    picture, placed = composite(faces)
    picture.save(tmp_path / "dev-group.png")
    verdict = tiny_pipeline(tiny_dir).analyze_one(str(tmp_path / "dev-group.png"), name="dev-group.png")
    assert_one_face_per_placement(verdict, placed)
