"""Ensembles: `train.members` trains several seeds into one model directory, conversion averages them.

Trained on real Flite features (the ``real_features`` fixture) with a short
schedule; the packaged ``parallel`` model is the real ensemble (8 models).
"""

import shutil

import numpy as np
import pytest

from vawgan.cli import main
from vawgan.config import load_config
from vawgan.convert import Converter
from vawgan.errors import VawganError
from vawgan.evaluate.metrics import score_pair
from vawgan.features.store import load_features
from vawgan.model_dir import load_model, member_dir, member_dirs
from vawgan.model_info import describe_model
from vawgan.stats import Statistics
from vawgan.weights import NumpyModel, export_numpy_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(root, model_dir, *extra):
    return main(["train", "--features", str(root / "features"), "--manifest", str(root / "train.tsv"),
                 "--stats", str(root / "stats.npz"), "--model-dir", str(model_dir), "--device", "cpu",
                 "--no-progress", "--set", "train.batch_size=64", "--set", "train.num_threads=1",
                 "--set", "train.tensorboard=false", "--set", "train.vae_epochs=3", "--set", "train.critic_epochs=1",
                 "--set", "train.adversarial_epochs=1", *extra])


@pytest.fixture(scope="module")
def ensemble(real_features, tmp_path_factory):
    """A two-model ensemble (seeds 5 and 6) trained by `vawgan train --set train.members=2`."""
    model_dir = tmp_path_factory.mktemp("ensemble") / "model"
    assert _train(real_features, model_dir, "--set", "train.members=2", "--set", "train.seed=5") == 0
    return model_dir


def _features(real_features):
    return load_features(next((real_features / "features" / "awb").glob("*.npz")))


@pytest.mark.slow
def test_members_are_trained_with_the_next_seeds_in_their_own_model_directories(ensemble, real_features, capsys):
    assert member_dirs(ensemble) == [member_dir(ensemble, 6)] == [ensemble / "members" / "seed-6"]
    member = member_dir(ensemble, 6)
    main_config, member_config = load_config(ensemble / "config.yaml"), load_config(member / "config.yaml")
    assert (main_config.train.seed, main_config.train.members) == (5, 2)
    assert (member_config.train.seed, member_config.train.members) == (6, 1)
    for directory in (ensemble, member):
        assert {"vae.pt", "vawgan.pt", "checkpoint.pt", "metrics.csv"} <= {p.name for p in directory.iterdir()}
    first, second = (load_model(d).decoder.state_dict() for d in (ensemble, member))
    assert not any(np.array_equal(first[key].numpy(), second[key].numpy()) for key in first)  # other seeds

    # Everything finished: running again trains nothing, in the directory or in its member.
    logs = [(d / "metrics.csv").read_text() for d in (ensemble, member)]
    capsys.readouterr()
    assert _train(real_features, ensemble, "--set", "train.members=2", "--set", "train.seed=5", "--resume") == 0
    assert [(d / "metrics.csv").read_text() for d in (ensemble, member)] == logs


@pytest.mark.slow
def test_conversion_averages_the_members_outputs(ensemble, real_features):
    feats = _features(real_features)
    for which in ("vae", "vawgan"):
        both = Converter(ensemble, which=which)  # training wrote each model's NumPy copy
        assert len(both.networks) == 2 and all(isinstance(n, NumpyModel) for n in both.networks)
        alone = [Converter(ensemble, which=which, members=1), Converter(member_dir(ensemble, 6), which=which)]
        converted = both.convert_features(feats, "awb", "slt").mcep
        separately = [c.convert_features(feats, "awb", "slt").mcep for c in alone]
        np.testing.assert_allclose(converted, np.mean(separately, axis=0), atol=1e-6)
        np.testing.assert_array_equal(converted[:, 0], feats.mcep[:, 0])  # c0 is the source's, as for one model
        assert not np.allclose(separately[0], separately[1], atol=1e-3)
    with pytest.raises(VawganError, match="--members 3: .* holds 2 model\\(s\\) with vawgan weights"):
        Converter(ensemble, members=3)
    with pytest.raises(VawganError, match="--members 0: must be at least 1"):
        Converter(ensemble, members=0)


