"""Training steps and losses of the secondary GANs.

Each ``*_step`` function performs one discriminator update and one generator
update and returns the step's scalars as detached tensors, so that a trainer
can average them over an epoch and call ``.item()`` once (no host sync per
step on a GPU).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vawgan.utils import frozen


def plummer_potential(real: torch.Tensor, fake: torch.Tensor, epsilon: float, dim: int = 3):
    """The Coulomb GAN potential at every real and every fake point of a minibatch.

    With the Plummer kernel ``phi(r) = -1 / (r^2 + eps^2)^((dim-2)/2)``,
    ``Phi(x) = sum_real phi(|a - x|) - sum_fake phi(|b - x|)``, where the term
    of the point ``x`` itself is left out (a point does not attract or repel
    itself). Real points make the potential low, fake points make it high, so a
    generator that descends the potential moves its samples towards real data
    and away from each other.

    All pairwise distances come from one ``torch.cdist`` on the device; the
    kernel matrix has its diagonal zeroed and is multiplied by the +1 / -1
    charge vector. Returns ``(phi_at_real, phi_at_fake)``. The kernel is built
    with in-place operations: for 512 + 512 points that made the potential
    about three times faster on a CPU than fresh tensors at every step.
    """
    points = torch.cat([real, fake])
    kernel = torch.cdist(points, points).square_().add_(epsilon ** 2)
    if dim == 3:
        kernel.rsqrt_()
    else:
        kernel.pow_(-(dim - 2) / 2)
    kernel.neg_().fill_diagonal_(0.0)
    charge = torch.cat([real.new_ones(len(real)), -real.new_ones(len(fake))])
    potential = kernel @ charge
    return potential[: len(real)], potential[len(real):]


def coulomb_step(generator: nn.Module, discriminator: nn.Module, opt_g, opt_d, real: torch.Tensor,
                 noise: torch.Tensor, epsilon: float, dim: int = 3) -> dict[str, torch.Tensor]:
    """One Coulomb GAN iteration.

    The discriminator regresses the minibatch potential at real and fake points
    (MSE); the generator then minimizes the mean of the updated discriminator
    at its own samples, i.e. it follows the learned field downhill.
    """
    fake = generator(noise)
    with torch.no_grad():
        target_real, target_fake = plummer_potential(real, fake, epsilon, dim)
    prediction = discriminator(torch.cat([real, fake.detach()])).squeeze(1)
    d_loss = F.mse_loss(prediction, torch.cat([target_real, target_fake]))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    with frozen(discriminator):
        g_loss = discriminator(fake).mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def bce_gan_step(generator: nn.Module, discriminator: nn.Module, opt_g, opt_d, real: torch.Tensor,
                 noise_fn: Callable[[int], torch.Tensor]) -> dict[str, torch.Tensor]:
    """One iteration of the original (binary cross-entropy) GAN.

    The discriminator sees a real batch and a fake batch separately (as in the
    reference DCGAN, so batch normalization statistics are not mixed); the
    generator uses fresh noise and the non-saturating loss ``-log D(G(z))``.
    Returns the discriminator's loss on real and on fake images, its accuracy
    (real logits > 0, fake logits < 0) and the generator's loss.
    """
    n = len(real)
    fake = generator(noise_fn(n)).detach()
    logit_real = discriminator(real)
    logit_fake = discriminator(fake)
    d_real = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
    d_fake = F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    opt_d.zero_grad(set_to_none=True)
    (d_real + d_fake).backward()
    opt_d.step()
    accuracy = ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean()) / 2

    with frozen(discriminator):
        logit_gen = discriminator(generator(noise_fn(n)))
    g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_real": d_real.detach(), "d_fake": d_fake.detach(), "d_accuracy": accuracy.detach(),
            "g_loss": g_loss.detach()}


def reconstruction_loss(autoencoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BEGAN's ``L(v) = |v - D(v)|``: mean absolute reconstruction error."""
    return (x - autoencoder(x)).abs().mean()


def began_k_update(k: torch.Tensor, loss_real: torch.Tensor, loss_gen: torch.Tensor, gamma: float,
                   lambda_k: float) -> torch.Tensor:
    """``k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)``: the proportional control."""
    return (k + lambda_k * (gamma * loss_real - loss_gen)).clamp(0.0, 1.0)


def convergence_measure(loss_real: torch.Tensor, loss_gen: torch.Tensor, gamma: float) -> torch.Tensor:
    """BEGAN's ``M_global = L(x) + |gamma L(x) - L(G(z))|``: falls as training converges."""
    return loss_real + (gamma * loss_real - loss_gen).abs()


def began_step(generator: nn.Module, autoencoder: nn.Module, opt_g, opt_d, real: torch.Tensor,
               noise_fn: Callable[[int], torch.Tensor], k: torch.Tensor, gamma: float,
               lambda_k: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One BEGAN iteration; returns the step's scalars and the updated ``k``.

    ``L_D = L(x) - k_t L(G(z_D))`` trains the autoencoder to reconstruct real
    images and fail on fakes; ``L_G = L(G(z_G))`` trains the generator to make
    images the autoencoder reconstructs well. ``k`` balances the two so that
    ``L(G(z)) = gamma L(x)`` in equilibrium.
    """
    n = len(real)
    loss_real = reconstruction_loss(autoencoder, real)
    loss_fake_d = reconstruction_loss(autoencoder, generator(noise_fn(n)).detach())
    d_loss = loss_real - k * loss_fake_d
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    with frozen(autoencoder):
        g_loss = reconstruction_loss(autoencoder, generator(noise_fn(n)))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()

    loss_real, g_loss = loss_real.detach(), g_loss.detach()
    new_k = began_k_update(k, loss_real, g_loss, gamma, lambda_k)
    scalars = {"d_loss": d_loss.detach(), "loss_real": loss_real, "g_loss": g_loss, "k": new_k,
               "m_global": convergence_measure(loss_real, g_loss, gamma)}
    return scalars, new_k
