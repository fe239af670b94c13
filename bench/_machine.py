"""What the inference bench measures of the machine and of a model: the CPU, its matmul rates,
another process's share of the CPUs, the peak-RSS rise of a block, the analytic FLOPs of a step.

Benchmarks run as files put their own folder on ``sys.path`` first, so
``from _machine import step_flops`` finds this module.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from typing import Any

import numpy as np

__all__ = ["RESNET18_GFLOP_224", "CpuShare", "PeakRss", "best_rates", "conv1x1_gflops", "cpu_description",
           "matmul_gflops", "measure_rates", "step_flops"]

RESNET18_GFLOP_224 = 3.63  # per 224x224 view, multiply-add = 2 FLOPs


# -- machine ---------------------------------------------------------------------------------------


def cpu_description() -> str:
    model, flags = platform.processor() or "cpu", set()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, {' '.join(wanted) or 'no AVX-512'}"


def matmul_gflops(dtype: Any, device: str = "cpu", n: int = 2048, reps: int = 20) -> float:
    """Best of ``reps`` n x n matmuls (the machine's rate when nothing else competes for it)."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.min(times)) / 1e9


def conv1x1_gflops(dtype: Any, n: int = 2048, reps: int = 20) -> float:
    """The same GEMM as a 1x1 convolution: oneDNN's kernels (torch.mm fp32 goes to MKL)."""
    import torch
    import torch.nn.functional as F

    a = torch.randn(1, n, n, 1).to(dtype)
    w = torch.randn(n, n, 1, 1).to(dtype)
    for _ in range(3):
        F.conv2d(a, w)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        F.conv2d(a, w)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.min(times)) / 1e9


def measure_rates() -> dict[str, dict[str, float]]:
    import torch

    return {
        "fp32": {"torch.mm": matmul_gflops(torch.float32), "oneDNN": conv1x1_gflops(torch.float32)},
        "bf16": {"torch.mm": matmul_gflops(torch.bfloat16), "oneDNN": conv1x1_gflops(torch.bfloat16)},
    }


def best_rates(*measured: dict[str, dict[str, float]]) -> dict[str, float]:
    return {p: max(max(m[p].values()) for m in measured) for p in measured[0]}


def _status_kb(key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class CpuShare:
    """CPU time used by *other* processes over a block, as a fraction of all CPUs."""

    @staticmethod
    def _ticks() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
        with open("/proc/self/stat") as handle:
            own = handle.read().rsplit(")", 1)[1].split()
        return busy, int(own[11]) + int(own[12])  # utime + stime of all our threads

    def __enter__(self) -> CpuShare:
        self.others: float | None = None
        try:
            self.start, self.wall = self._ticks(), time.perf_counter()
        except (OSError, ValueError, IndexError):
            self.start = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.start is None:
            return
        busy, own = self._ticks()
        ticks = os.sysconf("SC_CLK_TCK") * (time.perf_counter() - self.wall) * (os.cpu_count() or 1)
        self.others = max(0.0, ((busy - self.start[0]) - (own - self.start[1])) / ticks)


class PeakRss:
    """Rise of peak RSS (VmHWM) over a block; VmHWM is reset to the current RSS first."""

    def __init__(self) -> None:
        self.resettable = True
        self.delta_mb: float | None = None

    def __enter__(self) -> PeakRss:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            self.resettable = False
        self.before = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc: Any) -> None:
        peak = _status_kb("VmHWM")
        if self.before is not None and peak is not None and self.resettable:
            self.delta_mb = max(0.0, (peak - self.before) / 1024)


# -- FLOPs -------------------------------------------------------------------------------------------


def step_flops(config: Any) -> dict[str, float]:
    """Analytic FLOPs (2 per multiply-add) of one step at batch 1, by part."""
    c = config
    inner = c.crossattn_heads * c.crossattn_dim_head

    def mlp(widths: list[int]) -> int:
        return sum(a * b for a, b in zip(widths[:-1], widths[1:]))

    def cross(tokens: int) -> int:  # latents attend to `tokens` context tokens
        q = c.latent_tokens_image if tokens > 1 else c.latent_tokens_state
        return q * c.embed_dim * inner + tokens * c.embed_dim * 2 * inner + 2 * q * tokens * inner + q * inner * c.embed_dim

    n_img = c.num_views * c.image_tokens_per_view
    stems = n_img * mlp([c.image_feature_dim, *c.image_mlp_widths, c.embed_dim]) + cross(n_img)
    stems += mlp([c.state_dim, *c.state_mlp_widths, c.embed_dim]) + cross(1)
    d, length = c.embed_dim, c.num_trunk_tokens
    hidden = int(d * c.mlp_ratio)
    per_block = length * d * 3 * d + 2 * length * (length + 1) * d + length * d * d + 2 * length * d * hidden
    trunk = c.num_blocks * per_block
    head = mlp([d, *c.head_widths, c.action_output_dim])
    encoder = RESNET18_GFLOP_224 * 1e9 * c.num_views * (c.image_size / 224) ** 2
    parts = {"encoder": encoder, "stems": 2.0 * stems, "trunk": 2.0 * trunk, "head": 2.0 * head}
    parts["total"] = sum(parts.values())
    return parts
