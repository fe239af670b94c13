"""Benchmark: one HPT control step (two 640x480 rgb8 views + 8-dim state -> 8x8 chunk), batch 1.

    python bench/bench_inference.py [--sizes small,base] [--iters 200] [--quick]

For HPT-Small and HPT-Base (random weights: timing only) and every engine configuration
(torch eager / folded BN / channels-last / trace / compile, fp32 and bf16; onnxruntime),
all measured in this run and printed as one table per size:

* median, p90, p99 and max milliseconds per control step (``Engine.predict`` on raw
  uint8 frames, pre-processing included);
* peak memory: the rise of the process's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs``) while the engine is built and warmed up;
* the action error against the fp32 policy, as % of each dimension's action range (max
  over three input sets: noise frames, smooth frames, a flat frame);
* the analytic FLOPs of the step (ResNet-18: 3.63 GFLOP per 224x224 view; stems, trunk
  and head counted from the config), this machine's measured 2048x2048 matmul rates
  (fp32 and bf16), and each time's ratio to its compute floor (FLOPs / matmul rate of
  its precision);
* the speed-up over a straightforward baseline run in the same process: per-view
  numpy pre-processing (cv2.resize + normalise), one view at a time, fp32 eager.

Engines are timed in interleaved rounds, so a burst of load on the host hits them all
alike; a fixed matmul timed in the same rounds shows the host's own jitter. With a CUDA
GPU (torch or onnxruntime sees one), the same step is also timed there: torch CUDA
fp32 / fp16 / bf16 with and without CUDA graphs, onnxruntime CUDA and TensorRT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pathlib
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from _machine import CpuShare, PeakRss, best_rates, cpu_description, matmul_gflops, measure_rates, step_flops  # noqa: E402

SPEC_FILE = REPO / "config" / "robots" / "franka_fr3.yaml"
HEIGHT, WIDTH = 480, 640
GOAL_SPEEDUP = 4.0
GOAL_TAIL = 1.3

# -- inputs and the baseline ------------------------------------------------------------------------


def input_sets(views: int, state_lo: np.ndarray, state_hi: np.ndarray, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (1, views, HEIGHT, WIDTH, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (views, 12, 16, 3), dtype=np.uint8)
    smooth = np.stack([cv2.resize(v, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC) for v in small])[None]
    flat = np.full((1, views, HEIGHT, WIDTH, 3), 128, np.uint8)
    states = rng.uniform(state_lo, state_hi, (3, 1, len(state_lo))).astype(np.float32)
    return [(noise, states[0]), (np.ascontiguousarray(smooth), states[1]), (flat, states[2])]


class BaselineEngine:
    """Straightforward: per view, cv2.resize + normalise in numpy, fp32 eager ResNet; then the policy."""

    backend = "baseline"

    def __init__(self, policy: Any, device: str = "cpu") -> None:
        import torch

        self.policy = policy.to(device).eval()
        self.device = device
        self.size = policy.encoder.image_size
        self.mean = np.asarray(policy.encoder.mean.flatten().tolist(), np.float32)
        self.std = np.asarray(policy.encoder.std.flatten().tolist(), np.float32)
        self.torch = torch

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        import cv2

        torch = self.torch
        with torch.inference_mode():
            features = []
            for view in range(images.shape[1]):
                frame = cv2.resize(images[0, view], (self.size, self.size), interpolation=cv2.INTER_LINEAR)
                x = (frame.astype(np.float32) / 255.0 - self.mean) / self.std
                x = torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).to(self.device)
                maps = self.policy.encoder.backbone(x)
                features.append(maps.flatten(2).transpose(1, 2))
            feats = torch.stack(features, dim=1)
            out = self.policy.forward_features(feats, torch.from_numpy(state).to(self.device))
            return out.cpu().numpy()


class MatmulProbe:
    """A fixed 1024x1024 fp32 matmul, timed in the same rounds: the host's own jitter."""

    backend = "probe"

    def __init__(self) -> None:
        import torch

        self.a = torch.randn(1024, 1024)

    def predict(self, images: np.ndarray, state: np.ndarray) -> None:
        self.a @ self.a


