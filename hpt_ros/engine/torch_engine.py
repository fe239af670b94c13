"""The torch engine: ``PolicyGraph`` run eagerly, traced and frozen, or compiled.

Choices, measured by ``bench/bench_inference.py`` (HPT-Base, two 640x480 views, 2-core
AVX-512 CPU):

* fp32: BatchNorm folded + channels-last + a frozen TorchScript trace (``mode="trace"``)
  is the fastest way that stays fp32 (each op is the fp32 op of the policy).
* bf16: bf16 *weights* (``policy.to(bfloat16)``, not autocast: autocast re-casts every
  weight on every call) + channels-last + ``torch.compile`` (inductor, frozen weights) is
  the fastest; a frozen trace is the fallback when compiling is impossible (no C++
  compiler). Inputs, pre-processing and both normalisers stay fp32.
* CUDA: fp32 (TF32 off, so fp32 stays fp32-accurate), fp16 or bf16 weights,
  channels-last, the step captured once per input shape in a CUDA graph.

A reduced-precision engine checks itself when it is built: on a fixed probe (random
frames, a state inside the joint limits) its actions must be within ``tolerance``
percent of the action range of the fp32 graph's, otherwise it falls back (everything in
bf16 -> only the ResNet in bf16 -> fp32) and says so in one log line.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

from hpt_ros.model import HPTPolicy

from .base import Engine, EngineError
from .graph import PolicyGraph, action_range

__all__ = ["DEFAULT_TOLERANCE_PERCENT", "MODES", "TorchEngine", "action_error_percent"]

logger = logging.getLogger("hpt_ros.engine")

DEFAULT_TOLERANCE_PERCENT = 1.0
MODES = ("auto", "eager", "trace", "compile")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# torch.from_numpy on a read-only array (a ROS message buffer) warns; the engine never
# writes to its inputs, so the zero-copy view is safe.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def action_error_percent(actions: np.ndarray, reference: np.ndarray, span: np.ndarray) -> float:
    """Largest |actions - reference| as a percentage of each dimension's action range."""
    diff = np.abs(np.asarray(actions, np.float64) - np.asarray(reference, np.float64))
    return float((diff / np.asarray(span, np.float64)).max() * 100.0)


