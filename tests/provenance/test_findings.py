"""What the provenance readers find in files made at test time, and the trust rule that decides when it votes."""

from __future__ import annotations

from pathlib import Path

import pytest

from made_files import CHAIN
from provenance.c2pa_manifest import ManifestReader
from provenance.read import read_provenance
from provenance.trust import TRUST_ENV, load_trust, trust_path


def findings(path: Path, anchors: Path | None = None):
    return read_provenance(path.read_bytes(), path.name, ManifestReader(load_trust(anchors)))


def test_signed_face_reports_its_manifest_signer_and_declared_generator(made):
    found = findings(made["signed"], CHAIN)
    credentials = found.content_credentials
    assert credentials.validation == "trusted" and credentials.status_codes == ()
    assert credentials.signer == "C2PA Signer" and credentials.signer_organization == "C2PA Test Signing Cert"
    assert credentials.claim_generator == "gantrace-tests 1"
    assert [(a.action, a.digital_source_type, a.software_agent) for a in credentials.actions] == [
        ("c2pa.created", "trainedAlgorithmicMedia", "StyleGAN2 ada")]
    assert found.declared_source_type == "trainedAlgorithmicMedia"


def test_the_same_file_votes_with_the_test_anchor_and_not_without_it(made):
    without, with_anchor = findings(made["signed"]), findings(made["signed"], CHAIN)
    assert without.content_credentials.validation == "untrusted"
    assert "signingCredential.untrusted" in without.content_credentials.status_codes
    assert not without.votes_fake and without.architecture is None
    assert with_anchor.votes_fake and with_anchor.architecture == "stylegan2"


def test_a_file_altered_after_signing_is_invalid_warns_and_never_votes(made):
    found = findings(made["altered"], CHAIN)
    assert found.content_credentials.validation == "invalid"
    assert "assertion.dataHash.mismatch" in found.content_credentials.status_codes
    assert not found.votes_fake
    assert any("changed after it was signed" in w for w in found.warnings)


def test_a_generator_outside_the_known_three_votes_fake_with_an_unknown_architecture(tmp_path):
    from made_files import signed_face

    found = findings(signed_face(tmp_path / "dalle.jpg", agent="Image Maker 3"), CHAIN)
    assert found.votes_fake and found.architecture == "unknown"
    assert any("Image Maker 3" in w and "unknown" in w for w in found.warnings)


def test_a_trusted_capture_is_strong_evidence_but_never_a_vote(made):
    found = findings(made["capture"], CHAIN)
    assert found.capture_original and not found.votes_fake and found.architecture is None


def test_unsigned_xmp_declaration_is_shown_and_never_votes(made):
    found = findings(made["xmp"], CHAIN)
    assert found.content_credentials is None
    assert (found.xmp.digital_source_type, found.xmp.creator_tool) == ("trainedAlgorithmicMedia", "Generator X 2")
    assert found.declared_source_type == "trainedAlgorithmicMedia" and not found.votes_fake


def test_sd_webui_parameters_name_generator_and_model_and_keep_the_prompt_short(made, tmp_path):
    from made_files import SD_PARAMETERS, sd_png

    found = findings(made["sd_png"])
    assert (found.generator.generator, found.generator.model) == ("Stable Diffusion WebUI", "v1-5-pruned-emaonly")
    assert found.generator.prompt == "portrait of a smiling woman, studio light"
    long = findings(sd_png(tmp_path / "long.png", "word " * 1000 + "\n" + SD_PARAMETERS.split("\n", 1)[1]))
    assert len(long.generator.prompt) == 200 and long.generator.prompt.endswith("…")
    assert not found.votes_fake


def test_comfyui_graph_names_its_checkpoint():
    from provenance.generator_metadata import find_generator

    graph = ('{"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl_base.safetensors"}},'
             ' "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a face", "clip": ["4", 1]}}}')
    found = find_generator({"prompt": graph}, {})
    assert (found.generator, found.model, found.prompt) == ("ComfyUI", "sdxl_base.safetensors", "a face")


def test_a_stripped_file_declares_nothing(made):
    found = findings(made["stripped"], CHAIN)
    assert (found.content_credentials, found.xmp, found.generator, found.camera, found.notes) == (
        None, None, None, None, ())
    assert not found.votes_fake and not found.capture_original


def test_camera_exif_is_shown(tmp_path):
    from PIL import Image

    from made_files import FACE

    exif = Image.Exif()
    exif[271], exif[272] = "Canon", "EOS R5"
    exif.get_ifd(0x8769)[36867] = "2024:05:01 10:00:00"
    Image.open(FACE).save(tmp_path / "camera.jpg", exif=exif)
    camera = findings(tmp_path / "camera.jpg").camera
    assert (camera.make, camera.model, camera.taken_at) == ("Canon", "EOS R5", "2024:05:01 10:00:00")


def test_trust_anchors_come_from_the_option_else_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(TRUST_ENV, str(CHAIN))
    assert trust_path(None) == str(CHAIN) and trust_path("mine.pem") == "mine.pem"
    assert load_trust(trust_path(None)).user_source == str(CHAIN)
    (tmp_path / "not.pem").write_text("hello")
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_trust(tmp_path / "not.pem")


def test_to_json_has_a_stable_shape(made):
    keys = {"content_credentials", "xmp", "generator_metadata", "camera", "declared_source_type", "votes_fake",
            "architecture", "capture_original", "warnings", "trust", "notes"}
    assert set(findings(made["signed"], CHAIN).to_json()) == keys == set(findings(made["stripped"]).to_json())
