"""``hpt-ros train``: fine-tune stems and head over a pretrained HPT trunk from recorded episodes.

    hpt-ros train --robot config/robots/franka_fr3.yaml --episodes demos/ --trunk liruiw/hpt-base \\
                  --vision-weights resnet18.pth --out runs/feed_dog

Defaults follow upstream HPT's recipe (see ``hpt_ros.train.config``); ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import TrainConfig

__all__ = ["build_parser", "cli", "config_from_args"]

_D = TrainConfig(robot="", episodes=[], out="")  # defaults, for the help text


class _Formatter(argparse.HelpFormatter):
    """Shows '(default: X)' where there is a meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and not isinstance(action, argparse._StoreFalseAction) and "default" not in text):
            text += " (default: %(default)s)"
        return text


def build_parser(prog: str = "hpt-ros train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=_Formatter,
        description="Fine-tune new stems and a head over a pretrained HPT trunk on recorded episodes; writes a "
                    "checkpoint (OUT/model), an ONNX file (OUT/policy.onnx), a loss curve and a summary.")
    req = p.add_argument_group("what to train")
    req.add_argument("--robot", required=True, help="robot spec YAML (or a shipped name like franka_fr3)")
    req.add_argument("--episodes", required=True, nargs="+", metavar="DIR",
                     help="recording folder(s) of episode_NNNN bags (or single episode folders)")
    req.add_argument("--out", required=True, help="output folder")
    req.add_argument("--trunk", default=None, metavar="SOURCE",
                     help="pretrained trunk: a hub id (liruiw/hpt-base), a folder with trunk.pth, or a trunk file. "
                          "Without it the trunk is trained FROM SCRATCH")
    req.add_argument("--size", default=None, choices=["tiny", "small", "base", "large", "xlarge"],
                     help="trunk size (default: the trunk file's; without --trunk the spec's model.size)")
    req.add_argument("--num-heads", type=int, default=None, help="trunk heads, when the trunk file cannot tell")
    vision = req.add_mutually_exclusive_group()
    vision.add_argument("--vision-weights", default=None, metavar="FILE",
                        help="ResNet-18 ImageNet weights (torchvision/timm .pth or .safetensors)")
    vision.add_argument("--random-vision", action="store_true",
                        help="use a RANDOM ResNet-18 on purpose (tests, offline demos)")
    req.add_argument("--round-encoder", default=None, choices=["float16", "bfloat16"],
                     help="round the ResNet-18 weights to this dtype before training, so a checkpoint can store "
                          "the encoder at half the size without changing what the policy was trained on")
    freeze = req.add_mutually_exclusive_group()
    freeze.add_argument("--freeze-trunk", dest="freeze_trunk", action="store_true", default=None,
                        help="keep the pretrained trunk fixed (default with --trunk)")
    freeze.add_argument("--finetune-trunk", dest="freeze_trunk", action="store_false",
                        help="train the pretrained trunk too (upstream's default)")

    opt = p.add_argument_group("optimisation (upstream HPT recipe)")
    opt.add_argument("--steps", type=int, default=_D.steps,
                     help="optimiser steps (0: build the data, fit the normaliser, save the untrained model)")
    opt.add_argument("--batch-size", type=int, default=_D.batch_size, help="samples per step")
    opt.add_argument("--lr", type=float, default=_D.lr, help="AdamW peak learning rate")
    opt.add_argument("--eps", type=float, default=_D.eps, help="AdamW eps")
    opt.add_argument("--weight-decay", type=float, default=_D.weight_decay, help="AdamW weight decay")
    opt.add_argument("--warmup-steps", type=int, default=_D.warmup_steps, help="linear warm-up steps")
    opt.add_argument("--warmup-init-lr", type=float, default=_D.warmup_init_lr, help="learning rate at step 0")
    opt.add_argument("--eta-min", type=float, default=_D.eta_min, help="learning rate at the end of the cosine")
    opt.add_argument("--t-max", type=int, default=None, help="cosine length in steps (default: steps - warmup)")
    opt.add_argument("--nontrunk-lr-scale", type=float, default=_D.nontrunk_lr_scale,
                     help="stems' and head's learning rate relative to the trunk's")
    opt.add_argument("--drop-path", type=float, default=_D.drop_path, help="trunk stochastic depth (when trained)")
    opt.add_argument("--loss-beta", type=float, default=_D.loss_beta, help="smooth-L1 beta")
    opt.add_argument("--grad-clip", type=float, default=_D.grad_clip, help="max gradient norm; 0: off")
    opt.add_argument("--image-feature-norm", action="store_true",
                     help="standardise image features per token and channel (fitted on the training split; "
                          "helps a random-weight encoder's features count)")
    opt.add_argument("--relative-actions", dest="action_relative", action="store_true",
                     help="predict each chunk step as an offset from the measured joint state (state and action "
                          "must be the same joints); default: absolute targets")
    opt.add_argument("--state-noise", type=float, default=_D.state_noise,
                     help="Gaussian noise on the training states, in units of each dimension's std (0: off)")

    data = p.add_argument_group("data")
    data.add_argument("--val-fraction", type=float, default=_D.val_fraction, help="episodes held out for validation")
    data.add_argument("--seed", type=int, default=_D.seed, help="split, initialisation and batch order")
    data.add_argument("--only-success", action="store_true", help="use only episodes marked success: true")
    data.add_argument("--rate-hz", type=float, default=None, help="sample rate (default: the spec's control rate)")
    data.add_argument("--action-topic", default=None,
                      help="topic the actions were recorded on (default: the spec's command topic)")
    data.add_argument("--action-type", default=None, help="its message type (default: the spec's command type)")
    data.add_argument("--gripper-topic", default=None,
                      help="gripper command topic (default: the spec's; '' for none)")
    data.add_argument("--feature-dtype", default=_D.feature_dtype, choices=["float16", "float32"],
                      help="dtype of cached image features")
    data.add_argument("--cache-dir", default=None,
                      help="feature cache (default: $HPT_ROS_CACHE or ~/.cache/hpt_ros/features)")
    data.add_argument("--encoder-batch", type=int, default=_D.encoder_batch, help="frames per ResNet-18 call")

    run = p.add_argument_group("run")
    run.add_argument("--val-every", type=int, default=_D.val_every, help="validate every N steps")
    run.add_argument("--save-every", type=int, default=_D.save_every, help="checkpoint every N steps")
    run.add_argument("--keep-checkpoints", type=int, default=_D.keep_checkpoints, help="step checkpoints kept")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    run.add_argument("--no-onnx", action="store_true", help="skip the ONNX export at the end")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    run.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        robot=args.robot, episodes=list(args.episodes), out=args.out, trunk=args.trunk, size=args.size,
        num_heads=args.num_heads, vision_weights=args.vision_weights, random_vision=args.random_vision,
        encoder_round_dtype=args.round_encoder,
        freeze_trunk=args.freeze_trunk, steps=args.steps, batch_size=args.batch_size, lr=args.lr, eps=args.eps,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, warmup_init_lr=args.warmup_init_lr,
        eta_min=args.eta_min, t_max=args.t_max, nontrunk_lr_scale=args.nontrunk_lr_scale, drop_path=args.drop_path,
        loss_beta=args.loss_beta, grad_clip=args.grad_clip, image_feature_norm=args.image_feature_norm,
        state_noise=args.state_noise, action_relative=args.action_relative, val_fraction=args.val_fraction,
        seed=args.seed,
        only_success=args.only_success, rate_hz=args.rate_hz, action_topic=args.action_topic,
        action_type=args.action_type, gripper_topic=args.gripper_topic, feature_dtype=args.feature_dtype,
        cache_dir=args.cache_dir, encoder_batch=args.encoder_batch, val_every=args.val_every,
        save_every=args.save_every, keep_checkpoints=args.keep_checkpoints, export_onnx=not args.no_onnx,
        threads=args.threads, device=args.device, progress=not args.no_progress,
    )


