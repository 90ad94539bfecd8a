"""The three networks of VAW-GAN (SPEC section 4): encoder, decoder, critic.

All three are small multilayer perceptrons on frames of normalized mel-cepstra
c1..c39. They hold no training logic; :mod:`vawgan.training` and
:mod:`vawgan.losses` do that.

* :class:`Encoder` is speaker-independent: frame → mean and log-variance of a
  Gaussian posterior over a latent code z. With ``model.context_frames`` k > 0
  its input is the frame with its k neighbours on either side, side by side
  (:func:`vawgan.features.context.context_windows`), so the code can carry what the
  frame's surroundings say about it; its output is still one frame's code.
* :class:`Decoder` maps (z, speaker) → frame. The speaker enters as a learned
  embedding concatenated to z (and, by default, to the input of every hidden
  layer too), so conversion is "encode the source frame, decode with the
  target's speaker id" (Hsu et al. 2017). It can also own a trained
  per-dimension log-variance for the VAE's likelihood. With a single speaker
  there is no embedding at all and the decoder is the plain reconstruction
  decoder of the reference experiment.
* :class:`Critic` is the Wasserstein critic: frame → one unbounded score (no
  sigmoid). Optionally it is also given a learned speaker embedding, so it
  judges "is this a real frame *of this speaker*" instead of "a real frame".
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vawgan.errors import VawganError
from vawgan.features.context import stack_context
from vawgan.features.batching import in_frame_batches


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them and a linear output."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Speaker-independent encoder: x (N, D) → (μ, log σ²), each (N, latent_dim)."""

    def __init__(self, input_dim: int = 39, hidden: list[int] = (256, 128), latent_dim: int = 64):
        super().__init__()
        self.latent_dim = latent_dim
        # One output layer of size 2·latent_dim (μ and log σ² side by side):
        # one matrix product instead of two.
        self.net = mlp([input_dim, *hidden, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """Speaker-conditioned decoder: (z (N, latent_dim), speaker ids (N,)) → x̂ (N, D).

    ``num_speakers == 1`` builds the unconditional decoder (no embedding); the
    speaker ids are then accepted and ignored, so callers need no special case.

    ``learned_variance=True`` gives the decoder's Gaussian a trained
    per-dimension log-variance (:attr:`log_variance`, used only by the
    training loss; conversion decodes the mean). ``False`` keeps the
    reference's unit variance, :attr:`log_variance` is then None.
    """

    def __init__(self, latent_dim: int = 64, num_speakers: int = 1, speaker_dim: int = 16,
                 hidden: list[int] = (128, 256), output_dim: int = 39, learned_variance: bool = False,
                 condition_all_layers: bool = False):
        super().__init__()
        if num_speakers < 1:
            raise ValueError(f"num_speakers must be at least 1, got {num_speakers}")
        self.num_speakers = num_speakers
        self.embedding = nn.Embedding(num_speakers, speaker_dim) if num_speakers > 1 else None
        self.condition_all_layers = condition_all_layers and self.embedding is not None
        code_dim = speaker_dim if self.embedding is not None else 0
        self.net = mlp([latent_dim, *hidden, output_dim])
        # The speaker code is concatenated to the input of the first layer, or of every layer.
        for index, layer in enumerate(self.net):
            if isinstance(layer, nn.Linear) and (index == 0 or self.condition_all_layers):
                self.net[index] = nn.Linear(layer.in_features + code_dim, layer.out_features)
        self.log_variance = nn.Parameter(torch.zeros(output_dim)) if learned_variance else None

    def forward(self, z: torch.Tensor, speaker_ids: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return self.net(z)
        code = self.embedding(speaker_ids)
        if not self.condition_all_layers:
            return self.net(torch.cat([z, code], dim=1))
        h = z
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                h = torch.cat([h, code], dim=1)
            h = layer(h)
        return h


class Critic(nn.Module):
    """Wasserstein critic: x (N, D) [, speaker ids (N,)] → scores (N,).

    ``num_speakers > 0`` makes it speaker-conditioned (its own learned
    embedding, concatenated to the frame); 0 gives the unconditional critic of
    the reference, which ignores the speaker ids.

    ``gradient_rows=n`` also returns ∇ₓD for the last n rows of ``x``, built in
    the forward pass for the gradient penalty. For a ReLU network
    D(x) = w₃·relu(W₂ relu(W₁x + b₁) + b₂) + b₃ it is
    ∇ₓD = W₁ᵀ (m₁ ⊙ W₂ᵀ (m₂ ⊙ w₃)), mᵢ the 0/1 masks of active units: a few
    products of the batch with the weights. Back-propagating a penalty on it
    gives the critic's weights exactly the gradients that
    ``torch.autograd.grad(..., create_graph=True)`` and a double backward
    give (the masks' derivative is zero, as ReLU's second derivative is), in
    fewer operations (critic steps ran 14–18 % faster on one CPU thread).
    """

    def __init__(self, input_dim: int = 39, hidden: list[int] = (64, 32), num_speakers: int = 0,
                 speaker_dim: int = 16):
        super().__init__()
        self.input_dim = input_dim
        self.embedding = nn.Embedding(num_speakers, speaker_dim) if num_speakers > 0 else None
        in_dim = input_dim + (speaker_dim if self.embedding is not None else 0)
        self.net = mlp([in_dim, *hidden, 1])
        self.linear_layers = tuple(layer for layer in self.net if isinstance(layer, nn.Linear))

    def forward(self, x: torch.Tensor, speaker_ids: torch.Tensor | None = None, gradient_rows: int = 0):
        if self.embedding is not None:
            if speaker_ids is None:
                raise ValueError("this critic is speaker-conditioned: pass speaker_ids")
            x = torch.cat([x, self.embedding(speaker_ids)], dim=1)
        if not gradient_rows:
            return self.net(x).squeeze(1)
        *hidden, output = self.linear_layers
        h, masks = x, []
        for layer in hidden:
            h = layer(h)
            masks.append(h[-gradient_rows:] > 0)
            h = torch.relu(h)
        scores = output(h).squeeze(1)
        gradient = output.weight.expand(gradient_rows, -1)  # ∂D/∂(last hidden activations)
        for layer, mask in zip(reversed(hidden), reversed(masks)):
            gradient = (gradient * mask) @ layer.weight
        return scores, gradient[:, :self.input_dim]  # the frame's part (not the speaker code's)


def encoder_input_dim(model_config) -> int:
    """The width of the encoder's input: ``input_dim`` frames times the window of ``context_frames``."""
    if model_config.context_frames < 0:
        raise VawganError(f"model.context_frames={model_config.context_frames} must not be negative")
    return model_config.input_dim * (2 * model_config.context_frames + 1)


def build_models(model_config, num_speakers: int) -> tuple[Encoder, Decoder, Critic]:
    """The three networks with the sizes of a :class:`~vawgan.config.ModelConfig`."""
    cfg = model_config
    encoder = Encoder(encoder_input_dim(cfg), list(cfg.encoder_hidden), cfg.latent_dim)
    if cfg.decoder_variance not in ("learned", "unit"):
        raise VawganError(f"model.decoder_variance={cfg.decoder_variance!r} is not one of learned, unit")
    if cfg.decoder_conditioning not in ("input", "all_layers"):
        raise VawganError(f"model.decoder_conditioning={cfg.decoder_conditioning!r} is not one of all_layers, input")
    decoder = Decoder(cfg.latent_dim, num_speakers, cfg.speaker_dim, list(cfg.decoder_hidden), cfg.input_dim,
                      learned_variance=cfg.decoder_variance == "learned",
                      condition_all_layers=cfg.decoder_conditioning == "all_layers")
    critic = Critic(cfg.input_dim, list(cfg.critic_hidden), num_speakers if cfg.critic_conditional else 0,
                    cfg.speaker_dim)
    return encoder, decoder, critic


def decode_utterance(encoder: Encoder, decoder: Decoder, normalized: np.ndarray, target_index: int, context: int,
                     sample: bool = False) -> np.ndarray:
    """One utterance's normalized frames (T, D) encoded and decoded with speaker ``target_index``, as (T, D) float64.

    Each frame is encoded with its window of ``context`` neighbours on either
    side (:func:`vawgan.features.context.stack_context`) and decoded from the
    posterior mean μ, or from a draw of the posterior when ``sample``. Long
    utterances go through the networks in batches of frames
    (:func:`vawgan.features.batching.in_frame_batches`), so that the hidden
    layers' activations (up to 8 kB per frame) stay small. Runs on the
    networks' device without recording gradients.
    """
    device = next(encoder.parameters()).device

    def batch(rows: slice) -> np.ndarray:
        x = torch.from_numpy(stack_context(normalized, context, rows).astype(np.float32)).to(device)
        mu, logvar = encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        speaker_ids = torch.full((x.shape[0],), target_index, dtype=torch.long, device=device)
        return decoder(z, speaker_ids).cpu().numpy().astype(np.float64)

    with torch.inference_mode():
        return in_frame_batches(batch, len(normalized))