class TorchEngine(Engine):
    """Runs an ``HPTPolicy`` (with its encoder) in torch.

    Args:
        policy: the policy (copied; the original is not changed).
        precision: "fp32", "bf16" or "fp16". On CPU, fp16 runs as bf16 (the CPU has no
            fast fp16 kernels; both are checked against fp32 the same way).
        device: "cpu", "cuda", "cuda:N"; default cuda when available, else cpu.
        threads: torch intra-op threads (process-wide: ``torch.set_num_threads``).
        mode: "eager", "trace" (frozen TorchScript per input shape), "compile"
            (torch.compile / inductor) or "auto" (the fastest measured: see the module doc).
        fold_bn, channels_last: graph options (channels_last None = on, it helps everywhere).
        core_precision: precision of the stems, trunk and head (default: ``precision``);
            "fp32" keeps only the ResNet-18 in reduced precision (about 5x smaller action
            error, slower: the second step of the fallback ladder).
        autocast: run reduced precision with fp32 weights under autocast instead of
            casting the weights (slower; the first fallback when bf16 weights miss the
            tolerance).
        cuda_graphs: capture the step in a CUDA graph (CUDA only; default on).
        verify: check reduced precision against fp32 on a probe when built.
        tolerance: the largest accepted action error, % of the action range.
    """

    backend = "torch"

    def __init__(
        self,
        policy: HPTPolicy,
        *,
        precision: str = "fp32",
        device: str | torch.device | None = None,
        threads: int | None = None,
        mode: str = "auto",
        fold_bn: bool = True,
        channels_last: bool | None = None,
        core_precision: str | None = None,
        autocast: bool = False,
        cuda_graphs: bool | None = None,
        verify: bool = True,
        tolerance: float = DEFAULT_TOLERANCE_PERCENT,
    ) -> None:
        if precision not in _DTYPES:
            raise EngineError(f"unknown precision {precision!r}; choose one of {', '.join(_DTYPES)}")
        if mode not in MODES:
            raise EngineError(f"unknown torch engine mode {mode!r}; choose one of {', '.join(MODES)}")
        if policy.encoder is None:
            raise EngineError("the torch engine needs a policy with an image encoder (policy.encoder)")
        if threads:
            torch.set_num_threads(int(threads))
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"device {self.device} asked for, but torch sees no CUDA device")
        on_cuda = self.device.type == "cuda"
        if core_precision is not None and core_precision not in _DTYPES:
            raise EngineError(f"unknown core precision {core_precision!r}; choose one of {', '.join(_DTYPES)}")
        if precision == "fp16" and not on_cuda:
            logger.info("torch engine: fp16 on CPU runs as bf16 (no fast fp16 CPU kernels)")
            precision = "bf16"
            core_precision = "bf16" if core_precision == "fp16" else core_precision
        if on_cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest conv kernels
        if on_cuda and precision == "fp32":
            # TF32 would make "fp32" a 10-bit-mantissa computation; keep fp32 exact.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False

        c = policy.config
        self.state_dim = c.state_dim
        self.action_dim = c.action_dim
        self.horizon = c.action_horizon
        self.num_views = c.num_views
        self.image_size = int(policy.encoder.image_size)
        self.tolerance = float(tolerance)
        self.span = action_range(policy).numpy()
        self.fold_bn = fold_bn
        self.channels_last = True if channels_last is None else channels_last
        self.mode = self._resolve_mode(mode, precision)
        self.cuda_graphs = on_cuda if cuda_graphs is None else (cuda_graphs and on_cuda)
        #: measured on the build-time probe: action error vs fp32, % of the action range
        self.probe_error_percent: float | None = None

        # Fallback ladder for reduced precision (fastest first): everything in the reduced
        # dtype -> only the ResNet in it (stems, trunk and head fp32) -> fp32.
        core = "fp32" if precision == "fp32" else (core_precision or precision)
        candidates = [(precision, core, autocast)]
        if precision != "fp32" and core != "fp32":
            candidates.append((precision, "fp32", autocast))
        if precision != "fp32":
            candidates.append(("fp32", "fp32", False))
        reference = None
        for index, (prec, core, use_autocast) in enumerate(candidates):
            graph = self._graph(policy, prec, core, use_autocast)
            if prec == "fp32" or not verify:
                break
            if reference is None:
                reference = self._probe(self._graph(policy, "fp32", "fp32", False), "fp32", False)
            error = action_error_percent(self._probe(graph, prec, use_autocast), reference, self.span)
            self.probe_error_percent = error
            if error <= self.tolerance:
                break
            nxt = candidates[index + 1]
            logger.warning(
                "torch engine: %s gives actions %.3f%% of the action range away from fp32 on the "
                "probe (tolerance %.2f%%); trying %s", _label(prec, core, use_autocast), error,
                self.tolerance, _label(*nxt),
            )  # fmt: skip
        self.precision = prec
        self.core_precision = core
        self.autocast = use_autocast and prec != "fp32"
        self.graph = graph
        self._runners: dict[tuple[int, ...], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
        self._compiled: Any = None

    # -- building ----------------------------------------------------------------------------

    def _resolve_mode(self, mode: str, precision: str) -> str:
        if mode != "auto":
            if mode == "compile" and not _can_compile(self.device):
                logger.warning("torch engine: torch.compile unavailable here (no C++ compiler); using trace")
                return "trace"
            return mode
        if self.device.type == "cuda":
            return "eager"  # + CUDA graphs, which remove the launch overhead trace/compile target
        if precision != "fp32" and _can_compile(self.device):
            return "compile"
        return "trace"

    def _graph(self, policy: HPTPolicy, precision: str, core: str, use_autocast: bool) -> PolicyGraph:
        dtype = torch.float32 if use_autocast else _DTYPES[precision]
        core_dtype = torch.float32 if use_autocast else _DTYPES[core]
        graph = PolicyGraph(policy, dtype=dtype, core_dtype=core_dtype, fold_bn=self.fold_bn,
                            channels_last=self.channels_last)  # fmt: skip
        return graph.to(self.device)

    def _autocast(self, precision: str, enabled: bool):
        return torch.autocast(self.device.type, dtype=_DTYPES[precision], enabled=enabled)

    def _probe(self, graph: PolicyGraph, precision: str, use_autocast: bool) -> np.ndarray:
        rng = np.random.default_rng(1234)
        size = self.image_size
        images = torch.from_numpy(rng.integers(0, 256, (1, self.num_views, size, size, 3), dtype=np.uint8))
        offset = graph.state_offset.cpu().numpy()
        scale = graph.state_scale.cpu().numpy()
        # a state inside the normaliser's limits: normalised values uniform in [-0.9, 0.9]
        state = ((rng.uniform(-0.9, 0.9, (1, self.state_dim)) - offset) / scale).astype(np.float32)
        with torch.inference_mode(), self._autocast(precision, use_autocast):
            out = graph(images.to(self.device), torch.from_numpy(state).to(self.device))
        return out.float().cpu().numpy()

    def _runner(self, images: torch.Tensor, state: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        key = tuple(images.shape)
        runner = self._runners.get(key)
        if runner is not None:
            return runner
        start = time.perf_counter()
        graph = self.graph
        autocast = self.autocast
        precision = self.precision

        def eager(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            with self._autocast(precision, autocast):
                return graph(x, s)

        if self.mode == "trace":
            with warnings.catch_warnings(), torch.no_grad(), self._autocast(precision, autocast):
                warnings.simplefilter("ignore")
                traced = torch.jit.freeze(torch.jit.trace(graph, (images, state), check_trace=False))
            if autocast:
                def runner(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
                    with self._autocast(precision, True):
                        return traced(x, s)
            else:
                runner = traced
        elif self.mode == "compile":
            if self._compiled is None:
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True  # constant weights: prepacked, folded
                self._compiled = torch.compile(eager, dynamic=False)
            runner = self._compiled
        else:
            runner = eager
        if self.cuda_graphs:
            runner = _CudaGraphRunner(runner, images, state, self.device)
        # first run builds (trace / compile / capture); time it for the log
        with torch.inference_mode():
            runner(images, state)
        if self.mode != "eager" or self.cuda_graphs:
            logger.info("torch engine: %s %s ready for input %s in %.1f s", self.mode,
                        self.precision, list(key), time.perf_counter() - start)  # fmt: skip
        self._runners[key] = runner
        return runner

    # -- running -----------------------------------------------------------------------------

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        state = np.ascontiguousarray(state, dtype=np.float32)
        # canonical strides (views, no copy): ``x[None]`` has a 0 stride that torch.compile's
        # guards see as a new input, and would recompile for (seconds) on the first real tick
        images, state = images.reshape(-1).reshape(images.shape), state.reshape(-1).reshape(state.shape)
        if images.ndim != 5 or images.shape[1] != self.num_views or images.shape[4] != 3:
            raise EngineError(f"images must be uint8 [B, {self.num_views}, H, W, 3], got {list(images.shape)}")
        if state.shape != (images.shape[0], self.state_dim):
            raise EngineError(f"state must be float32 [{images.shape[0]}, {self.state_dim}], got {list(state.shape)}")
        x = torch.from_numpy(images)
        s = torch.from_numpy(state)
        with torch.inference_mode():
            if self.device.type != "cpu" and not self.cuda_graphs:
                x, s = x.to(self.device, non_blocking=True), s.to(self.device, non_blocking=True)
            out = self._runner(x, s)(x, s)
            return out.float().cpu().numpy()

    def describe(self) -> str:
        parts = [f"torch {_label(self.precision, self.core_precision, self.autocast)}", self.mode, str(self.device)]
        if self.fold_bn:
            parts.append("folded-bn")
        if self.channels_last:
            parts.append("channels-last")
        if self.cuda_graphs:
            parts.append("cuda-graphs")
        return " ".join(parts)


class _CudaGraphRunner:
    """One input shape's step captured in a CUDA graph; inputs come from the host."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 images: torch.Tensor, state: torch.Tensor, device: torch.device) -> None:  # fmt: skip
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        self.device = device
        with torch.cuda.device(device):
            self._capture(fn, images, state, device)

    def _capture(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 images: torch.Tensor, state: torch.Tensor, device: torch.device) -> None:  # fmt: skip
        self.images = torch.empty(images.shape, dtype=images.dtype, device=device)
        self.state = torch.empty(state.shape, dtype=state.dtype, device=device)
        self.host_images = torch.empty(images.shape, dtype=images.dtype).pin_memory()
        self.host_state = torch.empty(state.shape, dtype=state.dtype).pin_memory()
        self.images.copy_(images)
        self.state.copy_(state)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):  # warm-up: cuDNN autotuning and allocations outside the capture
                fn(self.images, self.state)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.output = fn(self.images, self.state)
        self.host_output = torch.empty(self.output.shape, dtype=self.output.dtype).pin_memory()

    def __call__(self, images: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        self.host_images.copy_(images)
        self.host_state.copy_(state)
        with torch.cuda.device(self.device):
            self.images.copy_(self.host_images, non_blocking=True)
            self.state.copy_(self.host_state, non_blocking=True)
            self.graph.replay()
            self.host_output.copy_(self.output, non_blocking=True)
            torch.cuda.current_stream().synchronize()
        return self.host_output.clone()  # the buffer is overwritten by the next step


def _label(precision: str, core: str, autocast: bool) -> str:
    if precision == "fp32":
        return "fp32"
    text = precision if core == precision else f"{precision} encoder/{core} core"
    return text + (" autocast" if autocast else "")


def _can_compile(device: torch.device) -> bool:
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return shutil.which("g++") is not None or shutil.which("c++") is not None or shutil.which("clang++") is not None
