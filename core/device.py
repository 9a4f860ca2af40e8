"""Choose the device and the weight dtype once, by a policy measured on real hardware.

On CPUs with native bf16 (AMX / AVX512-BF16) casting the weights to bf16 made CLIP ViT-L/14 about 5x faster than
fp32 (measured 6.7 vs 1.35 img/s at batch 8), while `torch.autocast` on CPU made it 20x slower; so we cast weights
and never autocast on CPU.

"int8" is the opt-in path for CPUs without bf16 (`--dtype int8`, GANTRACE_DTYPE=int8): the weights of the heavy
layers are stored as int8 and packed once, and each activation is quantized on the fly (`core.int8`), while every
other tensor stays fp32. "auto" does not pick it: it has been measured only with random and closed-form weights,
and trained ViTs are known for a few activation channels far larger than the rest, which one activation scale per
sample handles worst; a forensic verdict must not change silently with the CPU it runs on (README, "Measured").
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
INT8 = "int8"


@dataclass(frozen=True)
class Precision:
    """Where models run and in which dtype; `quantized` means int8 weights with fp32 activations (`dtype` fp32)."""

    device: torch.device
    dtype: torch.dtype
    quantized: bool = False

    def __post_init__(self) -> None:
        if self.quantized and (self.device.type != "cpu" or self.dtype != torch.float32):
            raise ValueError(f"int8 runs on the CPU with fp32 activations (dynamic quantization), not on "
                             f"{self.device} in {self.dtype}; use --device cpu or another dtype")

    @property
    def dtype_name(self) -> str:
        if self.quantized:
            return INT8
        return next(name for name, dtype in DTYPES.items() if dtype == self.dtype)


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_description() -> tuple[str, tuple[str, ...]]:
    """The CPU's model name and which of the instruction sets that set GANTrace's speed it has (SPEED_FLAGS):
    benchmark figures are only comparable between the same two."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine(), ()
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name") or platform.machine(), tuple(flag for flag in SPEED_FLAGS if flag in flags)


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul units, where bf16 weights are a speed-up rather than an emulation."""
    return bool({"amx_bf16", "avx512_bf16"} & set(cpu_description()[1]))


def select_precision(device: str | None = None, dtype: str | None = None) -> Precision:
    """Resolve 'auto' device/dtype (or GANTRACE_DEVICE / GANTRACE_DTYPE) into one concrete choice."""
    device = device or os.environ.get("GANTRACE_DEVICE") or "auto"
    dtype = dtype or os.environ.get("GANTRACE_DTYPE") or "auto"
    chosen = torch.device(_auto_device() if device == "auto" else device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if dtype == "auto":
        dtype = _auto_dtype(chosen)
    if dtype == INT8:
        return Precision(chosen, torch.float32, quantized=True)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted([*DTYPES, INT8])} or 'auto'")
    return Precision(chosen, DTYPES[dtype])


def prepare_model(model: nn.Module, precision: Precision, channels_last: bool = False) -> nn.Module:
    """Put a model in eval mode on the chosen device with its floating weights cast to the chosen dtype."""
    model = model.eval().to(device=precision.device, dtype=precision.dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def torch_thread_count(count: int | None = None) -> int:
    """The calling thread's torch intra-op thread count, after setting it to `count` when given.

    Also a thread-pool initializer: OpenMP keeps the count per thread, so each worker must set its own.
    """
    if count is not None:
        torch.set_num_threads(max(count, 1))
    return torch.get_num_threads()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with `count` torch intra-op threads in the calling thread, restoring its count afterwards.

    OpenMP keeps the thread count per calling thread, so two pipeline lanes can each hold their own budget.
    """
    previous = torch_thread_count()
    torch_thread_count(count)
    try:
        yield
    finally:
        torch_thread_count(previous)


def _auto_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _auto_dtype(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"
