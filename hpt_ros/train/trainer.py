"""Fine-tuning: recorded episodes + a pretrained HPT trunk -> a checkpoint, an ONNX file and figures.

``run_training(config)`` does the whole run:

1. load the robot spec; pick the episodes (``select_episodes``) and split them by
   episode (``split_episodes``, seeded);
2. build the policy for the spec (stems, head, ResNet-18 encoder) and load the
   pretrained trunk with ``load_official_trunk``, which loads strictly and verifies the
   checksum; the trunk's sha256 is logged and stored (no trunk: trained from scratch,
   said loudly);
3. build the samples (``hpt_ros.data.dataset``): ticks at the control rate, the live
   node's conversions, image features from the policy's own encoder, cached on disk;
4. fit the 'limits' normaliser on the training split (min/max of its states and actions);
5. train stems and head (and the trunk unless frozen) with smooth-L1 on normalised
   chunks, AdamW, warm-up + cosine; validate every ``val_every`` steps;
6. write resumable checkpoints, ``history.csv``, ``loss_curve.png``, the final checkpoint
   ``model/`` (what the policy node and ``hpt-ros eval`` load) and ``policy.onnx``
   (``export_onnx``), and ``summary.yaml``.

Output folder::

    OUT/
      model/                 hpt.yaml + model.safetensors (final; the trunk sha256 in hpt.yaml)
      policy.onnx            + policy.onnx.yaml (the ONNX sidecar)
      checkpoints/step_NNNNNNNN/   model + optimizer.safetensors + trainer_state.yaml + history.csv
      history.csv  loss_curve.png  split.yaml  summary.yaml  train_config.yaml
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from .config import OFFICIAL_RECIPE, TrainConfig
from .errors import TrainError
from .losses import chunk_loss, evaluate_samples
from .policy_setup import TrunkProvenance, build_policy, fit_image_feature_norm, fit_normalizer
from .schedule import WarmupCosine
from .state import load_optimizer_state, read_trainer_state, save_optimizer_state, write_trainer_state

__all__ = ["MODEL_DIR", "TrainResult", "run_training"]

logger = logging.getLogger("hpt_ros.train")

CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
ONNX_FILE = "policy.onnx"


@dataclass
class TrainResult:
    out: Path
    model_dir: Path
    onnx: Path | None
    steps: int
    trunk: TrunkProvenance | None
    trunk_frozen: bool
    final_trunk_sha256: str
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)


# -- helpers -----------------------------------------------------------------------------------------------


class _BatchOrder:
    """Batch ``step`` = the next ``batch`` indices of an endless sequence of seeded epoch permutations
    (a pure function of the step, so a resumed run sees the same batches)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self._epoch, self._perm = -1, np.arange(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, 1, epoch]).permutation(self.n)
        return self._perm

    def __call__(self, step: int) -> np.ndarray:
        pos = step * self.batch
        out: list[np.ndarray] = []
        need = self.batch
        while need > 0:
            epoch, within = divmod(pos, self.n)
            take = min(self.n - within, need)
            out.append(self._permutation(epoch)[within:within + take])
            pos += take
            need -= take
        return np.concatenate(out)


