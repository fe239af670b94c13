"""``TrainConfig``: every setting of a fine-tuning run, with upstream HPT's recipe as defaults.

Upstream's training config (``experiments/configs/config.yaml`` at the commit of the
fixtures, see ``shared/fixtures/hpt_official/tiny_config.yaml``): AdamW lr 1e-5, eps 1e-7,
weight decay 1e-4; a warm-up of 1000 steps starting at lr 1e-10; cosine annealing to
1e-6; 20000 iterations of batch 256; a 10 % validation split; smooth-L1 loss (beta 0.05)
on normalised action chunks; ``nontrunk_lr_scale`` 1; drop_path 0.1.

Deviations, on purpose:

* ``freeze_trunk`` defaults to **true** when a pretrained trunk is given (upstream's
  default is false): this package fine-tunes new stems and a head over a pretrained
  trunk, the setting HPT's transfer experiments describe, and a frozen trunk cannot
  forget. ``--finetune-trunk`` trains it too. A trunk trained from scratch is never frozen.
* The cosine runs once from the end of the warm-up to the last step (``t_max`` default
  ``steps - warmup_steps``) and stays at ``eta_min``; upstream's ``CosineAnnealingLR``
  with ``T_max`` 1000 over 20000 iterations would rise and fall again every 2000 steps.
* The warm-up is linear from ``warmup_init_lr`` to ``lr`` (upstream's ``WarmupLR``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["OFFICIAL_RECIPE", "TrainConfig"]

#: The upstream values the defaults come from (for reports and the walkthrough).
OFFICIAL_RECIPE: dict[str, Any] = {
    "optimizer": "AdamW", "lr": 1e-5, "eps": 1e-7, "weight_decay": 1e-4,
    "warmup_steps": 1000, "warmup_init_lr": 1e-10, "eta_min": 1e-6, "t_max": 1000,
    "steps": 20000, "batch_size": 256, "val_fraction": 0.1, "loss": "smooth_l1(beta=0.05)",
    "nontrunk_lr_scale": 1.0, "drop_path": 0.1, "freeze_trunk": False,
}


@dataclass(kw_only=True)
class TrainConfig:
    """One training run. Paths are strings so the config round-trips through YAML."""

    robot: str
    episodes: list[str]
    out: str
    trunk: str | None = None  # hub id, folder with trunk.pth, or a trunk file; None: from scratch
    size: str | None = None  # tiny/small/base/large/xlarge; default: from the trunk, else the spec's
    num_heads: int | None = None  # trunk heads when the trunk file cannot tell (trunk.pth has no heads)
    vision_weights: str | None = None  # ResNet-18 ImageNet weights (.pth / .safetensors)
    random_vision: bool = False  # allow a random-init encoder (tests, offline demos)
    encoder_round_dtype: str | None = None  # round encoder weights to float16/bfloat16 first (smaller checkpoints)
    freeze_trunk: bool | None = None  # None: frozen with a pretrained trunk, trained from scratch
    # optimisation (upstream recipe)
    steps: int = 20000
    batch_size: int = 256
    lr: float = 1e-5
    eps: float = 1e-7
    weight_decay: float = 1e-4
    warmup_steps: int = 1000
    warmup_init_lr: float = 1e-10
    eta_min: float = 1e-6
    t_max: int | None = None
    nontrunk_lr_scale: float = 1.0
    drop_path: float = 0.1
    loss_beta: float = 0.05
    grad_clip: float = 0.0  # 0: off (upstream does not clip)
    image_feature_norm: bool = False  # standardise image features (HPTConfig.image_feature_norm)
    state_noise: float = 0.0  # Gaussian noise on training states, in units of each dimension's std
    action_relative: bool = False  # chunk steps as offsets from the measured state (HPTConfig.action_relative)
    # data
    val_fraction: float = 0.1
    seed: int = 0
    only_success: bool = False
    rate_hz: float | None = None
    action_topic: str | None = None
    action_type: str | None = None
    gripper_topic: str | None = None
    feature_dtype: str = "float16"
    cache_dir: str | None = None
    encoder_batch: int = 32
    # bookkeeping
    val_every: int = 100
    save_every: int = 1000
    keep_checkpoints: int = 2
    export_onnx: bool = True
    threads: int | None = None
    device: str | None = None  # "cpu", "cuda", "cuda:1"; default: cuda when available
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.episodes, str):
            self.episodes = [self.episodes]
        if int(self.steps) < 0:
            raise ValueError(f"steps must be >= 0 (0: build the data, save the untrained model), got {self.steps}")
        for name in ("batch_size", "val_every", "save_every", "encoder_batch"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("lr", "eps"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.eta_min < 0 or self.nontrunk_lr_scale <= 0:
            raise ValueError("warmup_steps, weight_decay and eta_min must be >= 0, nontrunk_lr_scale > 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.feature_dtype not in ("float16", "float32"):
            raise ValueError(f"feature_dtype must be float16 or float32, got {self.feature_dtype!r}")
        if self.encoder_round_dtype not in (None, "float16", "bfloat16"):
            raise ValueError(f"encoder_round_dtype must be float16, bfloat16 or None, got {self.encoder_round_dtype!r}")
        if self.vision_weights and self.random_vision:
            raise ValueError("give either vision_weights or random_vision, not both")

    @property
    def trunk_frozen(self) -> bool:
        """Whether the trunk is frozen in this run (see the module docstring)."""
        if self.trunk is None:
            return False
        return True if self.freeze_trunk is None else bool(self.freeze_trunk)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {', '.join(unknown)}")
        return cls(**data)
