"""Strict state-dict checking: a checkpoint loads only when every key and shape is the architecture's.

`nn.Module.load_state_dict(strict=True)` lists every problem in one long message, and a non-strict load silently
leaves layers at their random init. A user with the wrong file needs the first bad key, its shape and the shape the
architecture needs, so every loader (e4e, the CLIP probe, FingerprintNet) checks through here first.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class StateDictError(ValueError):
    """A state dict that does not fit an architecture; the message names the source and the first bad key."""

    def __init__(self, source: str, problem: str, key: str | None = None):
        self.source = source
        self.problem = problem
        self.key = key
        super().__init__(f"{source}: {problem}")


def expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every key of `model`'s state dict and its shape (works on a meta-device model, so it costs no memory)."""
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def check_state_dict(state: Mapping[str, object], expected: Mapping[str, tuple[int, ...]], source: str,
                     what: str = "weights", key_prefix: str = "",
                     error: type[StateDictError] = StateDictError) -> None:
    """Raise `error` unless `state` has exactly the `expected` keys, each a tensor of the expected shape.

    The message counts each kind of problem and names the first of each (in the architecture's order, so the
    earliest layer that differs is named); `key_prefix` is put back in front of the keys it names (a checkpoint
    that stores them under e.g. `encoder.`), and `error.key` is the first bad one.
    """
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    not_tensor = [key for key in expected if key in state and not isinstance(state[key], torch.Tensor)]
    wrong_shape = [key for key in expected if key in state and key not in not_tensor
                   and tuple(state[key].shape) != tuple(expected[key])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), first {key_prefix}{missing[0]} {list(expected[missing[0]])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), first {key_prefix}{unexpected[0]}")
    if not_tensor:
        problems.append(f"{len(not_tensor)} non-tensor value(s), first {key_prefix}{not_tensor[0]}")
    if wrong_shape:
        key = wrong_shape[0]
        problems.append(f"{len(wrong_shape)} wrong shape(s), first {key_prefix}{key} has {list(state[key].shape)} "
                        f"where this architecture needs {list(expected[key])}")
    if problems:
        first = (missing + unexpected + not_tensor + wrong_shape)[0]
        raise error(source, f"{what} do not match the architecture: " + "; ".join(problems), key=key_prefix + first)


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                           what: str = "weights", assign: bool = False) -> None:
    """`check_state_dict` against `model`, then load; `assign=True` keeps the given tensors (for meta models)."""
    check_state_dict(state, expected_shapes(model), source, what)
    model.load_state_dict(state, strict=True, assign=assign)