def _adamw(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused where torch has the kernel (CPU and CUDA in torch >= 2.4): measured ~200x faster
    per step than the default per-tensor loop on CPU for HPT-Tiny's stems and head."""
    try:
        return torch.optim.AdamW(groups, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay,
                                 foreach=True)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    fields = ["step", "lr", "train_loss", "val_loss", "val_mae", "val_mae_first", "samples_per_s"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({k: (None if v == "" else (int(v) if k == "step" else float(v))) for k, v in row.items()})
    return rows


def _checkpoint_dirs(out: Path) -> list[Path]:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step_")
                  and (p / "trainer_state.yaml").is_file())


def _episode_names(infos: list[Any], roots: list[str]) -> list[str]:
    names = [i.path.name for i in infos]
    if len(set(names)) == len(names):
        return names
    return [f"{i.path.parent.name}/{i.path.name}" for i in infos]


def _frame_size(episodes: list[Any]) -> tuple[int, int]:
    for ep in episodes:
        h, w = ep.stats.get("frame_height"), ep.stats.get("frame_width")
        if h and w:
            return int(h), int(w)
    return 480, 640


# -- the run -------------------------------------------------------------------------------------------------


def run_training(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Train as ``config`` says; with ``resume`` continue from the newest checkpoint in ``config.out``.

    ``config.threads`` sets torch's intra-op threads for the run (restored afterwards). On a
    shared, busy machine 1 thread can be several times faster than 2 (OpenMP threads
    wait for each other when the cores are oversubscribed).
    """
    t_start = time.perf_counter()
    out = Path(config.out)
    existing = _checkpoint_dirs(out)
    if existing and not resume:
        raise TrainError(f"{out} already holds checkpoints ({existing[-1].name}): pass --resume to continue, "
                         "or another --out")
    if resume and not existing:
        raise TrainError(f"--resume: no checkpoint in {out / CHECKPOINTS}")
    out.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _run(config, resume, out, existing, t_start)
    finally:
        torch.set_num_threads(threads_before)


def _run(config: TrainConfig, resume: bool, out: Path, existing: list[Path], t_start: float) -> TrainResult:
    from hpt_ros.data.dataset import (ActionSource, SampleSet, default_cache_dir, load_episodes, select_episodes,
                                      split_episodes)
    from hpt_ros.data.features import FeatureExtractor
    from hpt_ros.model import load_checkpoint, save_checkpoint
    from hpt_ros.spec import load_spec

    from .plots import plot_loss_curve

    spec = load_spec(config.robot)

    # -- episodes and split
    infos, skipped = select_episodes(config.episodes, only_success=config.only_success)
    for info, reason in skipped:
        logger.warning("not using episode %s: %s", info.path, reason)
    if not infos:
        raise TrainError(f"no usable episode under {', '.join(config.episodes)}")
    names = _episode_names(infos, config.episodes)
    by_name = dict(zip(names, infos))
    for info in infos:
        if info.spec_hash and info.spec_hash != spec.spec_hash:
            logger.warning("episode %s was recorded with another robot spec (hash %s, now %s): the topics and "
                           "joints it needs are checked as it is read", info.path, info.spec_hash[:12],
                           spec.spec_hash[:12])
    train_names, val_names = split_episodes(names, config.val_fraction, config.seed)
    logger.info("%d episodes: %d for training, %d for validation (seed %d)%s", len(names), len(train_names),
                len(val_names), config.seed, f"; {len(skipped)} skipped" if skipped else "")

    # -- policy (fresh, or from the checkpoint being resumed)
    torch.manual_seed(config.seed)
    state: dict[str, Any] = {}
    if resume:
        ckpt = existing[-1]
        state = read_trainer_state(ckpt)
        policy, _ = load_checkpoint(ckpt)
        _check_resume(state, config, spec, train_names, val_names)
        provenance = TrunkProvenance(**state["trunk"]) if state.get("trunk") else None
        logger.info("resuming from %s (step %d); trunk sha256 at the start of the run: %s", ckpt, state["step"],
                    provenance.sha256 if provenance else "none (from scratch)")
    else:
        policy, provenance = build_policy(spec, config)
    frozen = config.trunk_frozen if not resume else bool(state["trunk_frozen"])
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    policy.to(device)

    # -- samples
    extractor = FeatureExtractor(policy.encoder, batch_size=config.encoder_batch, device=str(device))
    source = ActionSource.from_spec(spec, config.action_topic, config.action_type, config.gripper_topic)
    cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
    t_data = time.perf_counter()
    episodes, failed = load_episodes([by_name[n] for n in train_names + val_names], spec, extractor,
                                     names=train_names + val_names, rate_hz=config.rate_hz, action_source=source,
                                     feature_dtype=config.feature_dtype, cache_dir=cache_dir,
                                     progress=config.progress)
    data_seconds = time.perf_counter() - t_data
    train_eps = [e for e in episodes if e.name in set(train_names)]
    val_eps = [e for e in episodes if e.name in set(val_names)]
    horizon = policy.config.action_horizon
    train_set, val_set = SampleSet(train_eps, horizon), SampleSet(val_eps, horizon)
    if len(train_set) == 0:
        raise TrainError("no training sample (every tick was refused: see the warnings above)")
    frames = sum(e.stats.get("frames_encoded", 0) for e in episodes if not e.cached)
    cached = sum(1 for e in episodes if e.cached)
    dataset_info = {
        "episodes_train": [str(by_name[e.name].path) for e in train_eps],
        "episodes_val": [str(by_name[e.name].path) for e in val_eps],
        "episodes_skipped": [f"{i.path}: {r}" for i, r in skipped + failed],
        "samples_train": len(train_set), "samples_val": len(val_set),
        "rate_hz": float(config.rate_hz or spec.rate_hz), "action_source": source.describe(),
        "cache_dir": str(cache_dir), "episodes_from_cache": cached, "frames_encoded": int(frames),
        "build_seconds": round(data_seconds, 3), "feature_dtype": config.feature_dtype,
        "encoder_sha256": extractor.weights_sha256,
    }
    logger.info("samples: %d train, %d validation; dataset ready in %.1f s (%d episodes from the feature cache, %d "
                "frames encoded%s)", len(train_set), len(val_set), data_seconds, cached, frames,
                f", {frames / data_seconds:.1f} frames/s" if frames else "")
    (out / "split.yaml").write_text(yaml.safe_dump({"seed": config.seed, "val_fraction": config.val_fraction,
                                                    "train": dataset_info["episodes_train"],
                                                    "val": dataset_info["episodes_val"],
                                                    "skipped": dataset_info["episodes_skipped"]}, sort_keys=False))

    # -- normaliser (fitted on the training split; a resumed run keeps the checkpoint's)
    if not resume:
        fit_normalizer(policy, train_set)
        if config.image_feature_norm:
            fit_image_feature_norm(policy, train_set)
    # state noise in units of each state dimension's spread in the training split
    state_noise_scale = torch.from_numpy(train_set.states.std(0).astype(np.float32) * float(config.state_noise))
    mean_action = train_set.all_actions.mean(0).astype(np.float32)

    # -- what is trained
    def training_mode() -> None:
        policy.train()
        policy.encoder.eval()  # never run in training (features are precomputed); BatchNorm stays put
        if frozen:
            policy.trunk.eval()  # no drop-path / dropout in a frozen trunk

    for p in policy.encoder.parameters():
        p.requires_grad_(False)
    for p in policy.trunk.parameters():
        p.requires_grad_(not frozen)
    training_mode()
    named = {n: p for n, p in policy.named_parameters() if p.requires_grad}
    trunk_params = [p for n, p in named.items() if n.startswith("trunk.")]
    other_params = [p for n, p in named.items() if not n.startswith("trunk.")]
    groups = [{"params": other_params, "lr_scale": float(config.nontrunk_lr_scale), "name": "stems_head"}]
    if trunk_params:
        groups.append({"params": trunk_params, "lr_scale": 1.0, "name": "trunk"})
    optimizer = _adamw(groups, config)
    counts = policy.param_counts()
    logger.info("training %d parameters (stems %d, head %d, trunk %s) on %s; vision encoder frozen (%s)",
                sum(p.numel() for p in named.values()), counts["stems"], counts["heads"],
                "FROZEN" if frozen else f"{counts['trunk']} trained", device, policy.encoder.weights_source)
    schedule = WarmupCosine(config.lr, config.warmup_steps,
                            config.t_max if config.t_max is not None else max(config.steps - config.warmup_steps, 0),
                            init_lr=config.warmup_init_lr, eta_min=min(config.eta_min, config.lr))
    history: list[dict[str, Any]] = []
    step = 0
    if resume:
        load_optimizer_state(existing[-1], optimizer, named, state["param_groups"])
        history = [row for row in _read_history(existing[-1] / "history.csv") if row["step"] <= state["step"]]
        step = int(state["step"])

    run_identity = {
        "spec_hash": spec.spec_hash, "robot": spec.name, "config": config.to_dict(),
        "split": {"train": train_names, "val": val_names},
        "trunk": provenance.to_dict() if provenance else None, "trunk_frozen": frozen,
        "size": {"embed_dim": policy.config.embed_dim, "num_blocks": policy.config.num_blocks,
                 "num_heads": policy.config.num_heads},
    }
    (out / "train_config.yaml").write_text(yaml.safe_dump({**run_identity, "official_recipe": OFFICIAL_RECIPE},
                                                          sort_keys=False))
    baseline = evaluate_samples(policy, val_set, batch_size=config.batch_size, beta=config.loss_beta,
                                constant_action=mean_action) if len(val_set) else {}
    training_mode()

    def checkpoint_extra(current_step: int) -> dict[str, Any]:
        return {"robot": spec.name, "spec_hash": spec.spec_hash,
                "training": {"step": current_step, "steps": config.steps, "trunk_frozen": frozen,
                             "pretrained_trunk": provenance.to_dict() if provenance else None,
                             "trunk_from_scratch": provenance is None, "samples_train": len(train_set),
                             "samples_val": len(val_set), "rate_hz": dataset_info["rate_hz"],
                             "episodes_train": len(train_eps), "episodes_val": len(val_eps),
                             "encoder_rounded_to": config.encoder_round_dtype}}

    def save(current_step: int) -> Path:
        folder = out / CHECKPOINTS / f"step_{current_step:08d}"
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(tmp, policy, extra=checkpoint_extra(current_step), spec=spec)
        groups_desc = save_optimizer_state(tmp, optimizer, named)
        _write_history(tmp / "history.csv", history)
        write_trainer_state(tmp, {**run_identity, "step": current_step, **groups_desc})
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        for old in _checkpoint_dirs(out)[:-max(config.keep_checkpoints, 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def validate(current_step: int, row: dict[str, Any]) -> None:
        if not len(val_set):
            return
        metrics = evaluate_samples(policy, val_set, batch_size=config.batch_size, beta=config.loss_beta)
        row.update(val_loss=metrics["loss"], val_mae=metrics["mae"], val_mae_first=metrics["mae_first"])
        training_mode()

    if step == 0:
        row0: dict[str, Any] = {"step": 0, "lr": schedule(0)}
        validate(0, row0)
        history.append(row0)
        if "val_loss" in row0:
            logger.info("untrained model: validation loss %.4g (constant mean action: %.4g)", row0["val_loss"],
                        baseline.get("loss", float("nan")))

    # -- the loop
    order = _BatchOrder(len(train_set), config.batch_size, config.seed)
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    train_seconds, trained_samples = 0.0, 0
    ema = None
    last_val = history[-1].get("val_loss") if history else None
    norm = policy.action_normalizer
    try:
        while step < config.steps:
            t0 = time.perf_counter()
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            feats, state_batch, target = (t.to(device, non_blocking=True) for t in train_set.batch(order(step)))
            clean_state = state_batch
            if config.state_noise > 0:
                state_batch = state_batch + torch.randn_like(state_batch) * state_noise_scale.to(device)
            # relative actions stay offsets from the measured state: the noise only reaches the stem's input
            pred = policy.forward_features(feats, state_batch, action_reference=clean_state)
            loss = chunk_loss(norm, pred, target, config.loss_beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(named.values()), config.grad_clip)
            optimizer.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainError(f"the loss became {value} at step {step}; lower --lr")
            train_seconds += time.perf_counter() - t0
            trained_samples += len(target)
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            speed = trained_samples / max(train_seconds, 1e-9)
            row = {"step": step, "lr": lr, "train_loss": value, "samples_per_s": speed}
            if step % config.val_every == 0 or step == config.steps:
                validate(step, row)
            history.append(row)
            if row.get("val_loss") is not None:
                last_val = row["val_loss"]
            if bar is not None:
                post = f"loss {ema:.4g}, lr {lr:.2e}, {speed:.0f} samples/s"
                if last_val is not None:
                    post += f", val {last_val:.4g}"
                bar.set_postfix_str(post, refresh=False)
                bar.update(1)
            elif step % max(config.val_every, 1) == 0:
                logger.info("step %d: loss %.4g, lr %.2e, %.0f samples/s%s", step, ema, lr, speed,
                            f", val {row['val_loss']:.4g}" if row.get("val_loss") is not None else "")
            if step % config.save_every == 0 or step == config.steps:
                save(step)
                _write_history(out / "history.csv", history)
    finally:
        if bar is not None:
            bar.close()

    # -- the result
    policy.eval().to("cpu")
    final_sha = policy.trunk_checksum()
    if provenance is not None and frozen and final_sha != provenance.sha256:
        raise TrainError(f"internal error: the frozen trunk changed ({provenance.sha256} -> {final_sha})")
    if provenance is not None:
        logger.info("trunk after training: sha256 %s (%s the pretrained %s)", final_sha,
                    "EQUAL to" if final_sha == provenance.sha256 else "moved from", provenance.sha256)
    model_dir = out / MODEL_DIR
    shutil.rmtree(model_dir, ignore_errors=True)
    save_checkpoint(model_dir, policy, extra=checkpoint_extra(step), spec=spec)
    _write_history(out / "history.csv", history)
    train_points = [(r["step"], r["train_loss"]) for r in history if r.get("train_loss") is not None]
    val_points = [(r["step"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    lr_points = [(r["step"], r["lr"]) for r in history if r.get("lr") is not None]
    trunk_text = (f"trunk {provenance.sha256[:12]} {'frozen' if frozen else 'fine-tuned'}" if provenance
                  else "trunk from scratch")
    plot_loss_curve(out / "loss_curve.png", train_points, val_points, baseline=baseline.get("loss"), lr=lr_points,
                    title=f"{spec.name}: {len(train_set)} train / {len(val_set)} val samples, {trunk_text}")

    onnx_path = None
    t_onnx = time.perf_counter()
    if config.export_onnx:
        from hpt_ros.engine.export import export_onnx

        height, width = _frame_size(episodes)
        onnx_path = export_onnx(policy, out / ONNX_FILE, spec=spec, height=height, width=width,
                                source=str(model_dir), extra={"trained_steps": step})
    onnx_seconds = time.perf_counter() - t_onnx

    final_val = evaluate_samples(policy, val_set, batch_size=config.batch_size, beta=config.loss_beta)
    untrained = next((r for r in history if r["step"] == 0 and r.get("val_loss") is not None), None)
    metrics = {
        "val": final_val, "val_constant_mean_action": baseline,
        "val_untrained_loss": untrained.get("val_loss") if untrained else None,
        "val_untrained_mae": untrained.get("val_mae") if untrained else None,
        "train_loss_last": train_points[-1][1] if train_points else None,
    }
    timings = {"dataset_seconds": round(data_seconds, 3), "train_seconds": round(train_seconds, 3),
               "train_samples_per_s": round(trained_samples / train_seconds, 1) if train_seconds else None,
               "onnx_seconds": round(onnx_seconds, 3), "total_seconds": round(time.perf_counter() - t_start, 3)}
    summary = {"model": str(model_dir), "onnx": str(onnx_path) if onnx_path else None, "steps": step,
               "trunk": provenance.to_dict() if provenance else "from scratch (random init)",
               "trunk_frozen": frozen, "final_trunk_sha256": final_sha, "metrics": metrics, "timings": timings,
               "dataset": dataset_info}
    (out / "summary.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    logger.info("done: %s%s; validation loss %s (constant mean action %s, untrained %s)", model_dir,
                f" and {onnx_path}" if onnx_path else "", _fmt(final_val.get("loss")), _fmt(baseline.get("loss")),
                _fmt(metrics["val_untrained_loss"]))
    return TrainResult(out, model_dir, onnx_path, step, provenance, frozen, final_sha, metrics, timings, dataset_info)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _check_resume(state: dict[str, Any], config: TrainConfig, spec: Any, train: list[str], val: list[str]) -> None:
    problems = []
    if state.get("spec_hash") != spec.spec_hash:
        problems.append("the robot spec changed")
    split = state.get("split", {})
    if list(split.get("train", [])) != train or list(split.get("val", [])) != val:
        problems.append("the episodes or their split changed")
    saved = state.get("config", {})
    for key in ("trunk", "size", "freeze_trunk", "batch_size", "seed", "feature_dtype", "rate_hz"):
        if saved.get(key) != getattr(config, key):
            problems.append(f"{key} was {saved.get(key)!r}, now {getattr(config, key)!r}")
    if problems:
        raise TrainError("cannot resume: " + "; ".join(problems))
    if int(state["step"]) >= config.steps:
        logger.warning("the checkpoint is at step %d >= --steps %d: nothing left to train", state["step"],
                       config.steps)
