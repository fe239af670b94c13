"""``hpt-ros train`` mechanics: the pretrained trunk really loaded (frozen: bit for bit; fine-tuned:
moved), exact resume, from-scratch and offline-hub messages, the optimizer state without pickle.

Episodes are recorded once per module by the real fake robot, scripted teleoperator and
teleop recorder on the replay transport (simulated time, ``hpt_ros.train.sim_demos``);
the pretrained trunk is the official fixture ``tiny_trunk.pt`` (embed 64, 2 blocks).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import require_shared

from hpt_ros.model import load_checkpoint, read_state_dict, trunk_sha256
from hpt_ros.spec import load_spec
from hpt_ros.train import TrainConfig, run_training
from hpt_ros.spec.compat import model_fields
from hpt_ros.train.schedule import WarmupCosine

SPEC = load_spec("franka_fr3")


@pytest.fixture(scope="module")
def tiny_trunk() -> Path:
    return require_shared("hpt_official", "tiny_trunk.pt")


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    from hpt_ros.train.sim_demos import record_sim_episodes

    root = tmp_path_factory.mktemp("demos")
    saved = record_sim_episodes(root, SPEC, 4, seed=3, duration_s=3.0)
    assert len(saved) == 4
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


def config(demos: Path, cache: Path, out: Path, **changes) -> TrainConfig:
    values = dict(robot="franka_fr3", episodes=[str(demos)], out=str(out), random_vision=True, steps=6,
                  batch_size=16, lr=1e-3, warmup_steps=2, val_every=3, save_every=3, val_fraction=0.25,
                  cache_dir=str(cache), export_onnx=False, progress=False, threads=1, device="cpu")
    values.update(changes)
    return TrainConfig(**values)


def test_frozen_trunk_equals_the_pretrained_file_bit_for_bit(demos, cache, tmp_path, tiny_trunk, caplog):
    caplog.set_level(logging.INFO, logger="hpt_ros")
    result = run_training(config(demos, cache, tmp_path / "run", trunk=str(tiny_trunk)))
    official = read_state_dict(tiny_trunk)
    policy, meta = load_checkpoint(result.model_dir)
    trained = policy.trunk.state_dict()
    assert sorted(trained) == sorted(official)
    for key, value in official.items():
        assert torch.equal(trained[key], value), key
    # the proof is stored and logged: tensors' sha256 and the file's bytes' sha256
    file_sha = hashlib.sha256(tiny_trunk.read_bytes()).hexdigest()
    assert meta["trunk_sha256"] == trunk_sha256(official) == result.trunk.sha256 == result.final_trunk_sha256
    stored = meta["extra"]["training"]["pretrained_trunk"]
    assert stored["sha256"] == trunk_sha256(official) and stored["file_sha256"] == file_sha
    assert meta["extra"]["training"]["trunk_frozen"] is True
    assert trunk_sha256(official) in caplog.text and file_sha in caplog.text
    summary = yaml.safe_load((result.out / "summary.yaml").read_text())
    assert summary["trunk"]["sha256"] == trunk_sha256(official) and summary["trunk_frozen"] is True
    # stems and head did train; the normaliser was fitted on the training split
    assert len(summary["dataset"]["episodes_val"]) == 1 and len(summary["dataset"]["episodes_train"]) == 3
    history = (result.out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 7  # header, step 0 (untrained validation), steps 1..6
    assert (result.out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert policy.action_normalizer.input_stats.max[0] > policy.action_normalizer.input_stats.min[0]


def test_the_loop_trains_on_smooth_l1_beta_0_05_and_reports_it(demos, cache, tmp_path, tiny_trunk, monkeypatch):
    """The loss of each step, as the loop computes and logs it, against the reference written out
    in test_train_loss (normalised with the limits the saved model carries)."""
    import csv

    from hpt_ros.train import trainer
    from test_train_loss import smooth_l1_reference

    real, seen = trainer.chunk_loss, []

    def recording(normalizer, pred, target, beta, reduction="mean"):
        out = real(normalizer, pred, target, beta, reduction)
        if reduction == "mean":  # the training step (evaluation sums)
            seen.append((pred.detach().double().numpy(), target.double().numpy(), beta, float(out.detach())))
        return out

    monkeypatch.setattr(trainer, "chunk_loss", recording)
    result = run_training(config(demos, cache, tmp_path / "run", trunk=str(tiny_trunk), steps=2, val_every=2,
                                 save_every=2))
    policy, _ = load_checkpoint(result.model_dir)
    stats = policy.action_normalizer.input_stats
    with (result.out / "history.csv").open() as handle:
        logged = [float(row["train_loss"]) for row in csv.DictReader(handle) if row["train_loss"]]
    assert len(seen) == 2 and len(logged) == 2
    for (pred, target, beta, value), reported in zip(seen, logged):
        assert beta == 0.05 and pred.shape == target.shape and pred.shape[0] == 16
        assert value == pytest.approx(smooth_l1_reference(pred, target, stats.min.numpy(), stats.max.numpy()),
                                      rel=1e-5)
        assert reported == pytest.approx(value, rel=1e-9)


def test_finetuned_trunk_moves_and_records_where_it_started(demos, cache, tmp_path, tiny_trunk):
    result = run_training(config(demos, cache, tmp_path / "run", trunk=str(tiny_trunk), freeze_trunk=False))
    official = read_state_dict(tiny_trunk)
    policy, meta = load_checkpoint(result.model_dir)
    trained = policy.trunk.state_dict()
    moved = [k for k in official if not torch.equal(trained[k], official[k])]
    assert len(moved) >= len(official) // 2
    assert result.final_trunk_sha256 != trunk_sha256(official)
    assert meta["trunk_sha256"] == result.final_trunk_sha256
    assert meta["extra"]["training"]["pretrained_trunk"]["sha256"] == trunk_sha256(official)
    assert meta["extra"]["training"]["trunk_frozen"] is False


def test_resume_continues_exactly(demos, cache, tmp_path, tiny_trunk):
    common = dict(trunk=str(tiny_trunk), freeze_trunk=False, t_max=6, save_every=4, val_every=4)
    straight = run_training(config(demos, cache, tmp_path / "straight", steps=8, **common))
    run_training(config(demos, cache, tmp_path / "split", steps=4, **common))
    with pytest.raises(Exception, match="--resume"):
        run_training(config(demos, cache, tmp_path / "split", steps=8, **common))
    resumed = run_training(config(demos, cache, tmp_path / "split", steps=8, **common), resume=True)
    assert resumed.steps == 8
    a, _ = load_checkpoint(straight.model_dir)
    b, _ = load_checkpoint(resumed.model_dir)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    rows_a = (straight.out / "history.csv").read_text().splitlines()
    rows_b = (resumed.out / "history.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows_a] == [r.split(",")[:3] for r in rows_b]


def test_from_scratch_says_so_loudly(demos, cache, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="hpt_ros")
    result = run_training(config(demos, cache, tmp_path / "run", size="tiny", steps=2))
    assert "NO PRETRAINED TRUNK" in caplog.text and "RANDOMLY INITIALISED" in caplog.text
    assert result.trunk is None and result.trunk_frozen is False
    _, meta = load_checkpoint(result.model_dir)
    assert meta["extra"]["training"]["trunk_from_scratch"] is True
    assert yaml.safe_load((result.out / "summary.yaml").read_text())["trunk"].startswith("from scratch")


def test_steps_zero_saves_the_untrained_model(demos, cache, tmp_path, tiny_trunk):
    result = run_training(config(demos, cache, tmp_path / "run", trunk=str(tiny_trunk), steps=0))
    policy, meta = load_checkpoint(result.model_dir)
    assert meta["trunk_sha256"] == trunk_sha256(read_state_dict(tiny_trunk))
    # the spec fields the model was made for, so that loading it under another spec can be refused
    assert meta["robot_spec"] == model_fields(SPEC) and policy.spec_fields == model_fields(SPEC)
    assert policy.normalizer_source.startswith("training data (min/max of ")
    assert result.metrics["val_untrained_loss"] == pytest.approx(result.metrics["val"]["loss"], rel=1e-6)


def test_cli_errors_are_clear(demos, cache, tmp_path, monkeypatch, capsys, tiny_trunk):
    from hpt_ros.train.cli import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = ["--robot", "franka_fr3", "--episodes", str(demos), "--random-vision", "--cache-dir", str(cache),
            "--no-progress", "--no-onnx", "--steps", "1"]
    assert cli(base + ["--out", str(tmp_path / "a"), "--trunk", "liruiw/hpt-base"]) == 1
    err = capsys.readouterr().err
    assert "liruiw/hpt-base" in err and ("Offline" in err or "huggingface_hub" in err)
    assert cli(base + ["--out", str(tmp_path / "b"), "--trunk", str(tmp_path / "no_such_dir")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert cli(base + ["--out", str(tmp_path / "c"), "--trunk", str(tiny_trunk), "--size", "small"]) == 1
    assert "--size small" in capsys.readouterr().err
    no_vision = [a for a in base if a != "--random-vision"]
    assert cli(no_vision + ["--out", str(tmp_path / "d"), "--trunk", str(tiny_trunk)]) == 1
    assert "--vision-weights" in capsys.readouterr().err
    assert cli(base + ["--out", str(tmp_path / "e"), "--episodes", str(tmp_path / "nothing")]) == 1


def test_dispatcher_runs_train(demos, cache, tmp_path, tiny_trunk, capsys):
    from hpt_ros.cli import main

    code = main(["train", "--robot", "franka_fr3", "--episodes", str(demos), "--out", str(tmp_path / "run"),
                 "--trunk", str(tiny_trunk), "--random-vision", "--steps", "2", "--batch-size", "8",
                 "--cache-dir", str(cache), "--no-progress", "--no-onnx"])
    assert code == 0
    out = capsys.readouterr().out
    assert "unchanged (frozen)" in out and str(tmp_path / "run" / "model") in out


def test_optimizer_state_round_trip(tmp_path):
    from hpt_ros.train.state import load_optimizer_state, save_optimizer_state

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7, weight_decay=1e-4)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).square().sum().backward()
        opt.step()
    named = dict(model.named_parameters())
    groups = save_optimizer_state(tmp_path, opt, named)["param_groups"]
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "optimizer.safetensors").is_file()
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    twin.load_state_dict(model.state_dict())
    opt2 = torch.optim.AdamW(twin.parameters(), lr=5.0)
    load_optimizer_state(tmp_path, opt2, dict(twin.named_parameters()), groups)
    assert opt2.param_groups[0]["lr"] == 1e-3 and opt2.param_groups[0]["eps"] == 1e-7
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (twin, opt2)):
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_warmup_then_cosine():
    s = WarmupCosine(1e-3, warmup_steps=10, t_max=90, init_lr=1e-10, eta_min=1e-6)
    assert s(0) == pytest.approx(1e-10)
    assert s(5) == pytest.approx(1e-10 + (1e-3 - 1e-10) / 2)
    assert s(10) == pytest.approx(1e-3)
    assert s(55) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)
    assert s(100) == pytest.approx(1e-6) and s(10_000) == pytest.approx(1e-6)
    assert all(s(i) >= s(i + 1) for i in range(10, 120))


def test_constant_action_policy_predicts_the_action(tiny_trunk):
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.train.baselines import constant_action_policy

    policy = build_policy_for_spec(SPEC, size="tiny")
    lo, hi, _ = SPEC.joint_limits_arrays(SPEC.action.joints)
    action = lo + (hi - lo) * np.linspace(0.1, 0.9, len(lo))
    constant = constant_action_policy(policy, action)
    feats, state = torch.randn(3, 2, 49, 512), torch.from_numpy(((lo + hi) / 2).astype(np.float32)).expand(3, -1)
    out = constant.forward_features(feats, state).detach().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(action, out.shape), atol=1e-5)
