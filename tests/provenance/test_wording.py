"""provenance_lines: one plain line per finding, for the app's panel and the report."""

from __future__ import annotations

from made_files import CHAIN
from pipeline.provenance_wording import provenance_lines
from provenance.c2pa_manifest import ManifestReader
from provenance.read import read_provenance
from provenance.trust import load_trust


def lines(path, anchors=None) -> list[str]:
    found = read_provenance(path.read_bytes(), path.name, ManifestReader(load_trust(anchors)))
    return provenance_lines(found.to_json())


def test_untrusted_signer_and_the_generative_declaration_are_said_plainly(made):
    first, vote = lines(made["signed"])
    assert first.startswith("Content Credentials: signed by C2PA Signer (C2PA Test Signing Cert), not on your trust "
                            "list")
    assert "declares: created by a generative model (trainedAlgorithmicMedia); software agent StyleGAN2 ada" in first
    assert vote.startswith("Vote: none")


def test_trusted_generative_manifest_says_it_votes_and_for_which_architecture(made):
    assert lines(made["signed"], CHAIN)[-1] == ("Vote: fake (trusted Content Credentials declare a generated "
                                                "picture; architecture stylegan2)")


def test_capture_altered_and_unsigned_claims_each_get_their_line(made):
    assert "strong evidence of a camera original, but not a vote for real" in lines(made["capture"], CHAIN)[-1]
    assert "INVALID: the file was changed after it was signed" in lines(made["altered"], CHAIN)[0]
    xmp = lines(made["xmp"])
    assert "XMP (unsigned) declares: created by a generative model (trainedAlgorithmicMedia)" in xmp
    assert any(line.startswith("Generator metadata (unsigned, PNG text chunk 'parameters'): Stable Diffusion WebUI, "
                               "model v1-5-pruned-emaonly") for line in lines(made["sd_png"]))
    assert lines(made["stripped"])[0].startswith("Content Credentials: none")


def test_no_details_is_one_line():
    assert provenance_lines(None) == ["Provenance: not read"]
