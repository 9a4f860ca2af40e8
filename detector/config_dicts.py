"""Model configs as JSON objects and back: tuples become lists on the way out and lists tuples on the way in.

Why shared: every network we train saves its config dataclass beside its safetensors weights and rebuilds itself
from it, and a config file with a field this version does not know must fail loudly, naming the field, instead
of building a different model.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, TypeVar

Config = TypeVar("Config")


def config_to_dict(config: Any) -> dict:
    """A config dataclass as a JSON-ready dict (tuples as lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}


def config_from_dict(cls: type[Config], values: dict) -> Config:
    """The config `values` describe; an unknown field is a ValueError naming it and the known ones."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in values.items()})
