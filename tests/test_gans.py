"""Secondary GAN models: potential, metrics, models, steps, data loaders, collapse detector."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vawgan.config import load_config
from vawgan.errors import VawganError
from vawgan.gans import data as gan_data
from vawgan.gans.config import Grid2DConfig
from vawgan.gans.data import grid_centres, load_digit_images, load_sklearn_digits, make_grid_data, read_idx
from vawgan.gans.losses import (bce_gan_step, began_k_update, began_step, convergence_measure, coulomb_step,
                                plummer_potential)
from vawgan.gans.metrics import (DigitScores, detect_collapse, frechet_distance, mode_coverage, score_digits,
                                 train_digit_classifier)
from vawgan.gans.models import (BeganDiscriminator, BeganGenerator, DCGANDiscriminator, DCGANGenerator,
                                MLPDiscriminator, MLPGenerator, grid_discriminator, grid_generator, sample_noise)

GRID = [-21.0, -10.5, 0.0, 10.5, 21.0]
STD = math.sqrt(0.1)


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one thread avoids OpenMP spin-waits on a shared, busy CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_plummer_potential_matches_hand_computation():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    fake = torch.tensor([[0.0, 3.0]])
    phi_real, phi_fake = plummer_potential(real, fake, epsilon=1.0, dim=3)
    # phi(r) = -1/sqrt(r^2 + 1); each point's own term is left out; fake charges count negatively.
    phi = lambda r2: -1.0 / math.sqrt(r2 + 1.0)  # noqa: E731
    expected_real = [phi(1) - phi(9), phi(1) - phi(10)]
    expected_fake = [phi(9) + phi(10)]
    np.testing.assert_allclose(phi_real.numpy(), expected_real, rtol=1e-6)
    np.testing.assert_allclose(phi_fake.numpy(), expected_fake, rtol=1e-6)
    # Self-exclusion: a lone point feels nothing, however small epsilon is.
    alone, _ = plummer_potential(torch.zeros(1, 2), torch.zeros(0, 2), epsilon=1e-3)
    assert alone.item() == 0.0
    # Sign: a fake point next to a real one raises the real point's potential.
    assert plummer_potential(real, torch.tensor([[0.0, 0.5]]), 1.0)[0][0] > phi_real[0]
    # d = 4: phi(r) = -1/(r^2 + eps^2)
    phi_real4, _ = plummer_potential(real, fake, epsilon=2.0, dim=4)
    assert phi_real4[0].item() == pytest.approx(-1 / 5 + 1 / 13, rel=1e-6)


def test_mode_coverage_perfect_collapsed_and_off_grid():
    centres = grid_centres(GRID)
    perfect = make_grid_data(GRID, 0.1, 1000, seed=3)
    c = mode_coverage(perfect, centres, STD)
    # Within 3 sigma of a 2-D Gaussian's centre: 1 - exp(-4.5) = 98.9 % of its samples.
    assert (c.modes, c.n_modes) == (25, 25) and c.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert c.near_miss == pytest.approx(math.exp(-4.5) - math.exp(-18), abs=0.004)  # between 3 and 6 sigma
    # points half-way between neighbouring centres (the bridges of a continuous generator): neither kind
    bridges = (centres[:-1] + centres[1:]) / 2
    c = mode_coverage(np.repeat(bridges[[0, 1, 2, 3]], 100, axis=0), centres, STD)
    assert (c.modes, c.high_quality, c.near_miss, c.far_out) == (0, 0.0, 0.0, 1.0)
    # a mode that is too wide: a ring at 4 sigma around one centre is all near miss
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    ring = centres[12] + 4 * STD * np.stack([np.cos(angles), np.sin(angles)], 1)
    assert mode_coverage(ring, centres, STD).near_miss == 1.0
    collapsed = centres[12] + np.random.default_rng(0).normal(0, STD, (25000, 2))
    c = mode_coverage(collapsed, centres, STD)
    assert c.modes == 1 and c.high_quality > 0.98
    missing_one = perfect[np.linalg.norm(perfect - centres[0], axis=1) > 3]
    assert mode_coverage(missing_one, centres, STD).modes == 24
    uniform = np.random.default_rng(0).uniform(-25, 25, (25000, 2))
    c = mode_coverage(uniform, centres, STD)
    assert c.modes == 0 and c.high_quality < 0.05  # the 3-sigma discs cover ~2.8 % of the square


def test_grid_data_is_as_specified():
    points = make_grid_data(GRID, 0.1, 4000)
    assert points.shape == (100000, 2) and points.dtype == np.float32
    nearest = np.linalg.norm(points[:, None] - grid_centres(GRID)[None], axis=2).argmin(1)
    assert np.bincount(nearest).tolist() == [4000] * 25
    assert np.var(points - grid_centres(GRID)[nearest], axis=0) == pytest.approx([0.1, 0.1], rel=0.05)


def test_model_shapes():
    z = sample_noise(5, 4)
    assert grid_generator()(z).shape == (5, 2) and grid_discriminator()(torch.zeros(5, 2)).shape == (5, 1)
    images = torch.rand(3, 1, 28, 28)
    for generator, discriminator, out in [(DCGANGenerator(62), DCGANDiscriminator(), (3, 1)),
                                          (MLPGenerator(62), MLPDiscriminator(), (3, 1)),
                                          (BeganGenerator(16, 8), BeganDiscriminator(16, 8), (3, 1, 28, 28))]:
        fake = generator(sample_noise(3, generator.noise_dim))
        assert fake.shape == (3, 1, 28, 28) and 0 <= fake.min() and fake.max() <= 1
        assert discriminator(images).shape == out
    assert DCGANDiscriminator().fc[0].in_features == 6272
    assert abs(DCGANGenerator().fc[0].weight.std().item() - 0.02) < 0.002


def _adam(module, lr=1e-3):
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999))


def test_coulomb_steps_lower_the_potential_regression_loss():
    torch.manual_seed(0)
    generator, discriminator = grid_generator(), grid_discriminator()
    real = torch.from_numpy(make_grid_data(GRID, 0.1, 6, seed=1)[:128])
    noise = sample_noise(128, 4)
    opt_g, opt_d = _adam(generator), _adam(discriminator)
    losses = [coulomb_step(generator, discriminator, opt_g, opt_d, real, noise, 3.0)["d_loss"].item()
              for _ in range(25)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_coulomb_generator_step_adds_nothing_to_the_discriminator_gradients():
    import copy

    import torch.nn.functional as F

    torch.manual_seed(0)
    generator, discriminator = grid_generator(), grid_discriminator()
    real = torch.from_numpy(make_grid_data(GRID, 0.1, 6, seed=1)[:64])
    noise = sample_noise(64, 4)
    d_copy = copy.deepcopy(discriminator)
    fake = generator(noise).detach()
    target_real, target_fake = plummer_potential(real, fake, 3.0)
    F.mse_loss(d_copy(torch.cat([real, fake])).squeeze(1), torch.cat([target_real, target_fake])).backward()
    coulomb_step(generator, discriminator, _adam(generator), _adam(discriminator), real, noise, 3.0)
    for mine, expected in zip(discriminator.parameters(), d_copy.parameters()):
        assert mine.requires_grad
        torch.testing.assert_close(mine.grad, expected.grad)


def test_bce_steps_lower_the_discriminator_loss():
    torch.manual_seed(0)
    real = torch.from_numpy(load_sklearn_digits().train_images[:32])
    generator, discriminator = MLPGenerator(16, [16, 32]), MLPDiscriminator([16, 32])
    opt_g, opt_d = _adam(generator, 2e-4), _adam(discriminator, 2e-4)
    records = [bce_gan_step(generator, discriminator, opt_g, opt_d, real, lambda n: sample_noise(n, 16))
               for _ in range(20)]
    d_loss = [(r["d_real"] + r["d_fake"]).item() for r in records]
    assert d_loss[-1] < d_loss[0]
    assert records[-1]["d_accuracy"].item() > 0.9


def test_began_k_update_and_clipping():
    k = began_k_update(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.2), gamma=0.5, lambda_k=0.001)
    assert k.item() == pytest.approx(0.001 * (0.5 - 0.2))
    assert began_k_update(torch.tensor(0.0), torch.tensor(0.1), torch.tensor(5.0), 0.5, 0.001).item() == 0.0
    assert began_k_update(torch.tensor(0.9999), torch.tensor(10.0), torch.tensor(0.0), 1.0, 0.001).item() == 1.0
    assert convergence_measure(torch.tensor(1.0), torch.tensor(0.2), 0.5).item() == pytest.approx(1.3)


def test_began_steps_lower_the_reconstruction_loss():
    torch.manual_seed(0)
    real = torch.from_numpy(load_sklearn_digits().train_images[:16])
    generator, autoencoder = BeganGenerator(8, 4), BeganDiscriminator(8, 4)
    opt_g, opt_d = _adam(generator), _adam(autoencoder)
    k = torch.tensor(0.0)
    records = []
    for _ in range(20):
        record, k = began_step(generator, autoencoder, opt_g, opt_d, real, lambda n: sample_noise(n, 8), k,
                               gamma=0.5, lambda_k=0.001)
        records.append(record)
    assert records[-1]["loss_real"] < 0.85 * records[0]["loss_real"]
    assert 0.0 <= k.item() <= 1.0 and k.item() == pytest.approx(records[-1]["k"].item())


def _write_idx(path, array, opener=open):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_parser_plain_gzipped_and_damaged(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "x-idx3-ubyte", images)
    _write_idx(tmp_path / "x-idx3-ubyte.gz", images, gzip.open)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte.gz"), images)
    (tmp_path / "bad").write_bytes(b"\x08\x03\x00\x00" + bytes(20))
    with pytest.raises(VawganError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "x-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(VawganError, match="truncated"):
        read_idx(tmp_path / "short")


def test_mnist_directory_and_fallback(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for stem, shape in [("train-images-idx3-ubyte", (4, 28, 28)), ("t10k-images-idx3-ubyte", (2, 28, 28))]:
        _write_idx(tmp_path / (stem + ".gz"), rng.integers(0, 256, shape), gzip.open)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 3]))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([4, 5]))
    digits = load_digit_images(str(tmp_path))
    assert digits.train_images.shape == (4, 1, 28, 28) and digits.test_labels.tolist() == [4, 5]
    assert not digits.is_fallback and 0 <= digits.train_images.min() and digits.train_images.max() <= 1

    with pytest.raises(VawganError, match="missing"):
        load_digit_images(str(tmp_path / "nowhere"))
    monkeypatch.setenv("VAWGAN_MNIST_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("VAWGAN_CACHE", str(tmp_path / "cache"))
    fallback = load_digit_images()
    assert fallback.is_fallback and str(tmp_path / "empty") in fallback.source
    assert fallback.train_images.shape[1:] == (1, 28, 28) and len(fallback.train_images) == 1437
    with pytest.raises(VawganError, match="no MNIST files"):
        load_digit_images(allow_fallback=False)
    monkeypatch.setenv("VAWGAN_MNIST_DIR", str(tmp_path))
    assert not load_digit_images().is_fallback
    assert gan_data.cache_dir() == tmp_path / "cache"


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Equal covariances: the distance is the squared distance of the means.
    assert frechet_distance(a, a + np.array([3.0, 0.0, 4.0])) == pytest.approx(25.0, abs=1e-4)


@pytest.mark.slow
def test_collapse_detector_fires_on_a_collapsed_generator():
    torch.manual_seed(0)
    digits = load_sklearn_digits()
    classifier, accuracy = train_digit_classifier(digits, "cpu", steps=150)
    assert accuracy > 0.6
    reference, _ = __import__("vawgan.gans.metrics", fromlist=["classify"]).classify(classifier,
                                                                                   digits.test_images, "cpu")
    real = score_digits(classifier, digits.train_images[:500], reference, "cpu")
    assert detect_collapse(real, real) is None

    # A generator that ignores its noise: every sample is the same image.
    generator = MLPGenerator(8, [16])
    with torch.no_grad():
        generator.net[-1].weight.zero_()
        generator.net[-1].bias.copy_(torch.logit(torch.from_numpy(digits.train_images[0]).flatten(), eps=1e-3))
        collapsed = generator(sample_noise(500, 8)).numpy()
    scores = score_digits(classifier, collapsed, reference, "cpu")
    reason = detect_collapse(scores, real)
    assert scores.classes_present == 1 and reason and "1 of 10" in reason and "diversity" in reason
    assert scores.frechet > 10 * real.frechet


def test_collapse_detector_thresholds():
    real = DigitScores(10, 1.0, 0.99, 20.0, 8.0, [100] * 10)
    half_classes = DigitScores(5, 0.7, 0.99, 200.0, 7.0, [200] * 5 + [0] * 5)
    assert "5 of 10" in detect_collapse(half_classes, real)
    assert detect_collapse(half_classes, real, min_classes=5) is None


def test_epsilon_halves_on_schedule_and_stops_at_its_floor():
    from vawgan.gans.config import Grid2DConfig
    from vawgan.gans.grid import epsilon_at

    config = Grid2DConfig()
    assert [epsilon_at(config, s) for s in (0, 4999, 5000, 10000, 50000)] == [3.0, 3.0, 1.5, 0.75, 3.0 / 1024]
    config.train.epsilon_min = 0.1
    assert [epsilon_at(config, s) for s in (10000, 25000, 90000)] == [0.75, 0.1, 0.1]


def test_frozen_keeps_weights_out_of_the_graph_and_restores_each_parameters_flag():
    from vawgan.utils import frozen

    discriminator = grid_discriminator()
    first, last = discriminator[0], discriminator[-1]
    first.weight.requires_grad_(False)  # frozen by the caller before: must stay frozen
    x = torch.randn(8, 2, requires_grad=True)
    with frozen(discriminator):
        out = discriminator(x).sum()
    out.backward()
    assert x.grad is not None and last.weight.grad is None
    assert not first.weight.requires_grad and first.bias.requires_grad and last.weight.requires_grad


def test_grid_runs_default_to_one_cpu_thread_and_full_length_configs_to_every_core():
    """Two default grid runs side by side must not fight over the cores (13x slower each when they did)."""
    conf = Path(__file__).resolve().parents[1] / "recipes" / "gan2d" / "conf"
    assert load_config(None, config_cls=Grid2DConfig).train.num_threads == 1
    for name in ("coulomb.yaml", "vanilla.yaml"):
        assert load_config(conf / name, config_cls=Grid2DConfig).train.num_threads == 1
    for name in ("coulomb_full.yaml", "vanilla_full.yaml"):
        assert load_config(conf / name, config_cls=Grid2DConfig).train.num_threads is None
