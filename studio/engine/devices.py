"""Device and precision choice: CUDA, then Apple MPS, then CPU, unless a person says otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from studio.engine.requests import RequestError

DEVICE_ENV = "GAN_STUDIO_DEVICE"
DTYPE_ENV = "GAN_STUDIO_DTYPE"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    kind: str  # "cpu", "cuda" or "mps": what results record, since pixels may differ between kinds
    label: str  # for the status bar, e.g. "CUDA · NVIDIA H200" or "CPU · 2 threads"
    dtype: torch.dtype  # the autocast dtype for the forward pass (float32 = no autocast)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def set_threads(threads: int | None) -> None:
    """Cap torch's CPU threads for this process (``None`` leaves torch's choice). Raises RequestError below 1."""
    if threads is None:
        return
    if threads < 1:
        raise RequestError(f"--threads must be at least 1 (got {threads}).")
    torch.set_num_threads(threads)


def choose_device(requested: str | None = None) -> DeviceChoice:
    """Pick the device: ``requested`` or $GAN_STUDIO_DEVICE, else the best available. Raises RequestError."""
    name = (requested or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise RequestError(f"'{name}' is not a device name; use cpu, cuda, cuda:N or mps.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RequestError(
                "CUDA was asked for, but this machine has no usable NVIDIA GPU (or torch is a CPU build)."
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise RequestError(f"There is no GPU cuda:{index}; this machine has {torch.cuda.device_count()}.")
        device = torch.device("cuda", index)
        label = f"CUDA · {torch.cuda.get_device_name(index)}"
        # float32: on an H200 float16 autocast was slower for these small networks (one image 6.0 against 4.1 ms;
        # docs/bench/cuda_h200_s51.json) and drew pixels up to 15/255 away from the CPU's, float32 at most 6/255.
        default_dtype = torch.float32
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise RequestError("MPS was asked for, but this Mac's torch has no Metal support.")
        label = "MPS · Apple GPU"
        default_dtype = torch.float32
    elif device.type == "cpu":
        threads = torch.get_num_threads()
        label = f"CPU · {threads} thread{'s' if threads != 1 else ''}"
        # float32: on the measured CPUs bf16 autocast was slower for these small convolutions (engine bench).
        default_dtype = torch.float32
    else:
        raise RequestError(f"'{name}' is not a supported device; use cpu, cuda, cuda:N or mps.")
    dtype_name = os.environ.get(DTYPE_ENV, "").strip().lower()
    if dtype_name and dtype_name not in _DTYPES:
        raise RequestError(f"{DTYPE_ENV} must be one of {', '.join(_DTYPES)}.")
    dtype = _DTYPES[dtype_name] if dtype_name else default_dtype
    return DeviceChoice(device, device.type, label, dtype)