# -- running -----------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    precision: str
    engine: Any = None
    build_s: float = 0.0
    mem_mb: float | None = None
    gpu_mem_mb: float | None = None
    times: list[float] = field(default_factory=list)
    error: float | None = None
    note: str = ""
    default: bool = False

    def stat(self, q: float) -> float:
        return float(np.percentile(self.times, q)) * 1e3

    @property
    def median(self) -> float:
        return float(np.median(self.times)) * 1e3


def build(rows: list[Row], name: str, precision: str, factory: Callable[[], Any], *,
          gpu: bool = False, default: bool = False, warm: tuple[np.ndarray, np.ndarray] | None = None) -> None:  # fmt: skip
    import torch

    row = Row(name, precision, default=default)
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    try:
        with PeakRss() as rss:
            row.engine = factory()
            if warm is not None:
                for _ in range(3):
                    row.engine.predict(*warm)
    except Exception as exc:  # a configuration that cannot run here: say why, go on
        row.note = f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:110]}"
        row.engine = None
    row.build_s = time.perf_counter() - start
    row.mem_mb = rss.delta_mb
    if gpu and row.engine is not None:
        row.gpu_mem_mb = (torch.cuda.max_memory_allocated() - gpu_before) / 2**20
    rows.append(row)
    status = row.note or f"built in {row.build_s:.1f} s"
    print(f"  {name}: {status}", file=sys.stderr, flush=True)


