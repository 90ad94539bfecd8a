"""Losses of VAW-GAN (SPEC section 4).

All losses are means over the frames of a batch, so that data-parallel
training (gradients averaged over processes) equals one process on the
concatenated batch.

The gradient penalty follows Gulrajani et al. (2017): ε ~ U(0, 1), one draw
per frame, x̂ = ε·x + (1 − ε)·x̃, penalty λ·E[(‖∇ₓ̂ D(x̂)‖₂ − 1)²] with the
penalty itself differentiable with respect to the critic's weights, so that
it trains the critic: the gradients ``torch.autograd.grad(..., create_graph=True)``
and a double backward would give, here from the input gradient the critic
builds in its forward pass (:class:`~vawgan.models.Critic`, tested against
autograd).
The reference blog post drew ε from a normal distribution, one value per
element rather than per frame, and detached the input gradient; its
"penalty" was then a constant with respect to the critic's weights and never
constrained the critic (the run was effectively an unconstrained WGAN).
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_nll(x: torch.Tensor, x_hat: torch.Tensor, log_variance: torch.Tensor | None = None) -> torch.Tensor:
    """−log N(x; x̂, diag σ²) per frame (summed over dimensions), averaged over frames.

    ``log_variance`` (D,) is the decoder's per-dimension log σ²; None means
    unit variance, the reference's N(x; x̂, I). The constant ½·D·log 2π is
    included, so the value is a true negative log-likelihood in nats per frame
    (positive with unit variance; with a learned σ < 1 it can be negative).
    """
    dim = x.shape[1]
    squared = (x - x_hat).pow(2)
    if log_variance is None:
        return 0.5 * squared.sum(dim=1).mean() + 0.5 * dim * _LOG_2PI
    return 0.5 * (squared * torch.exp(-log_variance)).sum(dim=1).mean() + 0.5 * (log_variance.sum() + dim * _LOG_2PI)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per frame (summed over latent dimensions), averaged over frames."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()


def _widened(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is in a 16-bit type (autocast's bfloat16), else unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class _VaeLoss(torch.autograd.Function):
    """:func:`gaussian_nll` and :func:`kl_divergence` as one autograd node with hand-derived gradients.

    The same values as the two functions in fewer operations: autograd
    differentiates each of their dozens of small element-wise and scalar
    operations on its own, and every operation is a kernel launch on a GPU
    and a dispatch on a CPU (a VAE step: 117 → 102 kernels on an H100). With
    n frames, d = x̂ − x, p = exp(−log σ²) and s = d²·p:

    * ∂NLL/∂x̂ = d·p / n, ∂NLL/∂x = −∂NLL/∂x̂;
    * ∂NLL/∂log σ²_j = ½·(1 − mean over frames of s_j);
    * ∂KL/∂μ = μ / n, ∂KL/∂log σ_z² = ½·(exp(log σ_z²) − 1) / n.

    ``tests/test_losses.py`` checks these against autograd on the two
    reference functions (``torch.autograd.gradcheck``, float64). Inputs in
    bfloat16 (autocast) are computed in float32; autograd casts each
    gradient back to its input's type.
    """

    @staticmethod
    def forward(ctx, x, x_hat, log_variance, mu, logvar):
        frames, dim = x.shape
        diff = _widened(x_hat) - _widened(x)
        if log_variance is None:
            scaled, squared = diff, diff * diff
            nll = squared.sum().mul(0.5 / frames).add(0.5 * dim * _LOG_2PI)
        else:
            scaled = diff * torch.exp(-log_variance)
            squared = scaled * diff
            nll = torch.add(log_variance.sum(), squared.sum(), alpha=1.0 / frames).add(dim * _LOG_2PI).mul(0.5)
        mu, logvar = _widened(mu), _widened(logvar)
        variance_minus_one = logvar.exp() - 1.0
        kl = torch.addcmul(variance_minus_one - logvar, mu, mu).sum().mul(0.5 / frames)
        ctx.save_for_backward(scaled, squared if log_variance is not None else None, mu, variance_minus_one)
        return nll, kl

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_nll, grad_kl):
        scaled, squared, mu, variance_minus_one = ctx.saved_tensors
        frames = scaled.shape[0]
        need_x, need_x_hat, need_log_variance, need_mu, need_logvar = ctx.needs_input_grad
        grad_x = grad_x_hat = grad_log_variance = grad_mu = grad_logvar = None
        if need_x or need_x_hat:
            grad_x_hat = scaled * (grad_nll / frames)
            grad_x = -grad_x_hat if need_x else None
        if need_log_variance:
            grad_log_variance = (1.0 - squared.mean(dim=0)) * (0.5 * grad_nll)
        if need_mu or need_logvar:
            grad_kl_per_frame = grad_kl / frames
            grad_mu = mu * grad_kl_per_frame if need_mu else None
            grad_logvar = variance_minus_one * (0.5 * grad_kl_per_frame) if need_logvar else None
        return grad_x, grad_x_hat if need_x_hat else None, grad_log_variance, grad_mu, grad_logvar


def vae_loss(x: torch.Tensor, x_hat: torch.Tensor, log_variance: torch.Tensor | None, mu: torch.Tensor,
             logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(``gaussian_nll(x, x_hat, log_variance)``, ``kl_divergence(mu, logvar)``) in one fused autograd node.

    What the trainer uses: the same values and gradients as the two reference
    functions, with fewer operations per step (see :class:`_VaeLoss`).
    """
    return _VaeLoss.apply(x, x_hat, log_variance, mu, logvar)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = μ + σ·n with n ~ N(0, I) given by the caller (so that the caller owns the random stream)."""
    return torch.addcmul(mu, torch.exp(0.5 * logvar), noise)


def interpolate(real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor) -> torch.Tensor:
    """x̂ = ε·real + (1 − ε)·fake; ``epsilon`` is (N, 1)."""
    # lerp: one operation instead of four; it needs one dtype (autocast's fake frames are bfloat16).
    return torch.lerp(fake.to(real.dtype), real, epsilon)


def gradient_penalty(input_gradient: torch.Tensor) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] (without λ) from the critic's input gradients (N, D) at the interpolates."""
    return (input_gradient.norm(2, dim=1) - 1.0).pow(2).mean()


