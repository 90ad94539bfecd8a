"""VAE and WGAN-GP losses: known answers and the gradient penalty's effect."""

import math

import pytest
import torch

from vawgan.losses import (adversarial_weight, critic_loss, gaussian_nll, gradient_penalty, interpolate,
                           kl_divergence, reparameterize, vae_loss)
from vawgan.models import Critic


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Linear(torch.nn.Module):
    """D(x) = w·x: its input gradient is w everywhere, so the penalty is (‖w‖ − 1)²."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float32))

    def forward(self, x, speaker_ids=None, gradient_rows=0):
        scores = x @ self.w
        return (scores, self.w.expand(gradient_rows, -1)) if gradient_rows else scores


def test_gaussian_nll_and_kl_match_torch_distributions():
    torch.manual_seed(0)
    x, x_hat = torch.randn(8, 5), torch.randn(8, 5)
    expected = -torch.distributions.Normal(x_hat, 1.0).log_prob(x).sum(1).mean()
    assert torch.allclose(gaussian_nll(x, x_hat), expected, atol=1e-5)
    assert gaussian_nll(x, x).item() == pytest.approx(0.5 * 5 * math.log(2 * math.pi), rel=1e-6)
    log_variance = torch.randn(5)
    expected = -torch.distributions.Normal(x_hat, torch.exp(0.5 * log_variance)).log_prob(x).sum(1).mean()
    assert torch.allclose(gaussian_nll(x, x_hat, log_variance), expected, atol=1e-5)
    mu, logvar = torch.randn(8, 3), torch.randn(8, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    assert torch.allclose(kl_divergence(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1).mean(), atol=1e-5)
    assert kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


@pytest.mark.parametrize("learned_variance", [True, False])
def test_fused_vae_loss_has_the_values_and_gradients_of_the_reference_functions(learned_variance):
    """The trainer's one-node NLL + KL against autograd through gaussian_nll and kl_divergence."""
    torch.manual_seed(0)
    x, x_hat = torch.randn(9, 5, dtype=torch.float64), torch.randn(9, 5, dtype=torch.float64)
    log_variance = torch.randn(5, dtype=torch.float64) if learned_variance else None
    mu, logvar = torch.randn(9, 3, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    inputs = [t.requires_grad_(True) for t in (x, x_hat, log_variance, mu, logvar) if t is not None]
    fused = vae_loss(x, x_hat, log_variance, mu, logvar)
    reference = gaussian_nll(x, x_hat, log_variance), kl_divergence(mu, logvar)
    for a, b in zip(fused, reference):
        assert a.item() == pytest.approx(b.item(), rel=1e-12)
    # Both outputs weighted differently, so a swapped or missing gradient term shows.
    fused_grads = torch.autograd.grad(fused[0] + 0.3 * fused[1], inputs)
    reference_grads = torch.autograd.grad(reference[0] + 0.3 * reference[1], inputs)
    for a, b in zip(fused_grads, reference_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: vae_loss(x, *t), (x_hat, log_variance, mu, logvar))


def test_fused_vae_loss_computes_bfloat16_inputs_in_float32():
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    x_hat, mu, logvar = (torch.randn(16, n, dtype=torch.bfloat16, requires_grad=True) for n in (4, 3, 3))
    nll, kl = vae_loss(x, x_hat, None, mu, logvar)
    assert nll.dtype == kl.dtype == torch.float32
    expected = gaussian_nll(x, x_hat.float()), kl_divergence(mu.float(), logvar.float())
    assert nll.item() == pytest.approx(expected[0].item(), rel=1e-6)
    assert kl.item() == pytest.approx(expected[1].item(), rel=1e-6)
    (nll + kl).backward()
    assert x_hat.grad.dtype == mu.grad.dtype == logvar.grad.dtype == torch.bfloat16


def test_reparameterize_known_answer_and_gradients():
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, 2.0 * math.log(3.0)]], requires_grad=True)  # σ = 1 and 3
    z = reparameterize(mu, logvar, torch.tensor([[0.5, -1.0]]))
    torch.testing.assert_close(z, torch.tensor([[1.5, -5.0]]))
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(1, 2))
    torch.testing.assert_close(logvar.grad, torch.tensor([[0.25, -1.5]]))  # ½·σ·n


def test_gradient_penalty_known_answer_and_gradient_wrt_critic_weights():
    w = torch.tensor([3.0, 4.0])  # ‖w‖ = 5
    critic = Linear(w)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    _, input_gradient = critic(interpolate(real, fake, torch.rand(16, 1)), gradient_rows=16)
    gp = gradient_penalty(input_gradient)
    assert gp.item() == pytest.approx(16.0)  # (5 − 1)²
    gp.backward()
    # d/dw (‖w‖ − 1)² = 2(‖w‖ − 1)·w/‖w‖: the penalty trains the critic
    assert torch.allclose(critic.w.grad, 2 * 4 * w / 5)


