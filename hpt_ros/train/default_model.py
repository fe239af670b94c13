"""Reproduce the package's default model, ``models/franka_fr3_feed_dog`` (what ``hpt-ros demo`` runs).

    python -m hpt_ros.train.default_model                 # or: bash scripts/make_default_model.sh
    python -m hpt_ros.train.default_model --trunk liruiw/hpt-small --size small --episodes 60

1. Records ``--episodes`` demonstrations of the scripted feed-dog expert (with its
   recovery noise) on the simulated Franka, with the real nodes in simulated time
   (``sim_demos``), at the fake robot's default 224x224 camera size, scene seed ``--seed``
   (``hpt-ros sim-eval`` holds out seed 1000).
2. Trains with ``run_training`` (what ``hpt-ros train`` runs): by default the tiny trunk
   (embed 64, 2 blocks, 4 heads) trained from scratch (no pretrained trunk can be
   downloaded offline; pass ``--trunk`` to fine-tune one), a seeded random-init ResNet-18
   (``--vision-weights`` for ImageNet weights): its 7x7 feature maps still locate the
   treat to about a centimetre, which is what the task needs, once they are standardised
   per token and channel (``--image-feature-norm`` of ``hpt-ros train``; without it the
   policy ignores the cameras and reaches for the average treat position). Small noise on
   the training states (``--state-noise``) keeps it from reading the treat's place off
   the arm's own pose alone.
   With ``--sim-encoder SCENES`` the ResNet-18 is first trained on that many rendered
   scenes of the simulator (``sim_encoder``: the expert at work, each frame labelled with
   the treat's place in the hand's frame and on the table, the hand's position and the
   finger; scene seed 2) and the policy trains over that frozen encoder instead; its
   weights are then stored in the checkpoint (``--encoder-dtype``, 22 MB).
   With ``--missed-grasp-episodes N``: N more demonstrations (scene seed ``--seed`` + 3,
   ``--missed-grasp-duration`` s each) in which the expert's first grasp closes 2-3.5 cm
   beside the treat and it then picks the treat up after all (``FeedDogExpert``'s
   ``missed_grasp``). Measured, this hurts (3/30 against 20/30 on validation scenes):
   the wrong grasp is in the labels and the policy learns it.
   With ``--rough-line-up-episodes N``: N more demonstrations (scene seed ``--seed`` + 4)
   in which the expert lines up over the treat up to ``--approach-error`` m off it and
   centres it on the way down (``FeedDogExpert``'s ``approach_error``): the correction a
   policy needs when it drifts off the treat while descending. Measured, this hurts too
   (15/30 against 20/30 on validation scenes).
   With ``--takeover-episodes N`` (DAgger, one round): a first model trained on the
   demonstrations (or ``--takeover-model``) drives N more scenes (seed ``--seed`` + 1);
   after ``--takeover-times`` seconds (cycled over the episodes) the expert takes over
   from wherever the policy brought the arm and only its correction and completion are
   recorded (``record_takeover_episodes``); the final model trains on both sets.
3. Writes the final checkpoint (``hpt.yaml`` + ``model.safetensors``) to ``--out`` with
   ``summary.yaml`` and ``loss_curve.png`` beside it.
4. With ``--evaluate N``: the untrained model (the same run with 0 steps: normaliser
   fitted, weights random) and ``hpt-ros sim-eval`` of the expert, the trained and the
   untrained model on the same N held-out scenes (seed ``--eval-seed``), side by side in
   ``--out/sim_eval.md`` (``hpt_ros.evaluate.compare``; reports and videos in the work
   folder).

Size. The random ResNet-18 (11.2 M parameters) is seeded, so the checkpoint stores its
seed and checksum instead of 45 MB of weights (2 MB in all). Its weights are rounded
through ``--encoder-dtype`` (float16 by default) before training; with ImageNet weights
(``--vision-weights``) the encoder is stored in that dtype (22 MB), bit for bit what the
policy was trained on.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["cli", "make_default_model", "store_encoder_as"]

logger = logging.getLogger("hpt_ros.train")


def store_encoder_as(folder: str | Path, dtype_name: str) -> int:
    """Rewrite ``folder/model.safetensors`` with the encoder's float tensors in ``dtype_name``;
    returns the new file size. Lossless only for weights already representable in that dtype."""
    import torch
    from safetensors.torch import load_file, save_file

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    file = Path(folder) / "model.safetensors"
    tensors = load_file(str(file))
    out = {k: (v.to(dtype) if k.startswith("encoder.") and v.is_floating_point() else v) for k, v in tensors.items()}
    for key, value in out.items():
        if key.startswith("encoder.") and value.is_floating_point() and not torch.equal(value.float(), tensors[key]):
            raise ValueError(f"{key}: not representable in {dtype_name}; round the encoder before training")
    tmp = file.with_suffix(".tmp")
    save_file(out, str(tmp), metadata={"format": "pt"})
    tmp.replace(file)
    file.chmod(0o644)
    return file.stat().st_size


def make_default_model(out: str | Path, *, episodes: int = 150, duration_s: float = 11.0, seed: int = 0,
                       size: str = "tiny", trunk: str | None = None, vision_weights: str | None = None,
                       steps: int = 14000, batch_size: int = 64, lr: float = 1e-3, encoder_dtype: str = "float16",
                       width: int = 224, height: int = 224, camera_rate_hz: float = 15.0, work: str | None = None,
                       threads: int | None = None, evaluate: int = 0, eval_seed: int = 1000,
                       image_feature_norm: bool = True, state_noise: float = 0.25, action_relative: bool = False,
                       takeover_episodes: int = 0,
                       takeover_model: str | None = None,
                       takeover_times: tuple[float, ...] = (1.5, 3.0, 4.5, 6.0),
                       takeover_duration_s: float = 10.0, sim_encoder_episodes: int = 0,
                       sim_encoder_steps: int = 700, robot: str = "franka_fr3", missed_grasp_episodes: int = 0,
                       missed_grasp_duration_s: float = 14.0, rough_line_up_episodes: int = 0,
                       approach_error: float = 0.03) -> Path:
    """Record, train and write the default model to ``out``; returns ``out``."""
    import torch
    import yaml

    from hpt_ros.data import next_episode_index
    from hpt_ros.model import load_checkpoint
    from hpt_ros.spec import load_spec

    from . import trainer
    from .config import TrainConfig

    spec = load_spec(robot)
    out = Path(out)
    tmp = tempfile.mkdtemp(prefix="hpt_default_model_") if work is None else None
    work_dir = Path(work or tmp)
    started = time.perf_counter()
    try:
        demos = work_dir / "demos"
        have = next_episode_index(demos)
        if have > episodes:
            raise ValueError(f"{demos} holds {have} episodes, more than the {episodes} asked for; "
                             "use another --work folder")
        _record_missing(demos, spec, episodes, "", seed=seed, duration_s=duration_s, width=width, height=height,
                        camera_rate_hz=camera_rate_hz)
        encoder_metrics = None
        if sim_encoder_episodes > 0:
            if vision_weights is not None:
                raise ValueError("pass either vision_weights or sim_encoder_episodes, not both")
            vision_weights, encoder_metrics = _sim_encoder(work_dir, sim_encoder_episodes, sim_encoder_steps, width,
                                                           height, threads)
        config = TrainConfig(robot=str(spec.source), episodes=[str(demos)], out=str(work_dir / "run"), trunk=trunk,
                             size=size if trunk is None else None, vision_weights=vision_weights,
                             random_vision=vision_weights is None, steps=steps, batch_size=batch_size, lr=lr,
                             warmup_steps=min(100, steps // 10), val_every=max(steps // 20, 1),
                             save_every=steps, seed=seed, cache_dir=str(work_dir / "cache"), export_onnx=False,
                             threads=threads, encoder_round_dtype=None if encoder_dtype == "float32" else encoder_dtype,
                             image_feature_norm=image_feature_norm, state_noise=state_noise,
                             action_relative=action_relative)
        if missed_grasp_episodes > 0:
            # other scenes (seed + 3) in which the expert's first grasp closes beside the treat
            missed = _record_missing(work_dir / "missed_grasps", spec, missed_grasp_episodes,
                                     " whose first grasp misses", seed=seed + 3, duration_s=missed_grasp_duration_s,
                                     width=width, height=height, camera_rate_hz=camera_rate_hz, missed_grasp=1.0)
            config = dataclasses.replace(config, episodes=[*config.episodes, str(missed)])
        if rough_line_up_episodes > 0:
            # other scenes (seed + 4) lined up off the treat and centred on the way down
            rough = _record_missing(work_dir / "rough_line_ups", spec, rough_line_up_episodes,
                                    f" lined up up to {approach_error:g} m off the treat", seed=seed + 4,
                                    duration_s=duration_s, width=width, height=height,
                                    camera_rate_hz=camera_rate_hz, approach_error=approach_error)
            config = dataclasses.replace(config, episodes=[*config.episodes, str(rough)])
        if takeover_episodes > 0:
            taken_over = _record_takeovers(work_dir, spec, config, takeover_episodes, takeover_model, takeover_times,
                                           seed=seed + 1, duration_s=takeover_duration_s, width=width, height=height,
                                           camera_rate_hz=camera_rate_hz, threads=threads)
            config = dataclasses.replace(config, episodes=[*config.episodes, str(taken_over)])
        shutil.rmtree(work_dir / "run", ignore_errors=True)
        result = trainer.run_training(config)
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for name in ("hpt.yaml", "model.safetensors"):
            shutil.copy2(result.model_dir / name, out / name)
            (out / name).chmod(0o644)
        reference, _ = load_checkpoint(out)
        encoder_meta = yaml.safe_load((out / "hpt.yaml").read_text()).get("encoder") or {}
        if encoder_dtype != "float32" and encoder_meta.get("seed") is None:  # a seeded encoder is stored as its seed
            size_bytes = store_encoder_as(out, encoder_dtype)
            stored, _ = load_checkpoint(out)
            for (k, a), (_, b) in zip(reference.state_dict().items(), stored.state_dict().items()):
                if not torch.equal(a, b):
                    raise RuntimeError(f"{k} changed when the encoder was stored as {encoder_dtype}")
            logger.info("encoder stored as %s: model.safetensors %.1f MB (loads back bit for bit)", encoder_dtype,
                        size_bytes / 1e6)
        shutil.copy2(result.out / "loss_curve.png", out / "loss_curve.png")
        summary = yaml.safe_load((result.out / "summary.yaml").read_text())
        summary.pop("dataset", None)
        summary["model"] = str(out)
        summary["made_by"] = {"command": "python -m hpt_ros.train.default_model", "robot": spec.name,
                              "action_horizon": spec.action.horizon, "episodes": episodes,
                              "duration_s": duration_s, "seed": seed, "camera": f"{width}x{height}",
                              "encoder_dtype": encoder_dtype, "image_feature_norm": image_feature_norm,
                              "state_noise": state_noise, "action_relative": action_relative,
                              "missed_grasp_episodes": missed_grasp_episodes,
                              "missed_grasp_duration_s": missed_grasp_duration_s if missed_grasp_episodes else None,
                              "rough_line_up_episodes": rough_line_up_episodes,
                              "approach_error_m": approach_error if rough_line_up_episodes else None,
                              "takeover_episodes": takeover_episodes,
                              "takeover_times_s": list(takeover_times) if takeover_episodes else None,
                              "sim_encoder": encoder_metrics,
                              "seconds": round(time.perf_counter() - started, 1)}
        (out / "summary.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
        if evaluate > 0:
            _evaluate(out, config, work_dir, evaluate, eval_seed, threads)
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _record_missing(folder: Path, spec, count: int, what: str, **recording) -> Path:
    """Record into ``folder`` the episodes it lacks of ``count`` (``record_sim_episodes``); returns it.
    The recorder numbers on from the episodes there and each scene is drawn for (seed, index),
    so a rerun asking for more records only the missing ones, as a fresh run would."""
    from hpt_ros.data import next_episode_index

    from .sim_demos import record_sim_episodes

    missing = count - next_episode_index(folder)
    if missing > 0:
        logger.info("recording %d episodes of %g s%s (simulated time, %dx%d cameras) into %s", missing,
                    recording["duration_s"], what, recording["width"], recording["height"], folder)
        record_sim_episodes(folder, spec, missing, **recording)
    return folder


def _sim_encoder(work_dir: Path, episodes: int, steps: int, width: int, height: int,
                 threads: int | None) -> tuple[str, dict]:
    """A ResNet-18 trained on ``episodes`` rendered scenes (``sim_encoder``, scene seed 2), kept in
    ``work_dir/sim_encoder``; returns (weights file, its metrics)."""
    import yaml

    from .sim_encoder import make_sim_encoder

    weights = work_dir / "sim_encoder" / "sim_resnet18.safetensors"
    info = weights.with_suffix(".yaml")
    if not (weights.is_file() and info.is_file()):
        logger.info("training the vision encoder on %d rendered scenes (%s)", episodes, weights)
        make_sim_encoder(weights, episodes=episodes, width=width, height=height, steps=steps, threads=threads)
    return str(weights), yaml.safe_load(info.read_text())


def _record_takeovers(work_dir: Path, spec, config, count: int, model: str | None, times: tuple[float, ...], *,
                      seed: int, threads: int | None, **recording) -> Path:
    """DAgger's data: ``count`` scenes driven by ``model`` (default: a model trained on the
    demonstrations alone, ``work_dir/round0``) until the expert takes over; returns their folder."""
    from hpt_ros.engine.factory import load_engine

    from . import trainer
    from .sim_demos import record_takeover_episodes

    folder = work_dir / "takeover"
    done = len(list(folder.glob("episode_*"))) if folder.is_dir() else 0
    if done >= count:
        return folder
    if model is None:
        first = dataclasses.replace(config, out=str(work_dir / "round0"))
        if not (Path(first.out) / trainer.MODEL_DIR / "hpt.yaml").is_file():
            shutil.rmtree(first.out, ignore_errors=True)
            logger.info("DAgger round 0: training on the demonstrations alone (%s)", first.out)
            model = str(trainer.run_training(first).model_dir)
        else:
            model = str(Path(first.out) / trainer.MODEL_DIR)
    engine = load_engine(model, spec, threads=threads)
    # the same number of scenes per takeover time, in turn, so a rerun continues where it stopped
    per_time = -(-count // len(times))
    for i, takeover_s in enumerate(times):
        have = len(list(folder.glob("episode_*"))) if folder.is_dir() else 0
        want = min(count, per_time * (i + 1)) - have
        if want > 0:
            logger.info("recording %d scenes driven by %s for %g s, then by the expert", want, model, takeover_s)
            record_takeover_episodes(folder, spec, engine, want, takeover_s=takeover_s, seed=seed, **recording)
    return folder


def _evaluate(model: Path, config, work_dir: Path, episodes: int, seed: int, threads: int | None) -> None:
    """The expert, ``model`` and the untrained model on the same held-out scenes -> ``model/sim_eval.md``."""
    from hpt_ros.evaluate.compare import compare, results_table

    from . import trainer

    untrained = dataclasses.replace(config, out=str(work_dir / "untrained"), steps=0)
    shutil.rmtree(untrained.out, ignore_errors=True)
    baseline = trainer.run_training(untrained)
    result = compare({"expert": "expert", "trained": str(model), "untrained": str(baseline.model_dir)},
                     episodes=episodes, seed=seed, out=work_dir / "eval", robot=config.robot,
                     threads=threads)
    (model / "sim_eval.md").write_text(results_table(result) + "\n")
    logger.info("closed-loop evaluation:\n%s", results_table(result))


def cli(argv: list[str] | None = None, prog: str = "python -m hpt_ros.train.default_model") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=None, help="default: <share>/models/franka_fr3_feed_dog")
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--duration", type=float, default=11.0, help="seconds per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--robot", default="franka_fr3",
                        help="robot spec (shipped name or YAML) of the simulated Franka, e.g. with another "
                             "action horizon")
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--trunk", default=None, help="pretrained trunk (hub id, folder, file); default: none")
    parser.add_argument("--vision-weights", default=None, help="ResNet-18 ImageNet weights; default: random")
    parser.add_argument("--sim-encoder", type=int, default=0, metavar="SCENES",
                        help="first train the ResNet-18 on this many rendered scenes (hpt_ros.train.sim_encoder)")
    parser.add_argument("--sim-encoder-steps", type=int, default=700, help="its training steps")
    parser.add_argument("--steps", type=int, default=14000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--encoder-dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--camera-rate-hz", type=float, default=15.0)
    parser.add_argument("--work", default=None, help="keep the episodes, cache and run here (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-image-feature-norm", action="store_true",
                        help="feed the stems the raw ResNet features (upstream HPT)")
    parser.add_argument("--state-noise", type=float, default=0.25,
                        help="Gaussian noise on training states, in units of each dimension's std")
    parser.add_argument("--relative-actions", action="store_true",
                        help="chunk steps as offsets from the measured joint state instead of absolute targets")
    parser.add_argument("--missed-grasp-episodes", type=int, default=0, metavar="N",
                        help="N more demonstrations (scene seed + 3) whose first grasp closes beside the treat "
                             "and is recovered")
    parser.add_argument("--missed-grasp-duration", type=float, default=14.0, help="seconds per such episode")
    parser.add_argument("--rough-line-up-episodes", type=int, default=0, metavar="N",
                        help="N more demonstrations (scene seed + 4) that line up to --approach-error m off the "
                             "treat and centre it on the way down")
    parser.add_argument("--approach-error", type=float, default=0.03, help="their line-up error [m]")
    parser.add_argument("--takeover-episodes", type=int, default=0, metavar="N",
                        help="DAgger: N more scenes driven by a first model until the expert takes over")
    parser.add_argument("--takeover-model", default=None,
                        help="the policy that drives them (default: trained on the demonstrations first)")
    parser.add_argument("--takeover-times", default="1.5,3,4.5,6",
                        help="seconds the policy drives before the expert takes over, cycled over the scenes")
    parser.add_argument("--evaluate", type=int, default=0, metavar="N",
                        help="then sim-eval the expert, the model and the untrained model on N held-out scenes")
    parser.add_argument("--eval-seed", type=int, default=1000, help="scene seed of the held-out scenes")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    out = args.out
    if out is None:
        from hpt_ros.resources import models_dir

        out = models_dir() / "franka_fr3_feed_dog"
    path = make_default_model(out, episodes=args.episodes, duration_s=args.duration, seed=args.seed,
                              robot=args.robot, size=args.size, trunk=args.trunk, vision_weights=args.vision_weights,
                              steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              encoder_dtype=args.encoder_dtype, width=args.width, height=args.height,
                              camera_rate_hz=args.camera_rate_hz, work=args.work, threads=args.threads,
                              evaluate=args.evaluate, eval_seed=args.eval_seed,
                              image_feature_norm=not args.no_image_feature_norm, state_noise=args.state_noise,
                              action_relative=args.relative_actions, takeover_episodes=args.takeover_episodes,
                              missed_grasp_episodes=args.missed_grasp_episodes,
                              missed_grasp_duration_s=args.missed_grasp_duration,
                              rough_line_up_episodes=args.rough_line_up_episodes,
                              approach_error=args.approach_error,
                              takeover_model=args.takeover_model,
                              takeover_times=_seconds_list(args.takeover_times, "--takeover-times"),
                              sim_encoder_episodes=args.sim_encoder, sim_encoder_steps=args.sim_encoder_steps)
    print(f"default model written to {path}")
    return 0


def _seconds_list(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SystemExit(f"{flag}: expected comma-separated seconds, got {text!r}") from None
    if not values or min(values) <= 0:
        raise SystemExit(f"{flag}: expected positive seconds, got {text!r}")
    return values


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
