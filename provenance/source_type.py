"""The IPTC digital source type vocabulary (cv.iptc.org/newscodes/digitalsourcetype), as C2PA actions and XMP use it.

Why a module: the trust rule votes on a declared source type, so which terms mean "an algorithm made this picture"
and which mean "a camera captured it" must be written once, with the reason for each choice.
"""

from __future__ import annotations

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"

# Pictures an algorithm made, not a camera: what GANTrace calls fake. trainedAlgorithmicMedia is IPTC's term for
# "created by a model trained on sampled content" (a GAN or diffusion face); compositeWithTrainedAlgorithmicMedia
# for a picture that contains such generated parts; algorithmicMedia for media "created purely by an algorithm not
# based on any sampled training data" (still no photograph of a real face).
GENERATIVE = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia"})

# A camera (or film scanned) recorded the scene. computationalCapture is a phone's multi-frame capture: still a
# capture, not a generation. A re-photographed screen is a capture too, so none of these ever votes real.
CAPTURE = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm"})

PLAIN_WORDS = {
    "trainedAlgorithmicMedia": "created by a generative model",
    "compositeWithTrainedAlgorithmicMedia": "a composite with parts made by a generative model",
    "algorithmicMedia": "created by an algorithm",
    "digitalCapture": "captured by a digital camera",
    "computationalCapture": "captured by a camera with computational processing",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from film",
    "print": "scanned from a print",
    "compositeCapture": "a composite of captured elements",
    "compositeSynthetic": "a composite including synthetic elements",
    "digitalCreation": "created by a person with digital tools",
    "digitalArt": "created by a person with digital tools",
    "minorHumanEdits": "a capture with minor human edits",
    "humanEdits": "edited by a person",
    "algorithmicallyEnhanced": "a capture enhanced by an algorithm",
    "dataDrivenMedia": "rendered from data",
    "screenCapture": "a screen capture",
    "virtualRecording": "a recording of a virtual scene",
    "composite": "a composite",
}


def short_name(term: str | None) -> str | None:
    """The vocabulary term of a declared source type ("trainedAlgorithmicMedia"), whatever prefix it was written
    with (the IPTC URI, a `digsrctype:` prefix or none); None for an empty value."""
    if not term:
        return None
    text = str(term).strip()
    for separator in ("/", ":"):
        text = text.rsplit(separator, 1)[-1]
    return text or None


def plain_words(term: str | None) -> str:
    """What a source type means, in words an analyst reads ("created by a generative model")."""
    name = short_name(term)
    return PLAIN_WORDS.get(name or "", f"digital source type {name!r}")