def critic_loss(critic, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor, gp_lambda: float,
                speaker_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """WGAN-GP critic loss E[D(x̃)] − E[D(x)] + λ·GP, with its parts.

    Real frames, generated frames and their interpolates go through the critic
    as one batch (one forward pass instead of three), which also returns its
    input gradient at the interpolates (``critic(x, speaker_ids,
    gradient_rows=n)``, see :class:`~vawgan.models.Critic`). ``fake`` is
    treated as a constant (the critic step does not train the generator).
    Returns a dict with ``loss`` (to minimise), ``gradient_penalty``,
    ``wasserstein`` (the estimate E[D(x)] − E[D(x̃)]), ``d_real`` and
    ``d_fake``.
    """
    n = real.shape[0]
    fake = fake.detach()
    x_hat = interpolate(real, fake, epsilon)
    conditions = None if speaker_ids is None else speaker_ids.repeat(3)
    scores, input_gradient = critic(torch.cat([real, fake, x_hat]), conditions, gradient_rows=n)
    d_real, d_fake, _ = scores.split(n)
    penalty = gradient_penalty(input_gradient)
    d_real_mean, d_fake_mean = d_real.mean(), d_fake.mean()
    wasserstein = d_real_mean - d_fake_mean
    return {"loss": gp_lambda * penalty - wasserstein, "gradient_penalty": penalty, "wasserstein": wasserstein,
            "d_real": d_real_mean, "d_fake": d_fake_mean}


def adversarial_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor, mode: str,
                       value: float) -> torch.Tensor:
    """The weight α of the adversarial term, never differentiated.

    ``mode="scale"``: α = |E_rec / E_adv| (the reference's scale matching: the
    adversarial term gets the same magnitude as the reconstruction term in
    every step); ``mode="fixed"``: α = ``value``.
    """
    if mode == "fixed":
        return torch.full_like(reconstruction, float(value)).detach()
    if mode == "scale":
        return (reconstruction / adversarial.abs().clamp_min(1e-8)).abs().detach()
    raise ValueError(f"alpha mode {mode!r} is not one of scale, fixed")
