"""What a measurement was taken on: CPU model, cores, threads and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

# Packages whose version changes speed; read from their metadata, not by importing them (OpenVINO's
# native runtime alone takes seconds to load).
VERSIONED = ("timm", "onnxruntime", "openvino")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int | None = None) -> dict[str, str]:
    """CPU model, core count, threads used (when given), torch's and :data:`VERSIONED` packages' versions."""
    info = {"cpu": cpu_model(), "cores": str(os.cpu_count())}
    if threads is not None:
        info["threads"] = str(threads)
    info["torch"] = torch.__version__
    for dist in VERSIONED:
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def header(info: dict[str, str]) -> str:
    """One line naming the machine for an output file: CPU, cores, threads, then every version."""
    rest = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("cpu", "cores", "threads"))
    threads = f", {info['threads']} threads" if "threads" in info else ""
    return f"{info['cpu']} ({info['cores']} cores{threads}); {rest}"
