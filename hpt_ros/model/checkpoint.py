"""Loading upstream HPT checkpoints, and hpt_ros's own safetensors + YAML format.

Upstream files (``trunk.pth``, ``model.pth``) are read only with
``torch.load(weights_only=True)``, matched key by key and shape by shape, and the trunk
checksum is verified after loading: upstream's own loader silently loads nothing for
local paths, so here every mismatch is an error and success is proven.

Own format (a folder): ``model.safetensors`` (all tensors, no pickle) and ``hpt.yaml``
(config, normaliser stats and source, encoder info, trunk checksum, the robot spec fields
the model was made for (``robot_spec``, see ``hpt_ros.spec.compat``) and caller's ``extra``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import nn

from .config import HPTConfig
from .errors import CheckpointError, ConfigError, PretrainedNotFoundError
from .policy import HPTPolicy, trunk_sha256
from .resnet import ImageEncoder
from .statecheck import check_state_dict
from .trunk import Trunk

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.spec import RobotSpec

__all__ = [
    "CHECKPOINT_CONFIG",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_WEIGHTS",
    "IGNORED_OFFICIAL_PREFIXES",
    "TrunkLoadReport",
    "load_checkpoint",
    "load_official_model",
    "load_official_trunk",
    "read_official_trunk",
    "read_state_dict",
    "resolve_pretrained",
    "save_checkpoint",
]

logger = logging.getLogger("hpt_ros.model")

CHECKPOINT_WEIGHTS = "model.safetensors"
CHECKPOINT_CONFIG = "hpt.yaml"
CHECKPOINT_FORMAT = "hpt_ros.checkpoint/1"

IGNORED_OFFICIAL_PREFIXES: tuple[str, ...] = ("modalities_tokens.",)
"""Upstream ``model.pth`` keys accepted and dropped: upstream's forward never reads
``modalities_tokens.{image,state}`` (adding to them leaves its output unchanged)."""

_HUB_ID = re.compile(r"^(?:hf://)?([A-Za-z0-9][\w.\-]*/[\w.\-]+)/?$")


@dataclass(frozen=True)
class TrunkLoadReport:
    """What ``load_official_trunk`` loaded: the file, its size and the verified checksum."""

    file: Path
    num_keys: int
    num_params: int
    sha256: str


# -- reading upstream files ------------------------------------------------------------------


def read_state_dict(file: str | Path) -> dict[str, torch.Tensor]:
    """A flat dict of tensors from a ``.pth`` file, read with ``weights_only=True``."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(file, "file not found")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # includes pickles that would run code
        problem = f"cannot read with torch.load(weights_only=True): {exc}"
        raise CheckpointError(file, problem) from exc
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise CheckpointError(file, "expected a flat dict of tensors (a state dict)")
    return dict(data)


def _trunk_file(path: str | Path) -> Path:
    path = Path(path)
    return path / "trunk.pth" if path.is_dir() else path


