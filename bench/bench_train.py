"""Training throughput: feature extraction, the feature cache, and optimiser steps on cached features.

    PYTHONPATH=. python bench/bench_train.py                      # HPT-Small and Base, ~3-6 minutes on 2 cores
    PYTHONPATH=. python bench/bench_train.py --sizes tiny small --steps 20 --episodes 2

1. Records ``--episodes`` scripted episodes of the fake FR3 (real nodes, replay transport,
   simulated time; 160x120 cameras) into a temporary folder.
2. Builds the training samples twice with the spec's ResNet-18 (random weights: the same
   cost as ImageNet weights): cold (every distinct frame through the encoder; frames/s) and
   warm (from the on-disk feature cache; the speed-up).
3. Per trunk size: ``--steps`` optimiser steps of batch ``--batch-size`` on the cached
   features, trunk frozen (the default fine-tuning) and trained, after ``--warmup`` steps;
   samples/s of the training step alone (batch gather, forward, loss, backward, AdamW).

Ratios and rates are measured in this one run; absolute figures depend on the machine and
its load (``os.getloadavg`` is printed). Pretrained trunks cannot be downloaded here, so
Small/Base trunks are randomly initialised: the step costs the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["tiny", "small", "base", "large"])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per episode")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.ERROR)
    import torch
    import torch.nn.functional as F

    from hpt_ros.data.dataset import SampleSet, load_episodes, select_episodes
    from hpt_ros.data.features import FeatureExtractor
    from hpt_ros.engine.factory import config_for_spec
    from hpt_ros.model import HPTPolicy, ImageEncoder, LimitsNormalizer
    from hpt_ros.spec import load_spec
    from hpt_ros.train.sim_demos import record_sim_episodes
    from hpt_ros.train.trainer import _adamw
    from hpt_ros.train.config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = load_spec("franka_fr3")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        record_sim_episodes(tmp_path / "demos", spec, args.episodes, duration_s=args.duration)
        record_s = time.perf_counter() - t
        infos, _ = select_episodes(tmp_path / "demos")
        torch.manual_seed(0)
        encoder = ImageEncoder(random_init=True)
        extractor = FeatureExtractor(encoder, batch_size=32)
        t = time.perf_counter()
        episodes, _ = load_episodes(infos, spec, extractor, cache_dir=tmp_path / "cache", progress=False)
        cold_s = time.perf_counter() - t
        frames = sum(e.stats["frames_encoded"] for e in episodes)
        t = time.perf_counter()
        episodes, _ = load_episodes(infos, spec, extractor, cache_dir=tmp_path / "cache", progress=False)
        warm_s = time.perf_counter() - t
        assert all(e.cached for e in episodes)
        samples = SampleSet(episodes, spec.action.horizon)
        print(f"\nrecording: {args.episodes} episodes x {args.duration:g} s (simulated) in {record_s:.1f} s wall")
        print(f"dataset build, cold: {cold_s:.1f} s for {len(samples)} samples, {frames} frames encoded "
              f"-> {frames / cold_s:.1f} frames/s ({len(samples) / cold_s:.1f} samples/s)")
        print(f"dataset build, from the feature cache: {warm_s:.3f} s -> {cold_s / warm_s:.0f}x faster")

        print(f"\ntraining step on cached features, batch {args.batch_size}, {args.steps} timed steps:")
        print(f"{'size':8s} {'trunk':9s} {'params trained':>15s} {'samples/s':>10s} {'ms/step':>9s}")
        rows = []
        for size in args.sizes:
            for frozen in (True, False):
                torch.manual_seed(0)
                policy = HPTPolicy(config_for_spec(spec, size))
                for target, data in ((policy.state_normalizer, samples.states),
                                     (policy.action_normalizer, samples.all_actions)):
                    stats = LimitsNormalizer.fit_limits(data).input_stats
                    target.set_limits(stats.min.numpy(), stats.max.numpy())
                policy.train()
                for p in policy.trunk.parameters():
                    p.requires_grad_(not frozen)
                if frozen:
                    policy.trunk.eval()
                params = [p for p in policy.parameters() if p.requires_grad]
                config = TrainConfig(robot="", episodes=[], out="", lr=1e-4)
                opt = _adamw([{"params": params}], config)
                norm = policy.action_normalizer
                rng = np.random.default_rng(0)
                elapsed = 0.0
                for step in range(args.warmup + args.steps):
                    t = time.perf_counter()
                    feats, state, target = samples.batch(rng.integers(0, len(samples), args.batch_size))
                    pred = policy.forward_features(feats, state)
                    loss = F.smooth_l1_loss(norm.normalize(pred), norm.normalize(target), beta=0.05)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if step >= args.warmup:
                        elapsed += time.perf_counter() - t
                rate = args.steps * args.batch_size / elapsed
                rows.append((size, frozen, rate))
                print(f"{size:8s} {'frozen' if frozen else 'trained':9s} {sum(p.numel() for p in params):>15,d} "
                      f"{rate:>10.1f} {1000 * elapsed / args.steps:>9.1f}")
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
