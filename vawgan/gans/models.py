"""Networks of the secondary GAN models (SPEC section 6).

All generators take uniform noise in [-1, 1) (:func:`sample_noise`). Image
generators output 1 x 28 x 28 images in [0, 1] (sigmoid); discriminators
return logits (the BCE losses use ``binary_cross_entropy_with_logits``, which
is the numerically safe form of sigmoid + BCE).
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)


def sample_noise(n: int, dim: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` noise vectors uniform in [-1, 1)."""
    return torch.rand(n, dim, device=device, generator=generator) * 2 - 1


def mlp(sizes: list[int], activation: type[nn.Module], **activation_kwargs) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation(**activation_kwargs))
    return nn.Sequential(*layers)


def grid_generator(noise_dim: int = 4, hidden: int = 128, layers: int = 3) -> nn.Sequential:
    """Noise -> ``layers`` x (Dense ``hidden``, ELU) -> a 2-D point."""
    return mlp([noise_dim] + [hidden] * layers + [2], nn.ELU)


def grid_discriminator(hidden: int = 128, layers: int = 3) -> nn.Sequential:
    """A 2-D point -> ``layers`` x (Dense ``hidden``, ELU) -> one value (logit or potential)."""
    return mlp([2] + [hidden] * layers + [1], nn.ELU)


def init_dcgan_weights(module: nn.Module) -> None:
    """Weights N(0, 0.02) and zero biases for every conv and linear layer (the DCGAN recipe)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z -> Linear 1024, BN, ReLU -> Linear 128*7*7, BN, ReLU -> two stride-2 transposed convs -> 28 x 28."""

    def __init__(self, noise_dim: int = 62):
        super().__init__()
        self.noise_dim = noise_dim
        self.fc = nn.Sequential(
            nn.Linear(noise_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
            nn.Linear(1024, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Sigmoid(),
        )
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, 128, 7, 7))


class DCGANDiscriminator(nn.Module):
    """28 x 28 -> two stride-2 convs -> Linear 6272 -> 1024 -> 1 logit, LeakyReLU 0.2."""

    def __init__(self, leaky_slope: float = 0.2):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(leaky_slope),
            nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(leaky_slope),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * 7 * 7, 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(leaky_slope),
            nn.Linear(1024, 1),
        )
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class MLPGenerator(nn.Module):
    """Fully connected generator with LeakyReLU: z -> hidden... -> 784 -> sigmoid image."""

    def __init__(self, noise_dim: int = 62, hidden: list[int] = (256, 512), leaky_slope: float = 0.2):
        super().__init__()
        self.noise_dim = noise_dim
        self.net = mlp([noise_dim, *hidden, 28 * 28], nn.LeakyReLU, negative_slope=leaky_slope)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)).view(-1, *IMAGE_SHAPE)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator with LeakyReLU: 784 -> reversed hidden sizes -> 1 logit."""

    def __init__(self, hidden: list[int] = (256, 512), leaky_slope: float = 0.2):
        super().__init__()
        self.net = mlp([28 * 28, *reversed(list(hidden)), 1], nn.LeakyReLU, negative_slope=leaky_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class BeganDecoder(nn.Module):
    """h -> 7 x 7 x ``channels`` -> (conv, ELU) blocks with two nearest-neighbour upsamplings -> 28 x 28.

    BEGAN uses the same decoder shape for the generator and for the
    discriminator's reconstruction path.
    """

    def __init__(self, hidden: int = 64, channels: int = 32):
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(hidden, channels * 7 * 7)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ELU(),
            nn.Conv2d(channels, 1, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(self.fc(h).view(-1, self.channels, 7, 7))


class BeganGenerator(BeganDecoder):
    """BEGAN's generator: the decoder driven by noise."""

    def __init__(self, noise_dim: int = 64, channels: int = 32):
        super().__init__(noise_dim, channels)
        self.noise_dim = noise_dim


class BeganDiscriminator(nn.Module):
    """BEGAN's discriminator: an autoencoder 28 x 28 -> ``hidden`` -> 28 x 28."""

    def __init__(self, hidden: int = 64, channels: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ELU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(2 * channels, 3 * channels, 3, stride=2, padding=1), nn.ELU(),
            nn.Flatten(), nn.Linear(3 * channels * 7 * 7, hidden),
        )
        self.decoder = BeganDecoder(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