def read_official_trunk(path: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """(file, tensors) of an upstream ``trunk.pth`` (a file or a folder holding one)."""
    file = _trunk_file(path)
    return file, read_state_dict(file)


def _trunk_of(target: HPTPolicy | Trunk) -> Trunk:
    return target.trunk if isinstance(target, HPTPolicy) else target


def load_official_trunk(path: str | Path, target: HPTPolicy | Trunk) -> TrunkLoadReport:
    """Load an upstream ``trunk.pth`` strictly into ``target``'s trunk and prove it.

    Raises ``CheckpointError`` (naming the file and listing missing, unexpected and
    wrong-shape keys) if the file does not fit, or if the trunk's checksum after loading
    differs from the file's.
    """
    file, state = read_official_trunk(path)
    trunk = _trunk_of(target)
    expected = trunk.state_dict()
    check_state_dict(file, state, expected, "does not fit the HPT trunk")
    with torch.no_grad():
        trunk.load_state_dict(state, strict=True)
    file_sha = trunk_sha256(state)
    loaded_sha = trunk_sha256(trunk.state_dict())
    if file_sha != loaded_sha:
        raise CheckpointError(
            file, f"trunk checksum after loading {loaded_sha} differs from the file's {file_sha}"
        )
    num_params = sum(t.numel() for t in state.values())
    logger.info("loaded HPT trunk %s: %d keys, %d params, sha256 %s",
                file, len(state), num_params, file_sha)  # fmt: skip
    return TrunkLoadReport(file, len(state), num_params, file_sha)


def _read_yaml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise CheckpointError(file, "file not found")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(file, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(file, "expected a YAML mapping")
    return data


def _domains_in(state: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted({key.split(".")[1] for key in state if key.startswith("heads.")})


def _belongs_to_other_domain(key: str, domain: str, domains: list[str]) -> bool:
    prefixes = tuple(
        prefix
        for d in domains
        if d != domain
        for prefix in (f"heads.{d}.", f"normalizer.{d}.", f"stems.{d}_image.", f"stems.{d}_state.")
    )
    return bool(prefixes) and key.startswith(prefixes)


def load_official_model(
    path: str | Path, domain: str | None = None, *, num_views: int = 2
) -> HPTPolicy:
    """An ``HPTPolicy`` from an upstream run folder (``config.yaml`` + ``model.pth``).

    Every ``model.pth`` key of the chosen domain must map onto the policy (same name,
    same shape); ``modalities_tokens.*`` are dropped (unused by upstream's forward) and
    other domains' stems, heads and normalisers are skipped. The domain is inferred when
    the file holds one. A ``trunk.pth`` next to it must hold the same trunk weights.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(folder, "not a folder (expected config.yaml + model.pth)")
    model_file = folder / "model.pth"
    if not model_file.is_file() and (folder / "trunk.pth").is_file():
        raise CheckpointError(
            folder,
            "no model.pth: this is a trunk-only checkpoint; build an HPTPolicy for your "
            "robot and call load_official_trunk(folder, policy)",
        )
    config_file = folder / "config.yaml"
    raw_config = _read_yaml(config_file)
    state = read_state_dict(model_file)

    domains = _domains_in(state)
    if not domains:
        raise CheckpointError(model_file, "no heads.<domain>.* keys: not an HPT policy state dict")
    if domain is None:
        if len(domains) > 1:
            raise CheckpointError(model_file, f"holds several domains {domains}; pass domain=")
        domain = domains[0]
    elif domain not in domains:
        raise CheckpointError(model_file, f"domain {domain!r} not in file (has {domains})")
    try:
        config = HPTConfig.from_official_config(raw_config, domain=domain, num_views=num_views)
    except ConfigError as exc:
        raise CheckpointError(config_file, str(exc)) from exc

    with torch.device("meta"):  # only names and shapes are needed to check the file
        expected = HPTPolicy(config).state_dict()
    relevant = {
        key: value
        for key, value in state.items()
        if not key.startswith(IGNORED_OFFICIAL_PREFIXES)
        and not _belongs_to_other_domain(key, domain, domains)
    }
    check_state_dict(
        model_file, relevant, expected, f"does not fit the HPT policy of {config_file.name}"
    )
    policy = HPTPolicy(config)
    with torch.no_grad():
        policy.load_state_dict(relevant, strict=True)
    policy.eval()

    trunk_file = folder / "trunk.pth"
    if trunk_file.is_file():
        _, trunk_state = read_official_trunk(trunk_file)
        check_state_dict(
            trunk_file, trunk_state, policy.trunk.state_dict(), "does not fit the HPT trunk"
        )
        if trunk_sha256(trunk_state) != policy.trunk_checksum():
            raise CheckpointError(trunk_file, "trunk weights differ from those in model.pth")
    policy.normalizer_source = f"upstream checkpoint {model_file}"
    logger.info("loaded upstream HPT policy %s (domain %s, trunk sha256 %s)",
                folder, domain, policy.trunk_checksum())  # fmt: skip
    return policy


def resolve_pretrained(
    source: str | Path,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local folder for ``source``: an existing path, or a hub id like ``liruiw/hpt-base``.

    Hub ids (optionally ``hf://``-prefixed) are fetched with
    ``huggingface_hub.snapshot_download`` (imported only then). Raises
    ``PretrainedNotFoundError`` with a hint when offline, not installed or not found.
    """
    path = Path(source).expanduser()
    if path.exists():
        return path
    match = _HUB_ID.match(str(source))
    if match is None or str(source).startswith((".", "/", "~")):
        raise PretrainedNotFoundError(
            f"{source}: no such file or folder (and not a hub id owner/name)"
        )
    repo_id = match.group(1)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise PretrainedNotFoundError(
            f"{source}: not a local path, and huggingface_hub is not installed to download "
            f"it (pip install huggingface_hub, or download {repo_id} and pass its folder)"
        ) from None
    try:
        folder = snapshot_download(
            repo_id=repo_id,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=local_files_only,
        )
    except Exception as exc:  # offline, unknown repo, auth, ...
        raise PretrainedNotFoundError(
            f"{source}: cannot fetch hub repo {repo_id} ({type(exc).__name__}: {exc}). "
            "Offline? Download it elsewhere (huggingface-cli download "
            f"{repo_id} --local-dir DIR) and pass DIR."
        ) from exc
    return Path(folder)


# -- own format --------------------------------------------------------------------------------


def _yaml_safe(value: Any, what: str) -> Any:
    try:
        yaml.safe_dump(value)
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} must hold only YAML-safe builtins: {exc}") from exc
    return value


def save_checkpoint(
    folder: str | Path,
    policy: HPTPolicy,
    extra: Mapping[str, Any] | None = None,
    *,
    spec: RobotSpec | None = None,
) -> Path:
    """Write ``policy`` to ``folder`` as ``model.safetensors`` + ``hpt.yaml``; returns the folder.

    ``spec``: the robot spec the model was made for; its hash, joints, views and action
    layout are recorded (``robot_spec``) so that loading under another spec can be
    checked. Without it, the policy's own ``spec_fields`` are recorded (set when it was
    built for a spec or loaded from a checkpoint that had them).
    ``extra`` is stored verbatim in ``hpt.yaml`` and must contain only YAML-safe
    builtins. The encoder, if any, is saved with the policy.
    """
    from safetensors.torch import save_file

    from hpt_ros.spec.compat import model_fields

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = policy.encoder
    meta: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "config": policy.config.to_dict(),
        "normalizer": {
            "action": policy.action_normalizer.stats_dict(),
            "state": policy.state_normalizer.stats_dict(),
            "source": policy.normalizer_source,
        },
        "robot_spec": model_fields(spec) if spec is not None else policy.spec_fields,
        "encoder": None
        if encoder is None
        else {
            "type": "resnet18",
            "image_size": encoder.image_size,
            "bn_folded": encoder.bn_folded,
            "weights_source": encoder.weights_source,
        },
        "trunk_sha256": policy.trunk_checksum(),
        "param_counts": policy.param_counts(),
        "extra": _yaml_safe(dict(extra or {}), "extra"),
    }
    # clone: safetensors refuses tensors that share storage
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in policy.state_dict().items()}
    if encoder is not None and encoder.stored_as_seed:
        # a seeded random encoder is its seed: store that and a checksum, not 45 MB of noise
        meta["encoder"].update(seed=encoder.seed, round_dtype=encoder.round_dtype, sha256=encoder.weights_sha256())
        tensors = {k: v for k, v in tensors.items() if not k.startswith("encoder.")}
    save_file(tensors, str(folder / CHECKPOINT_WEIGHTS), metadata={"format": "pt"})
    (folder / CHECKPOINT_CONFIG).write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


