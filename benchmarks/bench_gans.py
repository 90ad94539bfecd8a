"""Time the secondary GANs' training steps: how many iterations fit in a CPU budget.

    python benchmarks/bench_gans.py [--device cpu|cuda|auto] [--steps 50] [--threads 1]

Prints milliseconds per call for the Coulomb potential of a 512 + 512 batch
(vectorized, one ``torch.cdist``), a Coulomb GAN iteration, a vanilla GAN
iteration, and one step of DCGAN (batch 128), the MLP GAN (batch 128) and
BEGAN (batch 64, 16 channels), and the machine's load average, since timings
on a shared machine depend on it.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from vawgan.gans.losses import bce_gan_step, began_step, coulomb_step, plummer_potential
from vawgan.gans.models import (BeganDiscriminator, BeganGenerator, DCGANDiscriminator, DCGANGenerator,
                                MLPDiscriminator, MLPGenerator, grid_discriminator, grid_generator, sample_noise)
from vawgan.utils import configure_cpu, resolve_device


def timed(fn, steps: int, device) -> float:
    """Mean milliseconds per call of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps


def adam_pair(generator, discriminator, lr):
    return (torch.optim.Adam(generator.parameters(), lr, betas=(0.5, 0.999)),
            torch.optim.Adam(discriminator.parameters(), lr, betas=(0.5, 0.999)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    device = resolve_device(args.device)
    configure_cpu(args.threads)
    torch.manual_seed(0)
    print(f"device {device}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")

    real2d = torch.randn(512, 2, device=device) * 10
    fake2d = torch.randn(512, 2, device=device) * 10
    print(f"Coulomb potential 512+512: {timed(lambda: plummer_potential(real2d, fake2d, 3.0), args.steps, device):7.2f} ms")
    g, d = grid_generator().to(device), grid_discriminator().to(device)
    og, od = adam_pair(g, d, 1e-3)
    noise = lambda n: sample_noise(n, 4, device)  # noqa: E731
    ms = timed(lambda: coulomb_step(g, d, og, od, real2d, noise(512), 3.0), args.steps, device)
    print(f"Coulomb GAN iteration:     {ms:7.2f} ms  ({int(900_000 / ms)} iterations in 15 min)")
    ms = timed(lambda: bce_gan_step(g, d, og, od, real2d, noise), args.steps, device)
    print(f"vanilla GAN iteration:     {ms:7.2f} ms")

    images = torch.rand(128, 1, 28, 28, device=device)
    for name, generator, discriminator in [("DCGAN", DCGANGenerator(), DCGANDiscriminator()),
                                           ("MLP GAN", MLPGenerator(), MLPDiscriminator())]:
        generator, discriminator = generator.to(device), discriminator.to(device)
        og, od = adam_pair(generator, discriminator, 2e-4)
        step = lambda: bce_gan_step(generator, discriminator, og, od, images,  # noqa: E731
                                    lambda n: sample_noise(n, 62, device))
        print(f"{name + ' step (128):':27s}{timed(step, max(args.steps // 10, 3), device):7.2f} ms")
    generator, autoencoder = BeganGenerator(64, 16).to(device), BeganDiscriminator(64, 16).to(device)
    og, od = adam_pair(generator, autoencoder, 1e-4)
    k = torch.zeros((), device=device)
    step = lambda: began_step(generator, autoencoder, og, od, images[:64],  # noqa: E731
                              lambda n: sample_noise(n, 64, device), k, 0.5, 0.001)
    print(f"{'BEGAN step (64, 16 ch):':27s}{timed(step, max(args.steps // 10, 3), device):7.2f} ms")


if __name__ == "__main__":
    main()
