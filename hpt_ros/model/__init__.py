"""The HPT model: stems, trunk, head, normaliser, vision encoder and checkpoints.

``HPTPolicy`` reproduces upstream HPT's forward pass numerically (see the fixtures under
``shared/fixtures/hpt_official``) and uses upstream parameter names, so upstream
``trunk.pth`` / ``model.pth`` files load strictly. Own checkpoints are safetensors + YAML.
"""

from .checkpoint import (
    IGNORED_OFFICIAL_PREFIXES,
    TrunkLoadReport,
    load_checkpoint,
    load_official_model,
    load_official_trunk,
    read_official_trunk,
    read_state_dict,
    resolve_pretrained,
    save_checkpoint,
)
from .config import TRUNK_SIZES, HPTConfig, trunk_size_name
from .errors import CheckpointError, ConfigError, ModelError, PretrainedNotFoundError
from .head import ActionHead
from .info import describe
from .normalizer import DomainNormalizer, LimitsNormalizer
from .policy import STAGE_NAMES, HPTPolicy, tensors_sha256, trunk_sha256
from .posemb import sinusoid_table
from .resnet import ImageEncoder, ResNet18, fold_batchnorm, load_resnet18_weights
from .statecheck import check_state_dict
from .stems import CrossAttention, Stem
from .trunk import BLOCK_KEY_ORDER, Trunk

__all__ = [
    "BLOCK_KEY_ORDER",
    "IGNORED_OFFICIAL_PREFIXES",
    "STAGE_NAMES",
    "TRUNK_SIZES",
    "ActionHead",
    "CheckpointError",
    "ConfigError",
    "CrossAttention",
    "DomainNormalizer",
    "HPTConfig",
    "HPTPolicy",
    "ImageEncoder",
    "LimitsNormalizer",
    "ModelError",
    "PretrainedNotFoundError",
    "ResNet18",
    "Stem",
    "Trunk",
    "TrunkLoadReport",
    "check_state_dict",
    "describe",
    "fold_batchnorm",
    "load_checkpoint",
    "load_official_model",
    "load_official_trunk",
    "load_resnet18_weights",
    "read_official_trunk",
    "read_state_dict",
    "resolve_pretrained",
    "save_checkpoint",
    "sinusoid_table",
    "tensors_sha256",
    "trunk_sha256",
    "trunk_size_name",
]