def cli(argv: list[str] | None = None, prog: str = "hpt-ros train") -> int:
    """``hpt-ros train ...``; returns the exit status (0 ok, 1 error, 2 bad arguments)."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    from hpt_ros.model import ModelError
    from hpt_ros.spec import SpecError

    from .errors import TrainError
    from .trainer import run_training

    try:
        config = config_from_args(args)
        result = run_training(config, resume=args.resume)
    except (TrainError, ModelError, SpecError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = result.metrics
    print(f"model:  {result.model_dir}")
    if result.onnx:
        print(f"onnx:   {result.onnx}")
    if result.trunk:
        state = "unchanged (frozen)" if result.final_trunk_sha256 == result.trunk.sha256 else "fine-tuned"
        print(f"trunk:  {result.trunk.file} sha256 {result.trunk.sha256} -> {state}")
    else:
        print("trunk:  trained FROM SCRATCH (no --trunk)")
    val = m.get("val", {})
    if val.get("samples"):
        base = m.get("val_constant_mean_action", {})
        print(f"validation: loss {val['loss']:.4g} (untrained {m.get('val_untrained_loss') or float('nan'):.4g}, "
              f"constant mean action {base.get('loss', float('nan')):.4g}); first-step MAE {val['mae_first']:.4g} "
              f"(constant {base.get('mae_first', float('nan')):.4g})")
    t = result.timings
    print(f"time:   dataset {t['dataset_seconds']:.1f} s, training {t['train_seconds']:.1f} s "
          f"({t['train_samples_per_s']} samples/s), total {t['total_seconds']:.1f} s")
    print(f"figures: {result.out / 'loss_curve.png'}, {result.out / 'summary.yaml'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