def load_checkpoint(folder: str | Path) -> tuple[HPTPolicy, dict[str, Any]]:
    """(policy in eval mode, metadata from ``hpt.yaml``) from a ``save_checkpoint`` folder.

    Keys and shapes must match the config exactly, and the loaded trunk must have the
    recorded checksum; otherwise ``CheckpointError`` names the file and the keys.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_file, weights_file = folder / CHECKPOINT_CONFIG, folder / CHECKPOINT_WEIGHTS
    meta = _read_yaml(meta_file)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            meta_file, f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}"
        )
    try:
        config = HPTConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(meta_file, f"invalid config: {exc}") from exc
    if not weights_file.is_file():
        raise CheckpointError(weights_file, "file not found")
    try:
        state = load_file(str(weights_file))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(weights_file, f"cannot read safetensors: {exc}") from exc

    encoder_info = meta.get("encoder")
    encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    policy_state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    with torch.device("meta"):
        expected = HPTPolicy(config).state_dict()
    check_state_dict(weights_file, policy_state, expected, "does not fit the config in hpt.yaml")

    encoder: ImageEncoder | None = None
    if encoder_info and encoder_info.get("seed") is not None and not encoder_state:
        encoder = _seeded_encoder(meta_file, encoder_info)
        logger.warning("checkpoint %s: vision encoder has RANDOM weights (seed %s)", folder, encoder_info["seed"])
    elif encoder_info:
        try:
            encoder = ImageEncoder(
                {k.removeprefix("backbone."): v for k, v in encoder_state.items()},
                image_size=int(encoder_info.get("image_size", 224)),
                bn_folded=bool(encoder_info.get("bn_folded", False)),
            )
        except RuntimeError as exc:  # load_state_dict's strict report
            raise CheckpointError(weights_file, f"encoder weights do not fit: {exc}") from exc
        encoder.weights_source = str(encoder_info.get("weights_source", "checkpoint"))
        if encoder.random_weights:
            logger.warning("checkpoint %s: vision encoder has RANDOM weights "
                           "(saved from a random_init encoder)", folder)  # fmt: skip
    elif encoder_state:
        raise CheckpointError(weights_file, "holds encoder.* tensors but hpt.yaml has no encoder",
                              unexpected=[f"encoder.{k}" for k in encoder_state])  # fmt: skip

    policy = HPTPolicy(config, encoder=encoder)
    with torch.no_grad():
        _load_module(policy, policy_state, encoder)
    policy.eval()
    policy.spec_fields = meta.get("robot_spec") if isinstance(meta.get("robot_spec"), dict) else None
    policy.normalizer_source = str((meta.get("normalizer") or {}).get("source", "not recorded"))
    recorded = meta.get("trunk_sha256")
    if recorded is not None and recorded != policy.trunk_checksum():
        raise CheckpointError(weights_file, "trunk checksum differs from the one in hpt.yaml")
    return policy, meta


def _seeded_encoder(meta_file: Path, info: Mapping[str, Any]) -> ImageEncoder:
    """Rebuild a seeded random encoder and check it is the one that was saved."""
    encoder = ImageEncoder(random_init=True, seed=int(info["seed"]), image_size=int(info.get("image_size", 224)))
    if info.get("round_dtype"):
        encoder.round_weights(str(info["round_dtype"]))
    if encoder.weights_sha256() != info.get("sha256"):
        raise CheckpointError(
            meta_file,
            f"the vision encoder is stored as seed {info['seed']}, but this torch "
            f"({torch.__version__}) generates other weights from it (sha256 differs); "
            "re-create the checkpoint with this torch version",
        )
    return encoder


def _load_module(
    policy: HPTPolicy, state: Mapping[str, torch.Tensor], encoder: nn.Module | None
) -> None:
    # The encoder is already loaded; load everything else strictly.
    missing, unexpected = policy.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (encoder is not None and k.startswith("encoder."))]
    if missing or unexpected:  # check_state_dict already ruled this out; keep it loud anyway
        raise RuntimeError(f"internal key mismatch: missing {missing}, unexpected {unexpected}")