def time_rounds(rows: list[Row], inputs: tuple[np.ndarray, np.ndarray], iters: int, rounds: int,
                rate_hz: float = 0.0) -> None:  # fmt: skip
    live = [r for r in rows if r.engine is not None]
    per_round = max(1, iters // rounds)
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    for _ in range(rounds):
        for row in live:
            predict = row.engine.predict
            for _ in range(2):
                predict(*inputs)
            for _ in range(per_round):
                start = time.perf_counter()
                predict(*inputs)
                elapsed = time.perf_counter() - start
                row.times.append(elapsed)
                if period:
                    time.sleep(max(0.0, period - elapsed))


def measure_errors(rows: list[Row], sets: list[tuple[np.ndarray, np.ndarray]], references: list[np.ndarray],
                   span: np.ndarray) -> None:  # fmt: skip
    from hpt_ros.engine.torch_engine import action_error_percent

    for row in rows:
        if row.engine is None or row.engine.backend == "probe":
            continue
        errors = [action_error_percent(row.engine.predict(x, s), ref, span) for (x, s), ref in zip(sets, references)]
        row.error = max(errors)


# -- pre-processing comparison ---------------------------------------------------------------------------


def compare_preprocessing(iters: int) -> list[str]:
    import cv2
    import torch
    import torch.nn.functional as F

    from hpt_ros.model.resnet import IMAGENET_MEAN, IMAGENET_STD

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (1, 2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    scale, shift = 1.0 / (255.0 * std), -mean / std
    mean_np, std_np = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)

    def graph_float() -> torch.Tensor:  # what PolicyGraph does: both views at once, in torch
        x = torch.from_numpy(frames).reshape(2, HEIGHT, WIDTH, 3).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return x * scale + shift

    def graph_uint8() -> torch.Tensor:  # resize on uint8 (rounded), then float
        x = torch.from_numpy(frames).reshape(2, HEIGHT, WIDTH, 3).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return x.float() * scale + shift

    def cv2_batched() -> torch.Tensor:  # cv2.resize uint8 per view into one buffer, normalise in torch
        out = np.empty((2, 224, 224, 3), np.uint8)
        for v in range(2):
            cv2.resize(frames[0, v], (224, 224), dst=out[v], interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() * scale + shift

    def numpy_per_view() -> torch.Tensor:  # the baseline's way
        views = []
        for v in range(2):
            f = cv2.resize(frames[0, v], (224, 224), interpolation=cv2.INTER_LINEAR)
            x = (f.astype(np.float32) / 255.0 - mean_np) / std_np
            views.append(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
        return torch.cat(views)

    reference = graph_float()
    lines = []
    for name, fn in (
        ("in-graph torch, float resize (chosen)", graph_float),
        ("in-graph torch, uint8 resize", graph_uint8),
        ("cv2.resize uint8 per view, normalise batched", cv2_batched),
        ("numpy per view: cv2.resize + normalise (baseline)", numpy_per_view),
    ):
        with torch.inference_mode():
            for _ in range(5):
                fn()
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            diff = float(((fn() - reference).abs() * std * 255.0).max())
        lines.append(f"  {name:52s} median {np.median(times) * 1e3:6.3f} ms   max diff {diff:5.2f} grey levels")
    return lines


# -- one model size ----------------------------------------------------------------------------------------


def run_size(size: str, args: argparse.Namespace, rates: dict[str, float], gpu: bool) -> dict[str, Any]:
    import torch

    from hpt_ros.engine import OnnxEngine, TorchEngine, build_policy_for_spec, export_onnx
    from hpt_ros.engine.graph import action_range
    from hpt_ros.spec import load_spec

    spec = load_spec(SPEC_FILE)
    torch.manual_seed(0)
    policy = build_policy_for_spec(spec, size=size, random_vision=True)
    c = policy.config
    lo, hi, _ = spec.joint_limits_arrays(spec.state_joints)
    sets = input_sets(c.num_views, lo, hi)
    with torch.inference_mode():
        references = [policy(torch.from_numpy(x), torch.from_numpy(s)).numpy() for x, s in sets]
    span = action_range(policy).numpy()
    flops = step_flops(c)
    timing_input = sets[0]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="hpt_bench_"))

    print(f"\nbuilding engines for HPT-{size.capitalize()} ...", file=sys.stderr, flush=True)
    rows: list[Row] = []
    add = lambda *a, **k: build(rows, *a, warm=timing_input, **k)  # noqa: E731
    add("baseline: numpy pre per view, fp32 eager", "fp32", lambda: BaselineEngine(policy))
    if not args.gpu_only:
        cpu = dict(device="cpu", cache_dir=tmp / "aoti")  # a fresh cache: build times include compiling
        add("torch fp32 eager", "fp32", lambda: TorchEngine(policy, mode="eager", fold_bn=False, channels_last=False, **cpu))
        add("torch fp32 eager +fold-BN", "fp32", lambda: TorchEngine(policy, mode="eager", channels_last=False, **cpu))
        add("torch fp32 eager +fold-BN +channels-last", "fp32", lambda: TorchEngine(policy, mode="eager", **cpu))
        add("torch fp32 trace (fold-BN, ch-last)", "fp32", lambda: TorchEngine(policy, mode="trace", **cpu),
            default=True)  # fmt: skip
        if not args.quick:
            add("torch fp32 compile (fold-BN, ch-last)", "fp32", lambda: TorchEngine(policy, mode="compile", **cpu))
            add("torch fp32 aot (fold-BN, ch-last)", "fp32", lambda: TorchEngine(policy, mode="aot", **cpu))
        bf16 = dict(precision="bf16", resize="graph", **cpu)
        add("torch bf16 autocast eager (fold-BN, ch-last)", "bf16",
            lambda: TorchEngine(policy, autocast=True, mode="eager", verify=False, **bf16))  # fmt: skip
        add("torch bf16 weights eager (fold-BN, ch-last)", "bf16",
            lambda: TorchEngine(policy, mode="eager", verify=False, **bf16))  # fmt: skip
        add("torch bf16 weights trace", "bf16", lambda: TorchEngine(policy, mode="trace", verify=False, **bf16))
        if args.quick:
            add("torch bf16 weights trace + cv2 resize", "bf16",
                lambda: TorchEngine(policy, precision="bf16", mode="trace", **cpu), default=True)  # fmt: skip
        else:
            add("torch bf16 weights compile", "bf16", lambda: TorchEngine(policy, mode="compile", verify=False, **bf16))
            add("torch bf16 weights aot", "bf16", lambda: TorchEngine(policy, mode="aot", verify=False, **bf16))
            add("torch bf16 weights aot + cv2 resize", "bf16",
                lambda: TorchEngine(policy, precision="bf16", mode="aot", **cpu), default=True)  # fmt: skip
            add("torch bf16 encoder + fp32 core, aot + cv2 resize", "bf16",
                lambda: TorchEngine(policy, precision="bf16", core_precision="fp32", mode="aot", **cpu))  # fmt: skip
        onnx_file = tmp / "policy.onnx"
        add("onnxruntime fp32 CPU", "fp32", lambda: OnnxEngine(
            export_onnx(policy, onnx_file, spec=spec, verify=False), providers=["CPUExecutionProvider"]))  # fmt: skip
        if not args.quick:
            add("onnxruntime fp16 CPU", "fp16", lambda: OnnxEngine(
                export_onnx(policy, tmp / "policy_fp16.onnx", spec=spec, precision="fp16", verify=False),
                providers=["CPUExecutionProvider"]))  # fmt: skip
    if gpu:
        run_gpu_variants(rows, policy, spec, tmp, timing_input)
    if not args.gpu_only:
        add("host noise: 1024x1024 fp32 matmul", "-", MatmulProbe)

    print(f"timing {args.iters} steps per engine in {args.rounds} interleaved rounds ...", file=sys.stderr, flush=True)
    with CpuShare() as share:
        time_rounds(rows, timing_input, args.iters, args.rounds, args.rate)
    measure_errors(rows, sets, references, span)
    shutil.rmtree(tmp, ignore_errors=True)  # exported files and compiled packages (engines keep what they loaded)
    return {"others_cpu": share.others, "size": size, "config": c, "flops": flops, "rows": rows, "trunk_params": policy.trunk_num_params()}


def run_gpu_variants(rows: list[Row], policy: Any, spec: Any, tmp: pathlib.Path,
                     warm: tuple[np.ndarray, np.ndarray]) -> None:  # fmt: skip
    import torch

    from hpt_ros.engine import OnnxEngine, TorchEngine, export_onnx

    add = lambda *a, **k: build(rows, *a, warm=warm, **k)  # noqa: E731
    if torch.cuda.is_available():
        import copy

        add("[cuda] baseline: numpy pre per view, fp32 eager", "fp32",
            lambda: BaselineEngine(copy.deepcopy(policy), device="cuda"), gpu=True)  # fmt: skip
        for precision in ("fp32", "fp16", "bf16"):
            add(f"[cuda] torch {precision} eager (fold-BN, ch-last)", precision,
                lambda p=precision: TorchEngine(policy, precision=p, device="cuda", mode="eager",
                                                cuda_graphs=False), gpu=True)  # fmt: skip
            add(f"[cuda] torch {precision} + CUDA graphs", precision,
                lambda p=precision: TorchEngine(policy, precision=p, device="cuda", mode="eager",
                                                cuda_graphs=True), gpu=True, default=precision != "fp32")  # fmt: skip
    from hpt_ros.engine.onnx_engine import select_providers

    usable, missing = select_providers()
    for label, why in missing.items():
        rows.append(Row(f"[gpu] onnxruntime {label}", "-", note=f"skipped: {why}"))
    files: dict[str, pathlib.Path] = {}

    def onnx_file(precision: str) -> pathlib.Path:
        if precision not in files:
            files[precision] = export_onnx(policy, tmp / f"policy_{precision}.onnx", spec=spec,
                                           precision=precision, verify=False)  # fmt: skip
        return files[precision]

    if "CUDAExecutionProvider" in usable:
        for precision in ("fp32", "fp16"):
            add(f"[gpu] onnxruntime CUDA {precision}", precision,
                lambda p=precision: OnnxEngine(onnx_file(p), providers=["CUDAExecutionProvider"]))  # fmt: skip
    if "TensorrtExecutionProvider" in usable:
        for precision in ("fp32", "fp16"):
            add(f"[gpu] onnxruntime TensorRT {precision}", precision,
                lambda p=precision: OnnxEngine(onnx_file("fp32"), precision=p,
                                               providers=["TensorrtExecutionProvider"],
                                               trt_cache_dir=tmp / "trt_cache"))  # fmt: skip


# -- report ------------------------------------------------------------------------------------------------


def report(result: dict[str, Any], rates: dict[str, float], gpu_rates: dict[str, float]) -> list[str]:
    c, flops, rows = result["config"], result["flops"], result["rows"]
    trunk_params = result["trunk_params"] / 1e6
    out = [
        "",
        f"HPT-{result['size'].capitalize()} (trunk {c.embed_dim} x {c.num_blocks} blocks, {trunk_params:.1f}M params), "
        f"{c.num_views} views {WIDTH}x{HEIGHT} rgb8 + state {c.state_dim} -> {c.action_horizon}x{c.action_dim} chunk, batch 1",
        "step FLOPs: ResNet-18 {:.2f} G + stems {:.3f} G + trunk {:.3f} G + head {:.4f} G = {:.2f} GFLOP".format(
            flops["encoder"] / 1e9, flops["stems"] / 1e9, flops["trunk"] / 1e9, flops["head"] / 1e9, flops["total"] / 1e9),
        "compute floor (FLOPs / matmul rate): "
        + ", ".join(f"{p} {flops['total'] / (r * 1e9) * 1e3:.2f} ms" for p, r in rates.items())
        + ("" if not gpu_rates else "; GPU " + ", ".join(
            f"{p} {flops['total'] / (r * 1e9) * 1e3:.3f} ms" for p, r in gpu_rates.items())),
    ]  # fmt: skip
    baseline = {False: None, True: None}
    for row in rows:
        if row.name.startswith("baseline") and row.times:
            baseline[False] = row.median
        if row.name.startswith("[cuda] baseline") and row.times:
            baseline[True] = row.median
    header = (f"{'engine (* = default for its precision)':48s} {'build':>6s} {'median':>7s} {'p90':>7s} {'p99':>7s} "
              f"{'max':>7s} {'p99/med':>7s} {'mem MB':>7s} {'err %':>7s} {'x floor':>7s} {'speedup':>7s}")  # fmt: skip
    out += ["", header, "-" * len(header)]
    for row in rows:
        if not row.times:
            out.append(f"{row.name:48s} {row.note}")
            continue
        on_gpu = row.name.startswith("[")
        rate = (gpu_rates if on_gpu else rates).get(row.precision)
        floor = flops["total"] / (rate * 1e9) * 1e3 if rate else None
        base = baseline[on_gpu and baseline[True] is not None]
        probe = row.engine is not None and getattr(row.engine, "backend", "") == "probe"
        mem = row.gpu_mem_mb if row.gpu_mem_mb is not None else row.mem_mb
        out.append(
            f"{('* ' if row.default else '') + row.name:48s} {row.build_s:6.1f} {row.median:7.2f} {row.stat(90):7.2f} "
            f"{row.stat(99):7.2f} {max(row.times) * 1e3:7.2f} {row.stat(99) / row.median:7.2f} "
            f"{'' if mem is None else f'{mem:.0f}':>7s} {'' if row.error is None else f'{row.error:.3f}':>7s} "
            f"{'' if floor is None or probe else f'{row.median / floor:.2f}':>7s} "
            f"{'' if base is None or probe else f'{base / row.median:.2f}x':>7s}"
        )  # fmt: skip
    if result.get("others_cpu") is not None:
        share = result["others_cpu"]
        out.append("")
        out.append(f"other processes used {share * 100:.0f}% of this machine's CPUs while these were timed"
                   + ("  <-- contended: tails and medians are inflated" if share > 0.05 else ""))  # fmt: skip
    timed = [r for r in rows if r.times and r.error is not None and r.error <= 1.0 and not r.name.startswith(("baseline", "["))]
    if timed and baseline[False]:
        best = min(timed, key=lambda r: r.median)
        speedup = baseline[False] / best.median
        tail = best.stat(99) / best.median
        out.append("")
        out.append(
            f"best CPU engine within 1% of the action range: {best.name}: {best.median:.2f} ms median, "
            f"{speedup:.2f}x the baseline ({baseline[False]:.2f} ms) [goal >= {GOAL_SPEEDUP:g}x: "
            f"{'met' if speedup >= GOAL_SPEEDUP else 'MISSED'}], p99 {tail:.2f}x median "
            f"[goal < {GOAL_TAIL:g}x: {'met' if tail < GOAL_TAIL else 'MISSED'}], error {best.error:.3f}%"
        )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,base", help="comma-separated trunk sizes (default small,base)")
    parser.add_argument("--iters", type=int, default=None, help="timed steps per engine (default 200; --quick 40)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer steps, no torch.compile variants")
    parser.add_argument("--rate", type=float, default=0.0, help="pace steps at this rate in Hz (default: back to back)")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime intra-op threads")
    parser.add_argument("--gpu-only", action="store_true", help="only the CUDA / TensorRT variants (and the baseline)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.iters is None:
        args.iters = 40 if args.quick else 200

    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] [%(name)s]: %(message)s")
    logging.getLogger("hpt_ros.model").setLevel(logging.ERROR)  # random-weights warning: timing only
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    if not gpu:
        with contextlib.suppress(Exception):
            from hpt_ros.engine.onnx_engine import select_providers

            gpu = any(p != "CPUExecutionProvider" for p in select_providers()[0])
    measured_rates = [measure_rates()]
    rates = best_rates(*measured_rates)
    gpu_rates: dict[str, float] = {}
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        gpu_rates = {p: matmul_gflops(d, "cuda", 4096, 20) for p, d in
                     (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16))}  # fmt: skip

    lines = [
        "hpt_ros inference benchmark (random weights; times per control step, pre-processing included)",
        f"machine: {cpu_description()}; torch {torch.__version__} with {torch.get_num_threads()} threads",
        "matmul 2048x2048 (best of 20): " + "; ".join(
            f"{p} " + ", ".join(f"{lib} {r:.0f}" for lib, r in libs.items()) + " GFLOP/s"
            for p, libs in measured_rates[0].items()),
    ]
    if gpu_rates:
        lines.append(f"GPU {torch.cuda.get_device_name()}: matmul 4096x4096 "
                     + ", ".join(f"{p} {r / 1e3:.1f} TFLOP/s" for p, r in gpu_rates.items()) + " (TF32 off)")  # fmt: skip
    lines.append("memory: rise of peak RSS (VmHWM) while building + warming up each engine"
                 + ("; CUDA rows: torch's peak allocated GPU memory" if gpu_rates else ""))  # fmt: skip
    lines.append("err %: max |action - fp32 policy action| / action range x 100 over 3 input sets")
    lines.append("x floor: median / (step FLOPs / best matmul rate of its precision, measured before and "
                 "after the timings); speedup: baseline median / median")
    if not args.gpu_only:
        lines.append("\npre-processing of two 640x480 rgb8 views to normalised 224x224 (batched, float):")
        lines += compare_preprocessing(100 if not args.quick else 30)
    print("\n".join(lines), flush=True)

    results = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        result = run_size(size, args, rates, gpu)
        results.append(result)
        measured_rates.append(measure_rates())  # again: a busy moment at the start would skew the floor
        rates = best_rates(*measured_rates)
        print("\n".join(report(result, rates, gpu_rates)), flush=True)
    print("\nmatmul rates used for the floors (best of all measurements): "
          + ", ".join(f"{p} {r:.0f} GFLOP/s" for p, r in rates.items()))

    if args.json:
        data = {
            "matmul_gflops": rates,
            "matmul_measurements": measured_rates,
            "gpu_matmul_gflops": gpu_rates,
            "sizes": [
                {
                    "size": r["size"],
                    "flops": r["flops"],
                    "engines": [
                        {"name": row.name, "precision": row.precision, "build_s": row.build_s,
                         "median_ms": row.median if row.times else None,
                         "p90_ms": row.stat(90) if row.times else None,
                         "p99_ms": row.stat(99) if row.times else None,
                         "max_ms": max(row.times) * 1e3 if row.times else None,
                         "mem_mb": row.mem_mb, "gpu_mem_mb": row.gpu_mem_mb, "error_percent": row.error,
                         "note": row.note, "default": row.default}  # fmt: skip
                        for row in r["rows"]
                    ],
                }
                for r in results
            ],
        }
        pathlib.Path(args.json).write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
