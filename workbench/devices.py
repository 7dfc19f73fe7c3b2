"""Device and dtype choice: CUDA when present, CPU otherwise; bf16 only where the GPU supports it."""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager

import torch

from workbench.errors import WorkbenchError

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; an unavailable device is a clear error.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    apply_thread_setting()
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise WorkbenchError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise WorkbenchError(f"--device {device} was asked for but no CUDA GPU is available here; use --device cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise WorkbenchError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise WorkbenchError("--device mps was asked for but MPS is not available here; use --device cpu or auto")
    return resolved


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"auto"`` is bf16 on a GPU that supports it, float32 everywhere else.

    >>> resolve_dtype("auto", torch.device("cpu"))
    torch.float32
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        raise WorkbenchError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return DTYPES[dtype]


@functools.cache
def apply_thread_setting() -> int | None:
    """Apply ``WORKBENCH_THREADS`` (torch's intra-op CPU threads) once per process; None when unset.

    Called at CLI start and when a session resolves its device. On a small CPU shared with other
    jobs, one thread can be several times faster than the default pool (see README, probes).

    >>> apply_thread_setting() is None or apply_thread_setting() >= 1
    True
    """
    value = os.environ.get("WORKBENCH_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise WorkbenchError(f"WORKBENCH_THREADS={value!r}: give a positive number of threads (or unset it)")
    torch.set_num_threads(int(value))
    return int(value)


@contextmanager
def single_thread():
    """One intra-op thread for the block (for loops of small matrix-vector products, which a
    second thread slows on a small busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
