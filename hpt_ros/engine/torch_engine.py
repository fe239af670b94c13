"""The torch engine: ``PolicyGraph`` run eagerly, traced and frozen, compiled, or AOT-compiled.

Measured with ``bench/bench_inference.py`` (HPT-Base, two 640x480 views, batch 1, a
2-vCPU AMD EPYC with AVX-512 + AVX512-BF16, no AMX; medians):

* what helps, fp32: folded BatchNorm (-3 %), channels-last (-4 %), a frozen trace
  (-7 %), AOTInductor (-33 % against the trace: 22.6 vs 33.7 ms). ``mode="auto"`` picks
  the trace for fp32 (starts in ~1 s); ``mode="aot"`` is the fastest fp32 when a one-off
  compile (~20 s, then cached on disk) is acceptable.
* what helps, bf16: bf16 *weights* rather than autocast (autocast re-casts the weights on
  every call: 23.8 vs 25.1 ms eager), then AOTInductor (13.7 ms; torch.compile 15.0,
  trace 21.3). ``mode="auto"`` picks "aot" for reduced precision (the fastest within the
  1 % tolerance), compiled once per weights and input shape and cached in
  ``cache_dir``; the next start loads it in well under a second. Frames are resized
  with ``cv2`` on uint8 before the graph (0.4 ms cheaper than the in-graph float resize).
  The action head and the normalisers stay fp32 (see ``PolicyGraph``).
* CUDA: fp32 (TF32 off, so fp32 stays fp32-accurate), fp16 or bf16 weights,
  channels-last, the step captured once per input shape in a CUDA graph.

A reduced-precision engine checks itself when it is built: on a fixed probe (random
frames, a state inside the joint limits) its actions must be within ``tolerance``
percent of the action range of the fp32 graph's, otherwise it falls back (everything in
bf16 -> only the ResNet in bf16 -> fp32) and says so in one log line.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
import platform
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hpt_ros.model import HPTPolicy

from .base import Engine, EngineError
from .graph import PolicyGraph, action_range

__all__ = ["DEFAULT_TOLERANCE_PERCENT", "MODES", "TorchEngine", "action_error_percent", "default_cache_dir"]

logger = logging.getLogger("hpt_ros.engine")

DEFAULT_TOLERANCE_PERCENT = 1.0
MODES = ("auto", "eager", "trace", "compile", "aot")
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
            (torch.compile / inductor), "aot" (AOTInductor: compiled once per input shape
            and weights, kept in ``cache_dir``, loaded in ~0.1 s on the next start) or
            "auto" (see the module doc; the environment variable ``HPT_ROS_TORCH_MODE``
            overrides what "auto" picks).
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
        cache_dir: where "aot" keeps compiled packages (default ``$HPT_ROS_CACHE/aoti``,
            else ``~/.cache/hpt_ros/aoti``).
        resize: where frames are resized to the encoder size: "graph" (float bilinear in
            the graph, exactly the policy's pre-processing), "cv2" (``cv2.resize`` on the
            uint8 frames before the graph: ~0.4 ms faster per step for two 640x480 views,
            resized pixels rounded to uint8, ~0.05 % of the action range) or "auto"
            ("cv2" for reduced precision on CPU, else "graph").
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
        cache_dir: str | os.PathLike[str] | None = None,
        resize: str = "auto",
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
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if resize not in ("auto", "graph", "cv2"):
            raise EngineError(f"unknown resize {resize!r}; choose auto, graph or cv2")
        if resize == "auto":
            resize = "cv2" if self.precision != "fp32" and not on_cuda else "graph"
        self.resize = resize
        self._resized: np.ndarray | None = None

    # -- building ----------------------------------------------------------------------------

    def _resolve_mode(self, mode: str, precision: str) -> str:
        if mode == "auto" and os.environ.get("HPT_ROS_TORCH_MODE", "auto") != "auto":
            mode = os.environ["HPT_ROS_TORCH_MODE"]
            if mode not in MODES:
                raise EngineError(f"HPT_ROS_TORCH_MODE={mode!r}: choose one of {', '.join(MODES)}")
        if mode != "auto":
            if mode in ("compile", "aot") and not _can_compile(self.device):
                logger.warning("torch engine: %s unavailable here (no C++ compiler / triton); using trace", mode)
                return "trace"
            return mode
        if self.device.type == "cuda":
            return "eager"  # + CUDA graphs, which remove the launch overhead trace/compile target
        if precision != "fp32" and _can_compile(self.device):
            return "aot"
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
        elif self.mode == "aot":
            runner = self._aot_runner(images, state)
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

    def _aot_runner(self, images: torch.Tensor, state: torch.Tensor) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        import torch._inductor

        key = self._aot_key(images, state)
        path = self.cache_dir / f"{key}.pt2"
        if path.is_file():
            try:
                runner = torch._inductor.aoti_load_package(str(path))
                logger.info("torch engine: loaded the compiled step from %s", path)
                return runner
            except Exception as exc:  # a broken or foreign file: compile again
                logger.warning("torch engine: cannot load %s (%s); compiling again", path, exc)
        logger.info("torch engine: compiling the step for input %s (AOTInductor, once; cached in %s)",
                    list(images.shape), self.cache_dir)  # fmt: skip
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), torch.no_grad(), self._autocast(self.precision, self.autocast):
            warnings.simplefilter("ignore")
            program = torch.export.export(self.graph, (images, state))
            partial = path.with_name(f"{key}.{os.getpid()}.partial.pt2")
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(partial), inductor_configs={"freezing": True}
            )
        os.replace(partial, path)
        return torch._inductor.aoti_load_package(str(path))

    def _aot_key(self, images: torch.Tensor, state: torch.Tensor) -> str:
        """Compiled packages are valid for these weights, shapes, options, code and machine."""
        digest = hashlib.sha256()
        for text in (
            torch.__version__, platform.machine(), torch.backends.cpu.get_cpu_capability(),
            str(tuple(images.shape)), str(tuple(state.shape)), self.precision, self.core_precision,
            str(self.autocast), str(self.fold_bn), str(self.channels_last), str(self.device.type),
        ):  # fmt: skip
            digest.update(text.encode() + b"\0")
        for module in _CODE_MODULES:
            digest.update(inspect.getsource(importlib.import_module(module)).encode())
        for name, tensor in self.graph.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        return f"hpt_{self.precision}_{digest.hexdigest()[:24]}"

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
        if self.resize == "cv2" and images.shape[2:4] != (self.image_size, self.image_size):
            images = self._resize_cv2(images)
        x = torch.from_numpy(images)
        s = torch.from_numpy(state)
        with torch.inference_mode():
            if self.device.type != "cpu" and not self.cuda_graphs:
                x, s = x.to(self.device, non_blocking=True), s.to(self.device, non_blocking=True)
            out = self._runner(x, s)(x, s)
            return out.float().cpu().numpy()

    def _resize_cv2(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B, V, H, W, 3] -> uint8 [B, V, S, S, 3] (bilinear, half-pixel centres like the
        graph's), written into a buffer reused from step to step."""
        import cv2

        size = self.image_size
        shape = (images.shape[0], images.shape[1], size, size, 3)
        if self._resized is None or self._resized.shape != shape:
            self._resized = np.empty(shape, np.uint8)
        out = self._resized
        for b in range(shape[0]):
            for v in range(shape[1]):
                cv2.resize(images[b, v], (size, size), dst=out[b, v], interpolation=cv2.INTER_LINEAR)
        return out

    def describe(self) -> str:
        parts = [f"torch {_label(self.precision, self.core_precision, self.autocast)}", self.mode, str(self.device)]
        if self.fold_bn:
            parts.append("folded-bn")
        if self.channels_last:
            parts.append("channels-last")
        if self.cuda_graphs:
            parts.append("cuda-graphs")
        parts.append(f"resize-{self.resize}")
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


# the code a compiled package bakes in: a change in any of these invalidates the cache
_CODE_MODULES = (
    "hpt_ros.engine.graph", "hpt_ros.model.policy", "hpt_ros.model.trunk", "hpt_ros.model.stems",
    "hpt_ros.model.head", "hpt_ros.model.resnet", "hpt_ros.model.normalizer",
)  # fmt: skip


def default_cache_dir() -> Path:
    """``$HPT_ROS_CACHE/aoti``, else ``$XDG_CACHE_HOME/hpt_ros/aoti``, else ``~/.cache/hpt_ros/aoti``."""
    if os.environ.get("HPT_ROS_CACHE"):
        return Path(os.environ["HPT_ROS_CACHE"]).expanduser() / "aoti"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hpt_ros" / "aoti"


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
