"""Networks (shapes, speaker conditioning) and the model directory loader."""

import numpy as np
import pytest
import torch

from vawgan.config import Config
from vawgan.errors import VawganError
from vawgan.model_dir import load_model, prepare_model_dir
from vawgan.models import Critic, Decoder, build_models
from vawgan.stats import Statistics
from vawgan.weights import save_weights


def _stats(speakers, dim=39):
    rng = np.random.default_rng(0)
    stats = Statistics(mcep_mean=np.zeros(dim), mcep_std=np.ones(dim))
    for spk in speakers:
        stats.speaker_mcep_mean[spk] = rng.normal(size=dim)
        stats.speaker_mcep_std[spk] = rng.uniform(0.5, 2.0, size=dim)
        stats.lf0_mean[spk], stats.lf0_std[spk], stats.frames[spk] = 5.0, 0.2, 100
    return stats


def test_shapes_follow_the_reference_architecture():
    config = Config()
    config.model.decoder_conditioning, config.model.decoder_variance = "input", "unit"  # as in the reference
    enc, dec, critic = build_models(config.model, num_speakers=3)
    x = torch.randn(7, 39)
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (7, 64)
    assert dec(mu, torch.tensor([0, 1, 2, 0, 1, 2, 0])).shape == (7, 39)
    assert critic(x).shape == (7,)
    linear_sizes = lambda m: [(l.in_features, l.out_features) for l in m.modules() if isinstance(l, torch.nn.Linear)]
    assert linear_sizes(enc) == [(39, 256), (256, 128), (128, 128)]  # μ and log σ² side by side
    assert linear_sizes(dec) == [(64 + 16, 128), (128, 256), (256, 39)]
    assert linear_sizes(critic) == [(39, 64), (64, 32), (32, 1)]
    assert dec.log_variance is None


def test_default_decoder_takes_the_speaker_code_at_every_layer_and_learns_its_variance():
    _, dec, _ = build_models(Config().model, num_speakers=3)
    assert [(l.in_features, l.out_features) for l in dec.net if isinstance(l, torch.nn.Linear)] == [
        (64 + 16, 128), (128 + 16, 256), (256 + 16, 39)]
    assert dec.log_variance.shape == (39,) and dec.log_variance.requires_grad
    z = torch.randn(5, 64)
    assert dec(z, torch.zeros(5, dtype=torch.long)).shape == (5, 39)
    # the code acts at depth: with the first layer's code columns zeroed the output still depends on the speaker
    with torch.no_grad():
        dec.net[0].weight[:, 64:] = 0.0
    assert not torch.allclose(dec(z, torch.zeros(5, dtype=torch.long)), dec(z, torch.ones(5, dtype=torch.long)))
    with pytest.raises(VawganError, match="decoder_conditioning='everywhere' is not one of"):
        config = Config()
        config.model.decoder_conditioning = "everywhere"
        build_models(config.model, num_speakers=3)


def test_decoder_output_depends_on_the_speaker_and_single_speaker_is_plain_vae():
    torch.manual_seed(0)
    dec = Decoder(latent_dim=8, num_speakers=2, speaker_dim=4, hidden=[16], output_dim=5)
    z = torch.randn(4, 8)
    a = dec(z, torch.zeros(4, dtype=torch.long))
    b = dec(z, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a, b)
    # with one speaker there is no embedding: the ids are ignored
    plain = Decoder(latent_dim=8, num_speakers=1, hidden=[16], output_dim=5)
    assert plain.embedding is None
    assert torch.equal(plain(z, torch.zeros(4, dtype=torch.long)), plain(z, torch.full((4,), 7)))


def test_conditional_critic_uses_the_speaker_and_demands_it():
    torch.manual_seed(0)
    critic = Critic(input_dim=5, hidden=[8], num_speakers=3, speaker_dim=4)
    x = torch.randn(6, 5)
    assert not torch.allclose(critic(x, torch.zeros(6, dtype=torch.long)), critic(x, torch.full((6,), 2)))
    with pytest.raises(ValueError, match="speaker_ids"):
        critic(x)


def test_load_model_round_trip(tmp_path):
    config = Config()
    speakers = ["awb", "rms", "slt"]
    stats = _stats(speakers)
    prepare_model_dir(tmp_path, config, stats, speakers)
    torch.manual_seed(1)
    enc, dec, critic = build_models(config.model, len(speakers))
    save_weights(tmp_path / "vawgan.pt", enc, dec, speakers, step=42, critic=critic)
    model = load_model(tmp_path, which="vawgan", device="cpu")
    assert model.speakers == speakers and model.step == 42 and model.device == torch.device("cpu")
    assert model.speaker_index("rms") == 1
    np.testing.assert_allclose(model.stats.speaker_mcep_std["slt"], stats.speaker_mcep_std["slt"])
    x = torch.randn(5, 39)
    with torch.no_grad():
        assert torch.equal(model.encoder(x)[0], enc(x)[0])
        ids = torch.full((5,), 2)
        assert torch.equal(model.decoder(x[:, :1].repeat(1, 64), ids), dec(x[:, :1].repeat(1, 64), ids))
    with pytest.raises(VawganError, match="knows: awb, rms, slt"):
        model.speaker_index("bdl")
    with pytest.raises(VawganError, match="vae.pt: not found"):
        load_model(tmp_path, which="vae")
    with pytest.raises(VawganError, match="model directory not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(VawganError, match="not a vawgan model directory"):
        load_model(tmp_path / "not_a_model")


def test_model_directory_older_than_the_decoder_options_loads_as_trained(tmp_path):
    """A config.yaml without decoder_variance / decoder_conditioning was trained with unit variance and
    the speaker code at the input only; it must load that network, not today's defaults."""
    import yaml

    config = Config()
    config.model.decoder_variance, config.model.decoder_conditioning = "unit", "input"
    speakers = ["awb", "rms", "slt"]
    prepare_model_dir(tmp_path, config, _stats(speakers), speakers)
    enc, dec, _ = build_models(config.model, len(speakers))
    save_weights(tmp_path / "vawgan.pt", enc, dec, speakers, step=1)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del written["model"]["decoder_variance"], written["model"]["decoder_conditioning"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(written))
    model = load_model(tmp_path, which="vawgan")
    assert model.config.model.decoder_conditioning == "input" and model.decoder.log_variance is None
    z, ids = torch.randn(4, 64), torch.full((4,), 1)
    with torch.no_grad():
        assert torch.equal(model.decoder(z, ids), dec(z, ids))

    # training on in that directory with the network it holds is accepted, with today's defaults refused
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    prepare_model_dir(tmp_path, config, _stats(speakers), speakers)
    with pytest.raises(VawganError, match="other network sizes"):
        prepare_model_dir(tmp_path, Config(), _stats(speakers), speakers)
