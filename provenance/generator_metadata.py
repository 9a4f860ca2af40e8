"""Generation parameters that image generators write into the file: Stable Diffusion WebUI (A1111, Forge),
ComfyUI, InvokeAI, NovelAI, Fooocus. The generator and model are named; the prompt is kept short (it can be long
and personal), and these are unsigned claims: shown, never a vote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PROMPT_CHARS = 200
_A1111_MODEL = re.compile(r"(?:^|,\s*)Model:\s*([^,\n]+)")
_A1111_VERSION = re.compile(r"(?:^|,\s*)Version:\s*([^,\n]+)")
_COMFY_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name")


@dataclass(frozen=True)
class GeneratorMetadata:
    """Who generated the picture according to its metadata, where that was written, and the prompt, truncated."""

    generator: str
    model: str | None
    prompt: str | None
    found_in: str


def find_generator(texts: Mapping[str, str], exif: Mapping[str, str]) -> GeneratorMetadata | None:
    """The first generator whose signature the PNG text chunks or EXIF text tags carry, or None."""
    for key, reader in _TEXT_READERS:
        if key in texts:
            found = reader(texts[key], texts)
            if found is not None:
                generator, model, prompt = found
                return GeneratorMetadata(generator, model, _short(prompt), f"PNG text chunk {key!r}")
    for tag in ("UserComment", "ImageDescription"):
        if tag in exif and "Steps:" in exif[tag]:
            generator, model, prompt = _a1111(exif[tag], {})
            return GeneratorMetadata(generator, model, _short(prompt), f"EXIF {tag}")
    return None


def _a1111(text: str, _texts: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """A1111's "prompt\\nNegative prompt: ...\\nSteps: 20, Sampler: ..., Model: name, Version: v1.10"."""
    lines = text.strip().splitlines()
    settings = next((line for line in reversed(lines) if "Steps:" in line), "")
    prompt_lines = []
    for line in lines:
        if line.startswith("Negative prompt:") or line == settings:
            break
        prompt_lines.append(line)
    model = _A1111_MODEL.search(settings)
    version = _A1111_VERSION.search(settings)
    name = "Stable Diffusion WebUI Forge" if version and version.group(1).startswith("f") else \
        "Stable Diffusion WebUI"
    if "Fooocus" in text:
        name = "Fooocus"
    return name, model.group(1).strip() if model else None, "\n".join(prompt_lines) or None


def _comfyui(text: str, _texts: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    """ComfyUI's API graph: {node id: {"class_type", "inputs"}}; the model is a loader's checkpoint name."""
    graph = _json(text)
    if not isinstance(graph, dict) or not any(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        return None
    nodes = [node for node in graph.values() if isinstance(node, dict)]
    model = next((str(node["inputs"][key]) for node in nodes for key in _COMFY_MODEL_INPUTS
                  if isinstance(node.get("inputs"), dict) and isinstance(node["inputs"].get(key), str)), None)
    prompt = next((node["inputs"]["text"] for node in nodes if "CLIPTextEncode" in str(node.get("class_type"))
                   and isinstance((node.get("inputs") or {}).get("text"), str)), None)
    return "ComfyUI", model, prompt


def _comfyui_workflow(text: str, _texts: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    return ("ComfyUI", None, None) if isinstance(_json(text), dict) else None


def _invokeai(text: str, _texts: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    data = _json(text)
    if not isinstance(data, dict):
        return None
    model = data.get("model")
    name = (model.get("model_name") or model.get("name")) if isinstance(model, dict) else model
    return "InvokeAI", _text(name or data.get("model_weights")), _text(data.get("positive_prompt"))


def _invokeai_legacy(text: str, _texts: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    return "InvokeAI", None, text


def _novelai(text: str, texts: Mapping[str, str]) -> tuple[str, str | None, str | None] | None:
    if "NovelAI" not in text:
        return None
    comment = _json(texts.get("Comment", ""))
    prompt = comment.get("prompt") if isinstance(comment, dict) else None
    return "NovelAI", _text(texts.get("Source")), _text(prompt or texts.get("Description"))


_TEXT_READERS: tuple[tuple[str, Callable[[str, Mapping[str, str]], Any]], ...] = (
    ("parameters", _a1111), ("prompt", _comfyui), ("workflow", _comfyui_workflow),
    ("invokeai_metadata", _invokeai), ("sd-metadata", _invokeai), ("Dream", _invokeai_legacy),
    ("Software", _novelai))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _short(prompt: str | None) -> str | None:
    """The prompt on one line, cut at PROMPT_CHARS with an ellipsis."""
    if not prompt:
        return None
    flat = " ".join(prompt.split())
    return flat if len(flat) <= PROMPT_CHARS else flat[:PROMPT_CHARS - 1] + "…"
