"""The onnxruntime engine: runs a file written by ``export_onnx`` (with its sidecar YAML).

Execution providers are tried in the order TensorRT -> CUDA -> CPU. What cannot run here
(not in this onnxruntime build, no CUDA device, TensorRT / cuDNN libraries missing, or a
provider that failed to initialise) is dropped before the session is made, and the
fallback is reported in ONE log line naming each unavailable provider and why.

Session options: ``intra_op_num_threads`` (``threads``; default onnxruntime's choice, one
per physical core), graph optimisation level ALL, sequential execution.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .base import Engine, EngineError
from .onnx_file import INPUT_NAMES, read_sidecar

__all__ = ["PREFERRED_PROVIDERS", "OnnxEngine", "read_sidecar", "select_providers"]

logger = logging.getLogger("hpt_ros.engine")

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERRED_PROVIDERS: tuple[str, ...] = (TENSORRT, CUDA, CPU)


# -- providers --------------------------------------------------------------------------------------


def _try_load(*names: str) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _cuda_device_problem() -> str | None:
    """None when a CUDA device is usable, else why not."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA driver (libcuda.so.1)"
    if lib.cuInit(0) != 0:
        return "CUDA driver failed to initialise"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no CUDA device"
    return None


def _preload_cuda_libraries() -> None:
    """Let onnxruntime find CUDA / cuDNN from pip's nvidia-* wheels (torch's), if present."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload(cuda=True, cudnn=True, msvc=False)
        except Exception:  # nothing to preload; the checks below report what is missing
            pass
    try:  # the tensorrt wheel keeps its libraries in tensorrt_libs
        import tensorrt_libs  # type: ignore[import-not-found]

        folder = Path(tensorrt_libs.__file__).parent
        for lib in sorted(folder.glob("libnvinfer*.so*")):
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                pass
    except ImportError:
        pass


def select_providers(requested: list[str] | tuple[str, ...] | None = None) -> tuple[list[str], dict[str, str]]:
    """(providers that can run here, in order; {unavailable provider: why}).

    ``requested`` defaults to TensorRT -> CUDA -> CPU. CPU is always kept last as the
    fallback.
    """
    import onnxruntime as ort

    wanted = list(requested or PREFERRED_PROVIDERS)
    if CPU not in wanted:
        wanted.append(CPU)
    built = set(ort.get_available_providers())
    usable: list[str] = []
    missing: dict[str, str] = {}
    gpu_problem: str | None = None
    gpu_checked = False
    for name in wanted:
        if name not in built:
            missing[name] = "not in this onnxruntime build"
            continue
        if name in (TENSORRT, CUDA):
            if not gpu_checked:
                gpu_problem = _cuda_device_problem()
                if gpu_problem is None:
                    _preload_cuda_libraries()
                gpu_checked = True
            if gpu_problem is not None:
                missing[name] = gpu_problem
                continue
            if not _try_load("libcudart.so.12", "libcudart.so.13", "libcudart.so"):
                missing[name] = "CUDA runtime library (libcudart) not found"
                continue
            if not _try_load("libcudnn.so.9", "libcudnn.so"):
                missing[name] = "cuDNN library (libcudnn.so.9) not found"
                continue
            if name == TENSORRT and not _try_load("libnvinfer.so.10", "libnvinfer.so"):
                missing[name] = "TensorRT library (libnvinfer.so.10) not found"
                continue
        usable.append(name)
    return usable, missing


def _provider_entry(name: str, options: dict[str, Any]) -> Any:
    return (name, options) if options else name


# -- engine ------------------------------------------------------------------------------------------


class OnnxEngine(Engine):
    """Runs an exported ONNX policy in onnxruntime.

    Args:
        path: the ``.onnx`` file (its ``.onnx.yaml`` sidecar must sit beside it).
        precision: what to run at. "fp32" and "fp16" files run as exported; "fp16" with an
            fp32 file on TensorRT enables TensorRT's fp16 mode. "bf16" has no onnxruntime
            kernels and runs fp32 (logged). Default: the file's precision.
        providers: execution providers to try, in order (default TensorRT, CUDA, CPU).
        threads: intra-op threads (default: onnxruntime's choice, one per physical core).
        device_id: the GPU for CUDA / TensorRT.
        trt_cache_dir: where TensorRT keeps built engines (default ``<file>.trt_cache``).
    """

    backend = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        precision: str | None = None,
        providers: list[str] | tuple[str, ...] | None = None,
        threads: int | None = None,
        device_id: int = 0,
        trt_cache_dir: str | Path | None = None,
        check_hash: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.meta = read_sidecar(self.path, check_hash=check_hash)
        sizes = self.meta["sizes"]
        self.state_dim = int(sizes["state_dim"])
        self.action_dim = int(sizes["action_dim"])
        self.horizon = int(sizes["action_horizon"])
        self.num_views = int(sizes["num_views"])
        image = self.meta.get("image") or {}
        self.fixed_size = None if image.get("dynamic_size", True) else (
            int(image["export_height"]), int(image["export_width"]))  # fmt: skip
        file_precision = str(self.meta.get("precision", "fp32"))
        precision = precision or file_precision

        usable, missing = select_providers(providers)
        gpu = [p for p in usable if p != CPU]
        if precision == "bf16":
            logger.info("onnxruntime has no bf16 kernels: %s runs at %s", self.path.name, file_precision)
            precision = file_precision
        if file_precision == "fp16" and not gpu:
            logger.info("%s is fp16 and runs on the CPU provider: expect no speed-up over an fp32 "
                        "export there (fp16 pays off on CUDA / TensorRT)", self.path.name)  # fmt: skip
        if precision == "fp16" and file_precision == "fp32" and TENSORRT not in usable:
            logger.info("%s is fp32 and fp16 needs TensorRT here (or an fp16 export): running fp32",
                        self.path.name)  # fmt: skip
            precision = "fp32"
        self.precision = precision

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.threads = threads

        provider_options: dict[str, dict[str, Any]] = {
            TENSORRT: {
                "device_id": device_id,
                "trt_fp16_enable": precision == "fp16",
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(trt_cache_dir or self.path.with_name(self.path.name + ".trt_cache")),
                "trt_timing_cache_enable": True,
            },
            CUDA: {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"},
            CPU: {},
        }
        if TENSORRT in usable:
            Path(provider_options[TENSORRT]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        session = None
        while session is None:
            entries = [_provider_entry(p, provider_options[p]) for p in usable]
            try:
                session = ort.InferenceSession(str(self.path), options, providers=entries)
            except Exception as exc:
                first = usable[0] if usable and usable[0] != CPU else None
                if first is None:
                    raise EngineError(f"{self.path}: onnxruntime cannot load it: {exc}") from exc
                missing[first] = f"failed to start ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
                usable.remove(first)
        active = session.get_providers()
        for name in usable:
            if name not in active:
                missing[name] = "failed to initialise in onnxruntime"
        self.session = session
        self.providers = active
        self.unavailable = missing
        wanted = list(providers or PREFERRED_PROVIDERS)
        dropped = {k: v for k, v in missing.items() if k in wanted}
        if dropped:
            logger.warning(
                "onnxruntime: %s unavailable; running %s on %s",
                "; ".join(f"{k} ({v})" for k, v in dropped.items()),
                self.path.name, active[0],
            )  # fmt: skip
        self._input_names = [i.name for i in session.get_inputs()]
        if self._input_names != list(INPUT_NAMES):
            raise EngineError(f"{self.path}: inputs {self._input_names}, expected {list(INPUT_NAMES)}")

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        state = np.ascontiguousarray(state, dtype=np.float32)
        if images.ndim != 5 or images.shape[1] != self.num_views or images.shape[4] != 3:
            raise EngineError(f"images must be uint8 [B, {self.num_views}, H, W, 3], got {list(images.shape)}")
        if self.fixed_size is not None and tuple(images.shape[2:4]) != self.fixed_size:
            raise EngineError(f"{self.path.name} was exported for {self.fixed_size[0]}x{self.fixed_size[1]} "
                              f"frames, got {images.shape[2]}x{images.shape[3]}")  # fmt: skip
        if state.shape != (images.shape[0], self.state_dim):
            raise EngineError(f"state must be float32 [{images.shape[0]}, {self.state_dim}], got {list(state.shape)}")
        return self.session.run(None, {INPUT_NAMES[0]: images, INPUT_NAMES[1]: state})[0]

    def describe(self) -> str:
        return f"onnxruntime {self.precision} {self.providers[0]}" + (
            f" {self.threads} threads" if self.threads else ""
        )