@pytest.mark.parametrize("num_speakers, hidden", [(0, [16, 8]), (3, [16, 8]), (0, [5]), (3, [16, 8, 4])])
def test_critic_input_gradient_and_penalty_weight_gradients_equal_double_backward(num_speakers, hidden):
    # The critic builds ∇ₓD in its forward pass; the penalty's gradients with
    # respect to every weight must be those of autograd.grad(create_graph=True).
    torch.manual_seed(0)
    critic = Critic(input_dim=7, hidden=hidden, num_speakers=num_speakers, speaker_dim=4)
    x = torch.randn(12, 7)
    speakers = torch.randint(3, (12,)) if num_speakers else None

    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(critic(leaf, speakers).sum(), leaf, create_graph=True)
    expected_penalty = gradient_penalty(expected[-5:])
    expected_grads = torch.autograd.grad(expected_penalty, list(critic.parameters()), allow_unused=True)

    scores, input_gradient = critic(x, speakers, gradient_rows=5)
    torch.testing.assert_close(scores, critic(x, speakers))
    torch.testing.assert_close(input_gradient, expected[-5:].detach())
    grads = torch.autograd.grad(gradient_penalty(input_gradient), list(critic.parameters()), allow_unused=True)
    for (name, parameter), got, want in zip(critic.named_parameters(), grads, expected_grads):
        # None (no path to the penalty) counts as zero: the output bias and the speaker
        # embedding reach the input gradient only through the masks, whose derivative is 0.
        zero = torch.zeros_like(parameter)
        torch.testing.assert_close(zero if got is None else got, zero if want is None else want, msg=name)
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads)


def test_critic_loss_parts_and_interpolation_per_frame():
    critic = Linear([1.0, 0.0])
    real = torch.tensor([[2.0, 0.0], [4.0, 1.0]])
    fake = torch.tensor([[0.0, 5.0], [1.0, 0.0]])
    eps = torch.tensor([[0.25], [1.0]])  # one ε per frame, broadcast over dimensions
    assert torch.equal(interpolate(real, fake, eps), torch.tensor([[0.5, 3.75], [4.0, 1.0]]))
    out = critic_loss(critic, real, fake, eps, gp_lambda=10.0)
    assert out["d_real"].item() == 3.0 and out["d_fake"].item() == 0.5
    assert out["wasserstein"].item() == 2.5
    assert out["gradient_penalty"].item() == 0.0  # ‖w‖ = 1
    assert out["loss"].item() == -2.5


def _train_toy_critic(gp_lambda, steps=300):
    """Mean input-gradient norm at interpolates before and after training a toy critic."""
    torch.manual_seed(0)
    critic = Critic(input_dim=2, hidden=[32, 32])
    with torch.no_grad():  # start far from 1-Lipschitz
        for p in critic.parameters():
            p.mul_(4.0)
    real = torch.randn(512, 2) * 0.5 + torch.tensor([2.0, 0.0])
    fake = torch.randn(512, 2) * 0.5 - torch.tensor([2.0, 0.0])

    def mean_norm():
        x_hat = interpolate(real, fake, torch.rand(512, 1)).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        return g.norm(dim=1).mean().item()

    before = mean_norm()
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = torch.randint(0, 512, (64,))
        loss = critic_loss(critic, real[batch], fake[batch], torch.rand(64, 1), gp_lambda=gp_lambda)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, mean_norm()


def test_gradient_penalty_drives_input_gradient_norms_towards_one():
    before, after = _train_toy_critic(gp_lambda=10.0)
    assert before > 3.0
    # The Wasserstein term pulls the norm a little above 1 (about 1 + separation/(2λ)).
    assert abs(after - 1.0) < 0.35, (before, after)
    # Without the penalty nothing holds the critic back: the norms stay far from 1.
    _, unconstrained = _train_toy_critic(gp_lambda=0.0)
    assert unconstrained > 3.0, unconstrained


def test_detached_penalty_of_the_reference_blog_would_not_train_the_critic():
    # The contrast that motivates create_graph=True: a penalty computed from a
    # detached input gradient has no gradient with respect to the weights.
    critic = Linear([3.0, 4.0])
    x_hat = torch.randn(8, 2, requires_grad=True)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)  # no create_graph
    assert not ((g.norm(dim=1) - 1) ** 2).mean().requires_grad


def test_adversarial_weight_scale_and_fixed_are_constants():
    rec = torch.tensor(40.0, requires_grad=True)
    adv = torch.tensor(-2.0, requires_grad=True)
    alpha = adversarial_weight(rec, adv, "scale", 1.0)
    assert alpha.item() == 20.0 and not alpha.requires_grad
    assert adversarial_weight(rec, adv, "fixed", 0.5).item() == 0.5
    with pytest.raises(ValueError):
        adversarial_weight(rec, adv, "other", 1.0)
