"""A ResNet-18 trained on the simulated robot's own camera frames, for the policy's frozen encoder.

    python -m hpt_ros.train.sim_encoder --out runs/sim_resnet18.safetensors
    python -m hpt_ros.train.default_model --sim-encoder ...     # trains one and uses it

No ImageNet weights can be downloaded offline, and a random-weight ResNet-18's 7x7 maps
locate the treat only roughly: the shipped policy lines up over the treat, then drifts
off it on the way down, where only the wrist camera still sees it. This module renders
the feed-dog scene while the scripted expert works (with its recovery noise, and lining
up off the treat in half of the scenes so that off-centre views occur), labels every
frame with what the simulator knows, and trains the ResNet-18 to read those labels off
its feature maps:

- the treat's position in the hand's frame (what a grasp needs),
- the treat's and the hand's positions on the table, the finger opening.

The labels exist only while training the encoder: the policy still sees nothing but the
two cameras and the joint states. The head reads the 7x7 maps through a 1x1 convolution
and a linear layer over all 49 places, so the features stay where the things are (the
policy's stem attends over the same 49 tokens). Both views share the encoder, each has
its own head. The result is a plain ResNet-18 state dict with torchvision names
(``safetensors``), which ``--vision-weights`` of ``hpt-ros train`` loads strictly like
ImageNet weights.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LABELS", "LabelledFrames", "cli", "make_sim_encoder", "render_labelled_frames", "train_sim_encoder"]

logger = logging.getLogger("hpt_ros.train")

#: what each frame is labelled with (per view), in this order
LABELS = ("treat_in_hand_x", "treat_in_hand_y", "treat_in_hand_z", "treat_x", "treat_y", "treat_z",
          "hand_x", "hand_y", "hand_z", "finger")


@dataclass
class LabelledFrames:
    """``images`` uint8 [N, views, H, W, 3]; ``labels`` float32 [N, len(LABELS)]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def render_labelled_frames(episodes: int, *, seed: int = 2, duration_s: float = 11.0, every: int = 2,
                           width: int = 224, height: int = 224, approach_error: float = 0.04,
                           progress: bool = True) -> LabelledFrames:
    """Run the expert on ``episodes`` scenes ``(seed, 0..episodes-1)`` in simulated time at the
    spec's rate and keep every ``every``-th tick's two camera frames with their labels.
    Odd episodes line up to ``approach_error`` m off the treat before descending."""
    from hpt_ros.sim import FeedDogExpert, FeedDogSim, SceneRenderer, forward_kinematics
    from hpt_ros.sim.kinematics import TCP_INDEX
    from hpt_ros.spec import load_spec
    from tqdm.auto import tqdm

    spec = load_spec("franka_fr3")
    joints = tuple(spec.action.arm_joints) + (spec.action.gripper.joint,)
    lower, upper, velocity = spec.joint_limits_arrays(joints)
    sim = FeedDogSim(seed=seed)
    renderer = SceneRenderer(sim.model, width, height)
    dt = 1.0 / spec.rate_hz
    ticks = int(round(duration_s * spec.rate_hz))
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    try:
        for episode in tqdm(range(episodes), desc="encoder frames", unit="scene", disable=not progress):
            layout = sim.reset(episode)
            expert = FeedDogExpert(lower, upper, velocity, rate_hz=spec.rate_hz,
                                   max_velocity_fraction=spec.safety.max_velocity_fraction,
                                   rng=np.random.default_rng([seed, episode, 11]), noise=0.01, perturbation=0.03,
                                   approach_error=approach_error if episode % 2 else 0.0)
            for tick in range(ticks):
                q = sim.joint_positions()[:8]
                treat = sim.treat_position()
                if tick % every == 0:
                    hand = forward_kinematics(q[:7])[TCP_INDEX]
                    in_hand = hand[:3, :3].T @ (treat - hand[:3, 3])
                    labels.append(np.concatenate([in_hand, treat, hand[:3, 3], q[7:8]]).astype(np.float32))
                    images.append(np.stack(renderer.render(*sim.snapshot())))
                sim.set_targets(joints, expert.next_target(q, treat, layout.bowl_xy))
                sim.step(dt)
    finally:
        renderer.close()
    return LabelledFrames(np.stack(images), np.stack(labels))


def _heads(views: int, outputs: int):
    from torch import nn

    return nn.ModuleList(
        nn.Sequential(nn.Conv2d(512, 16, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 49, 256), nn.ReLU(),
                      nn.Linear(256, outputs))
        for _ in range(views))


