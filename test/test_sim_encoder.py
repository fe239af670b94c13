"""The vision encoder trained on the simulator's frames: labels, training, a strictly loadable file."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module

require_module("mujoco")

from hpt_ros.sim import READY_POSE, episode_layout, forward_kinematics  # noqa: E402
from hpt_ros.sim.kinematics import TCP_INDEX  # noqa: E402
from hpt_ros.train.sim_encoder import LABELS, render_labelled_frames, train_sim_encoder  # noqa: E402


@pytest.fixture(scope="module")
def frames():
    return render_labelled_frames(2, seed=2, duration_s=1.0, every=3, width=64, height=48, progress=False)


def test_frames_carry_both_views_and_labels_that_match_the_scene(frames) -> None:
    ticks = 15  # 1 s at the spec's 15 Hz, every third tick kept, two scenes
    assert frames.images.shape == (2 * ticks // 3, 2, 48, 64, 3)
    assert frames.images.dtype == np.uint8 and frames.labels.shape == (len(frames), len(LABELS))
    assert frames.images[0, 0].std() > 1 and frames.images[0, 1].std() > 1  # rendered, not blank
    label = dict(zip(LABELS, frames.labels[0]))
    # the first frame: the arm at its ready pose, the treat where the scene put it
    hand = forward_kinematics(READY_POSE)[TCP_INDEX]
    np.testing.assert_allclose([label["hand_x"], label["hand_y"], label["hand_z"]], hand[:3, 3], atol=2e-3)
    treat_xy = episode_layout(None, 2, 0).treat_xy
    np.testing.assert_allclose([label["treat_x"], label["treat_y"]], treat_xy, atol=2e-3)
    in_hand = hand[:3, :3].T @ (np.array([label["treat_x"], label["treat_y"], label["treat_z"]]) - hand[:3, 3])
    np.testing.assert_allclose([label["treat_in_hand_x"], label["treat_in_hand_y"], label["treat_in_hand_z"]],
                               in_hand, atol=3e-3)
    # the second scene has its treat elsewhere
    second = dict(zip(LABELS, frames.labels[ticks // 3]))
    assert abs(second["treat_x"] - label["treat_x"]) + abs(second["treat_y"] - label["treat_y"]) > 1e-3


def test_training_writes_a_resnet18_that_loads_strictly_and_learns(frames, tmp_path) -> None:
    import torch

    from hpt_ros.model.resnet import ImageEncoder, load_resnet18_weights, seeded_resnet18

    out = tmp_path / "enc.safetensors"
    metrics = train_sim_encoder(frames, out, steps=12, batch_size=4, lr=5e-4, threads=2, progress=False)
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    assert set(metrics["val_rms"]) == set(LABELS) and all(np.isfinite(list(metrics["val_rms"].values())))
    state = load_resnet18_weights(out)  # torchvision names, checked strictly
    seeded = seeded_resnet18(0).state_dict()
    # the first layers stay as seeded, the deep ones were trained
    assert torch.equal(state["conv1.weight"], seeded["conv1.weight"])
    assert torch.equal(state["layer1.0.conv1.weight"], seeded["layer1.0.conv1.weight"])
    assert not torch.equal(state["layer4.1.conv2.weight"], seeded["layer4.1.conv2.weight"])
    encoder = ImageEncoder(out)
    assert encoder.weights_source == "enc.safetensors" and not encoder.random_weights
    with torch.no_grad():
        tokens = encoder(torch.from_numpy(frames.images[:2, 0]))
    assert tokens.shape == (2, 49, 512) and torch.isfinite(tokens).all()


def test_the_default_model_recipe_trains_over_a_sim_encoder_and_ships_it(tmp_path) -> None:
    import torch
    import yaml

    from hpt_ros.model import load_checkpoint
    from hpt_ros.model.resnet import load_resnet18_weights
    from hpt_ros.train.default_model import make_default_model

    out = make_default_model(tmp_path / "model", episodes=2, duration_s=1.5, steps=3, batch_size=4, width=64,
                             height=48, work=str(tmp_path / "work"), threads=2, sim_encoder_episodes=1,
                             sim_encoder_steps=2)
    meta = yaml.safe_load((out / "hpt.yaml").read_text())
    assert meta["encoder"]["weights_source"] == "sim_resnet18.safetensors" and meta["encoder"].get("seed") is None
    made_by = yaml.safe_load((out / "summary.yaml").read_text())["made_by"]
    assert made_by["sim_encoder"]["episodes"] == 1 and set(made_by["sim_encoder"]["val_rms"]) == set(LABELS)
    policy, _ = load_checkpoint(out)
    trained = load_resnet18_weights(tmp_path / "work" / "sim_encoder" / "sim_resnet18.safetensors")
    shipped = policy.encoder.backbone.state_dict()
    # the checkpoint carries the sim-trained weights (rounded through float16), not the seeded ones
    for key in ("layer4.1.conv2.weight", "conv1.weight"):
        assert torch.equal(shipped[key], trained[key].half().float())

    # asked for more episodes, the recipe records only the missing ones and numbers them on
    # (scene (seed, index), as a fresh run would); asked for fewer, it refuses
    demos = tmp_path / "work" / "demos"
    before = {p.name: p.stat().st_mtime_ns for p in demos.glob("episode_*/*.mcap")}
    make_default_model(tmp_path / "model", episodes=3, duration_s=1.5, steps=1, batch_size=4, width=64, height=48,
                       work=str(tmp_path / "work"), threads=2, sim_encoder_episodes=1, sim_encoder_steps=2,
                       rough_line_up_episodes=1, approach_error=0.03)
    assert sorted(p.name for p in demos.iterdir()) == ["episode_0000", "episode_0001", "episode_0002"]
    # the rough line-ups: their own folder and scenes (seed + 4), recorded and named in the summary
    rough = yaml.safe_load((tmp_path / "work" / "rough_line_ups" / "episode_0000" / "episode.yaml").read_text())
    assert "scene seed 4" in rough["notes"]
    made_by = yaml.safe_load((tmp_path / "model" / "summary.yaml").read_text())["made_by"]
    assert made_by["rough_line_up_episodes"] == 1 and made_by["approach_error_m"] == 0.03
    assert {p.name: p.stat().st_mtime_ns for p in demos.glob("episode_*/*.mcap") if p.name in before} == before
    assert yaml.safe_load((demos / "episode_0002" / "episode.yaml").read_text())["episode_index"] == 2
    with pytest.raises(ValueError, match="holds 3 episodes, more than the 2"):
        make_default_model(tmp_path / "model2", episodes=2, work=str(tmp_path / "work"))
