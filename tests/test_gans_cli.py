"""End-to-end runs of `vawgan gan2d|mnist|began` at toy sizes: train, resume, sample, evaluate, plot."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from vawgan.cli import main


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Keep the digit classifier's cache and the MNIST search inside the test's folder."""
    monkeypatch.setenv("VAWGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VAWGAN_MNIST_DIR", str(tmp_path / "no_mnist"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow
def test_gan2d_train_resume_sample_evaluate_plot(tmp_path, capsys, monkeypatch):
    # As outside pytest: no root handlers, so the command's logging.basicConfig installs its own.
    monkeypatch.setattr(logging.root, "handlers", [])
    run = tmp_path / "coulomb"
    small = ["--set", "data.samples_per_mode=60", "--set", "train.batch_size=128", "--set", "train.epochs=2",
             "--set", "train.eval_samples=2000", "--set", "train.num_threads=1", "--device", "cpu"]
    assert main(["gan2d", "train", "--out", str(run), *small]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["epochs"] == 2 and report["steps"] == 2 * (25 * 60 // 128) and report["n_modes"] == 25
    assert 0 <= report["high_quality"] + report["near_miss"] <= 1
    for name in ["samples_gmm.png", "discriminator_field.png", "losses.png", "training.gif", "train.log",
                 "frames/epoch_0002.png"]:
        assert (run / name).is_file(), name
    assert "modes" in (run / "train.log").read_text()
    printed = capsys.readouterr()
    assert "epoch 2/2" in printed.out and "epoch 2/2" not in printed.err  # progress once, on stdout

    assert main(["gan2d", "train", "--out", str(run), *small]) == 2  # would overwrite a trained model
    assert "--resume" in capsys.readouterr().err
    assert main(["gan2d", "train", "--out", str(run), *small, "--resume", "--set", "train.epochs=3"]) == 0
    assert json.loads((run / "report.json").read_text())["epochs"] == 3
    assert main(["gan2d", "train", "--out", str(run), *small, "--resume", "--set", "train.epochs=3"]) == 0
    assert main(["gan2d", "train", "--out", str(run), *small, "--resume", "--set", "model.hidden=64"]) == 2
    assert "'model' settings differ" in capsys.readouterr().err

    assert main(["gan2d", "sample", "--run", str(run), "-n", "50", "--output", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    capsys.readouterr()
    assert main(["gan2d", "evaluate", "--run", str(run)]) == 0
    table = capsys.readouterr().out
    assert "/25" in table and "3-6 sigma" in table and "farther" in table
    assert main(["gan2d", "evaluate", "--run", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_mnist_and_began_on_fallback_digits(tmp_path, capsys):
    common = ["--set", "data.max_train_images=128", "--set", "train.batch_size=64", "--set", "train.epochs=1",
              "--set", "train.eval_samples=200", "--set", "train.classifier_steps=40",
              "--set", "train.num_threads=1", "--device", "cpu"]
    assert main(["mnist", "train", "--out", "mlp", "--set", "model.kind=mlp", *common]) == 0
    report = json.loads((tmp_path / "mlp" / "report.json").read_text())
    assert "scikit-learn" in report["data"] and "no_mnist" in report["data"]
    assert report["real_floor"]["classes_present"] >= 8 and report["generated"]["frechet"] > 0
    assert (tmp_path / "mlp" / "samples" / "epoch_0001.png").is_file() and (tmp_path / "mlp" / "losses.png").is_file()

    assert main(["began", "train", "--out", "began", "--set", "model.channels=4", "--set", "model.hidden=8",
                 "--set", "model.noise_dim=8", *common]) == 0
    began = tmp_path / "began"
    # One epoch of a toy BEGAN cannot draw ten digit classes: the detector must say so.
    assert "mode collapse suspected" in (began / "train.log").read_text()
    assert "mode collapse: YES" in (began / "report.txt").read_text()
    assert (began / "m_global.png").is_file()

    assert main(["began", "sample", "--run", "began", "-n", "20", "--output", "s.png"]) == 0
    assert (tmp_path / "s.png").is_file()
    capsys.readouterr()
    assert main(["mnist", "evaluate", "--run", "mlp"]) == 0
    assert "real vs real floor" in capsys.readouterr().out
    assert main(["mnist", "train", "--out", "x", "--set", "model.kind=gan"]) == 2
    assert main(["mnist", "train", "--out", "y", "--set", "data.mnist_dir=nowhere"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # no half-made run directories


def _generator_weights(run) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["generator"]


@pytest.mark.parametrize("verb, settings", [
    ("gan2d", ["--set", "data.samples_per_mode=40", "--set", "train.batch_size=100", "--set", "train.frames=false",
               "--set", "train.eval_samples=500"]),
    ("began", ["--set", "model.channels=4", "--set", "model.hidden=8", "--set", "model.noise_dim=8",
               "--set", "data.max_train_images=128", "--set", "train.batch_size=64", "--set", "train.eval_samples=200",
               "--set", "train.classifier_steps=40", "--set", "train.sample_epochs=[]"]),
])
@pytest.mark.slow
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, verb, settings):
    """Two epochs straight, and one epoch then --resume to two, give bit-identical generators.

    The BEGAN case runs the uninterrupted run first, so it trains the digit
    classifier while the other run loads it from the cache: both must draw the
    same random numbers anyway.
    """
    common = [*settings, "--set", "train.num_threads=1", "--device", "cpu"]
    assert main([verb, "train", "--out", "straight", *common, "--set", "train.epochs=2"]) == 0
    assert main([verb, "train", "--out", "resumed", *common, "--set", "train.epochs=1"]) == 0
    assert main([verb, "train", "--out", "resumed", *common, "--set", "train.epochs=2", "--resume"]) == 0
    straight, resumed = _generator_weights(tmp_path / "straight"), _generator_weights(tmp_path / "resumed")
    assert list(straight) == list(resumed)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