def train_sim_encoder(frames: LabelledFrames, out: str | Path, *, steps: int = 700, batch_size: int = 16,
                      lr: float = 1e-3, seed: int = 0, val_fraction: float = 0.1, threads: int | None = None,
                      progress: bool = True) -> dict:
    """Train a seeded ResNet-18 (+ heads) on ``frames``; write its weights to ``out`` (safetensors,
    torchvision names) and return the metrics (validation error per label, in label units)."""
    import torch
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from hpt_ros.model.resnet import ImageEncoder

    from .schedule import WarmupCosine

    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    n, views = frames.images.shape[:2]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    val, train = order[:n_val], order[n_val:]
    mean = frames.labels[train].mean(0)
    std = np.maximum(frames.labels[train].std(0), 1e-3)  # a label that hardly varies stays in metres
    targets = torch.from_numpy((frames.labels - mean) / std)
    # the encoder's own preprocessing (resize, ImageNet normalisation) in front of its seeded backbone, trained
    encoder = ImageEncoder(random_init=True, seed=seed, image_size=224)
    backbone = encoder.backbone.train()
    # the first convolutions stay as seeded: edges and colours need no training, and the
    # backward pass then stops before the full-resolution layers (a fifth of the time)
    for module in (backbone.conv1, backbone.bn1, backbone.layer1):
        module.requires_grad_(False)
        module.eval()
    heads = _heads(views, len(LABELS))
    params = list(backbone.parameters()) + list(heads.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = WarmupCosine(peak_lr=lr, warmup_steps=min(50, steps // 10), t_max=max(steps - min(50, steps // 10), 1))

    def loss_of(index: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(frames.images[index]).flatten(0, 1)  # [B*views, H, W, 3]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            maps = backbone(encoder.preprocess(x))
            maps = maps.unflatten(0, (len(index), views))
            pred = torch.stack([heads[v](maps[:, v]) for v in range(views)], 1).float()
        return ((pred - targets[index].unsqueeze(1)) ** 2).mean(dim=(1,))  # [B, labels]

    started = time.perf_counter()
    losses = []
    for step in tqdm(range(steps), desc="sim encoder", unit="step", disable=not progress):
        for group in optimiser.param_groups:
            group["lr"] = schedule(step)
        batch = rng.choice(train, size=min(batch_size, len(train)), replace=False)
        loss = loss_of(batch).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    backbone.eval()
    val_error = np.zeros(len(LABELS))
    if n_val:
        with torch.no_grad():
            sq = torch.cat([loss_of(val[i:i + batch_size]) for i in range(0, n_val, batch_size)])
        val_error = np.sqrt(sq.mean(0).numpy()) * std  # RMS error per label, in metres
    state = {k: v.detach().float().contiguous() for k, v in backbone.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"format": "resnet18 (torchvision names)",
                                         "trained_on": "hpt_ros feed-dog simulator frames",
                                         "labels": ",".join(LABELS), "frames": str(n), "steps": str(steps)})
    metrics = {"frames": int(n), "views": int(views), "steps": int(steps), "batch_size": int(batch_size),
               "seconds": round(time.perf_counter() - started, 1), "train_loss_first": losses[0] if losses else None,
               "train_loss_last": float(np.mean(losses[-20:])) if losses else None,
               "val_rms": {name: float(e) for name, e in zip(LABELS, val_error)},
               "label_std": {name: float(s) for name, s in zip(LABELS, std)}}
    logger.info("sim encoder: %d frames, %d steps, %.0f s; validation RMS error: %s", n, steps, metrics["seconds"],
                ", ".join(f"{k} {v * 1000:.1f} mm" for k, v in metrics["val_rms"].items()))
    return metrics


def make_sim_encoder(out: str | Path, *, episodes: int = 80, seed: int = 2, every: int = 2, width: int = 224,
                     height: int = 224, steps: int = 700, batch_size: int = 16, lr: float = 1e-3,
                     threads: int | None = None, progress: bool = True) -> dict:
    """Render ``episodes`` scenes, train on them, write the weights to ``out`` and the metrics
    (with ``episodes`` and ``seed``) beside it as ``out`` with the suffix ``.yaml``; returns the metrics."""
    import yaml

    frames = render_labelled_frames(episodes, seed=seed, every=every, width=width, height=height, progress=progress)
    metrics = train_sim_encoder(frames, out, steps=steps, batch_size=batch_size, lr=lr, threads=threads,
                                progress=progress)
    metrics.update(episodes=episodes, seed=seed)
    Path(out).with_suffix(".yaml").write_text(yaml.safe_dump(metrics, sort_keys=False))
    return metrics


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpt_ros.train.sim_encoder", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="the weights file to write (.safetensors)")
    parser.add_argument("--episodes", type=int, default=80, help="scenes rendered")
    parser.add_argument("--seed", type=int, default=2, help="scene seed (demonstrations use 0, sim-eval 1000)")
    parser.add_argument("--every", type=int, default=2, help="keep every N-th control tick's frames")
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    make_sim_encoder(args.out, episodes=args.episodes, seed=args.seed, every=args.every, steps=args.steps,
                     batch_size=args.batch_size, lr=args.lr, threads=args.threads)
    print(f"encoder weights written to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