@pytest.mark.slow
def test_a_member_kept_as_its_numpy_copy_alone_converts_on_numpy_and_torch(ensemble, real_features, tmp_path):
    """How the packaged ensemble ships its members: vawgan.npz without vawgan.pt (half the size)."""
    model = tmp_path / "model"
    shutil.copytree(ensemble, model)
    reference = Converter(model).convert_features(_features(real_features), "awb", "rms").mcep
    member = member_dir(model, 6)
    export_numpy_weights(member, "vawgan", inference_only=True)
    assert not (member / "vawgan.pt").exists()
    export_numpy_weights(member, "vae")  # a plain copy: without vae.pt it is not used
    (member / "vae.pt").unlink()
    numpy_only = Converter(model)
    assert len(numpy_only.networks) == 2 and isinstance(numpy_only.networks[1], NumpyModel)
    on_torch = Converter(model, device="auto")  # PyTorch modules, the member's read from its NumPy copy
    assert not isinstance(on_torch.networks[1], NumpyModel) and on_torch.networks[1].step > 0
    for converter in (numpy_only, on_torch):
        np.testing.assert_allclose(converter.convert_features(_features(real_features), "awb", "rms").mcep,
                                   reference, atol=1e-4)
    assert "vawgan.pt: step" in describe_model(member) and "(its NumPy copy only)" in describe_model(member)
    summary = describe_model(model)
    assert "ensemble: this model and 1 member(s)" in summary and "seed-6: seed 6, weights vawgan" in summary
    # Without the member's VAE weights the VAE is the directory's own model alone.
    assert len(Converter(model, which="vae").networks) == 1
    assert "seed-6: seed 6, weights vawgan\n" in summary + "\n"
    assert numpy_only.weights_time == max((model / "vawgan.pt").stat().st_mtime,
                                          (member / "vawgan.npz").stat().st_mtime)


@pytest.mark.slow
def test_a_member_of_other_data_is_refused_with_what_differs(ensemble, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ensemble, model)
    member = member_dir(model, 6)
    stats = Statistics.load(member / "stats.npz")
    stats.speaker_mcep_mean["rms"] = stats.speaker_mcep_mean["rms"] + 0.5
    stats.save(member / "stats.npz")
    with pytest.raises(VawganError, match="seed-6: this ensemble member was trained with other statistics for "
                                          "speaker 'rms' than .*; retrain it"):
        Converter(model)
    assert len(Converter(model, members=1).networks) == 1  # the directory's own model still converts
    (member / "speakers.txt").write_text("awb\nslt\n")
    with pytest.raises(VawganError, match="trained with speakers \\['awb', 'slt'\\], not \\['awb', 'rms', 'slt'\\]"):
        Converter(model)
    (member / "config.yaml").unlink()
    with pytest.raises(VawganError, match="an ensemble member must be a model directory"):
        Converter(model)


@pytest.mark.slow
def test_cli_converts_with_an_ensemble_and_says_how_many_models(ensemble, shared_corpus, tmp_path, capsys):
    source = shared_corpus / "awb" / "fb010.wav"
    assert main(["convert", str(source), "--model", str(ensemble), "--source", "awb", "--target", "slt",
                 "-o", str(tmp_path / "both.wav")]) == 0
    assert "(vawgan, 2 models averaged, awb -> slt)" in capsys.readouterr().out
    assert main(["convert", str(source), "--model", str(ensemble), "--members", "1", "--source", "awb",
                 "--target", "slt", "-o", str(tmp_path / "one.wav")]) == 0
    assert "(vawgan, awb -> slt)" in capsys.readouterr().out
    assert main(["convert", str(source), "--model", str(ensemble), "--members", "4", "--target", "slt",
                 "-o", str(tmp_path / "four.wav")]) == 2
    assert "--members 4" in capsys.readouterr().err and not (tmp_path / "four.wav").exists()


def test_bad_member_counts_are_refused_before_training(real_features, tmp_path, capsys):
    assert _train(real_features, tmp_path / "model", "--set", "train.members=0") == 2
    assert "--set train.members=0 must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_the_packaged_parallel_ensemble_converts_closer_than_its_first_model(shared_corpus):
    """Eight models averaged against the first alone, feature level, on held-out sentences of two pairs
    (the whole eval split: 3.22 against 3.39 dB)."""
    ensemble, single = Converter("parallel"), Converter("parallel", members=1)
    assert len(ensemble.networks) == 8 and len(single.networks) == 1
    assert len(Converter("parallel", which="vae").networks) == 1  # the members ship their VAW-GAN weights only
    mcd = {"ensemble": [], "single": []}
    for source, target in (("rms", "slt"), ("slt", "awb")):
        for utt in ("fb010", "fb012"):
            feats = ensemble.analyze_file(shared_corpus / source / f"{utt}.wav", source=source)
            natural = ensemble.analyze_file(shared_corpus / target / f"{utt}.wav", source=target)
            for name, converter in (("ensemble", ensemble), ("single", single)):
                out = converter.convert_features(feats, source, target)
                mcd[name].append(score_pair(natural.mcep, natural.f0, natural.speech, out.mcep, out.f0,
                                            feats.speech).mcd)
    print("feature-level MCD per conversion:", mcd)
    assert np.mean(mcd["ensemble"]) < np.mean(mcd["single"]) - 0.08
