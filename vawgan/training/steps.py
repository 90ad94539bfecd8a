"""The training steps: one update of the networks per call, on the indices of a batch of frames.

Speed and devices. The whole training set lives on the training device as
one tensor; batches are index-sliced there. A step returns its scalars as one
device tensor, which the trainer writes into a preallocated per-epoch tensor
and reads back once per epoch (and at checkpoints), so the hot loop has no
host round trip; on one GPU a step can be captured once as a CUDA graph and
replayed (:class:`GraphedStep`). All randomness (data order, latent noise, ε
of the gradient penalty, conversion targets) comes from one
``torch.Generator`` whose state is checkpointed, which makes an interrupted
and resumed run end with the same weights as an uninterrupted one. Random
numbers are drawn for the *global* batch and sliced per process, so
data-parallel training (``torchrun``, DistributedDataParallel) computes the
same updates as one process on the global batch.

Adversarial target. By default (``train.adversarial_target = "conversion"``)
the critic compares *converted* frames (a source frame encoded and decoded
with another speaker's code) with real frames of that target speaker, as in
Hsu et al.'s code; with ``"reconstruction"``, or with a single speaker, it
compares reconstructions with the input frames, as in the reference blog. The
adversarial decode uses a detached latent, so no adversarial gradient can
reach the encoder: the encoder is trained by the VAE loss alone.

Parallel data. With ``train.parallel_weight`` λ > 0 (and a
:class:`~vawgan.data.PairSet` of DTW-aligned frame pairs), every VAE step and
every generator step also minimises λ × the Gaussian NLL of the target
frame given the source frame's posterior mean decoded with the target's code:
the conversion ``vawgan convert`` performs, fitted directly where the corpus
has parallel sentences. The pairs go through the same encoder and decoder
passes as the step's other frames (one pass each).

Encoder context. With ``model.context_frames`` k > 0 the encoder's input for
a frame is its window of 2k + 1 frames, gathered per batch from a device
table of the training utterances (:class:`~vawgan.data.ContextTable`); the
VAE's likelihood, the critic and the pairs' targets stay single frames.
"""

from __future__ import annotations

from typing import Callable

import torch

from vawgan.config import Config
from vawgan.data import FrameSet, PairSet
from vawgan.losses import adversarial_weight, critic_loss, gaussian_nll, reparameterize, vae_loss
from vawgan.models import build_models
from vawgan.training.distributed import reduce_mean, wrap_for_training
from vawgan.utils import frozen

# The per-step scalars each phase records (columns of the per-epoch history);
# the epoch means are logged under these tags.
VAE_TAGS = ("vae/nll", "vae/kl", "vae/loss")
CRITIC_TAGS = ("critic/loss", "critic/gradient_penalty", "critic/wasserstein", "critic/d_real", "critic/d_fake")
GENERATOR_TAGS = ("generator/adversarial", "generator/alpha", "generator/loss")
PHASE_TAGS = {"vae": VAE_TAGS, "critic": CRITIC_TAGS, "adversarial": VAE_TAGS + CRITIC_TAGS + GENERATOR_TAGS}
PARALLEL_TAG = "parallel/nll"  # logged last in the vae and adversarial phases when train.parallel_weight > 0


def _adam(params, cfg, device: torch.device, capturable: bool = False) -> torch.optim.Adam:
    """Adam with the config's learning rate and betas; the fused kernel (one call per step) where available.

    ``capturable`` keeps the step counts on the device, as a CUDA graph needs.
    """
    return torch.optim.Adam(params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas),
                            fused=device.type in ("cpu", "cuda"), capturable=capturable)


class GraphedStep:
    """Runs a training step through one captured CUDA graph: one launch per step instead of hundreds.

    The networks are small, so an eager step on a GPU costs the host time of
    launching its few hundred kernels, not GPU time. A step function of
    :class:`TrainingSteps` takes the batch's frame indices and returns its
    scalars as one tensor, does only device work (no host synchronisation) and
    draws its random numbers from the steps' generator, which the graph
    registers: each replay advances the generator as the eager step would. The first
    ``warmup`` calls run eagerly on a side stream (they initialise the
    optimizer states and the libraries' workspaces, which a capture may not
    do); they are real steps. Then the step is captured once and every later
    call copies the indices into the captured input and replays the graph.
    Values the step reads from Python that change between steps must live in
    device tensors the caller updates (the KL warm-up weight).
    """

    def __init__(self, step_fn, generator: torch.Generator, warmup: int = 3):
        self.step_fn = step_fn
        self.generator = generator
        self.warmup = warmup
        self.calls = 0
        self.side_stream = torch.cuda.Stream()
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_batch: torch.Tensor | None = None
        self.static_out: torch.Tensor | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.graph is None and self.calls < self.warmup:
            self.calls += 1
            self.side_stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side_stream):
                out = self.step_fn(batch)
            torch.cuda.current_stream().wait_stream(self.side_stream)
            return out
        if self.graph is None:
            self.static_batch = batch.clone()
            self.graph = torch.cuda.CUDAGraph()
            self.graph.register_generator_state(self.generator)
            with torch.cuda.graph(self.graph):
                self.static_out = self.step_fn(self.static_batch)
        self.static_batch.copy_(batch)
        self.graph.replay()
        return self.static_out  # overwritten by the next replay: the caller copies it at once


class TrainingSteps:
    """The networks, their optimizers, the training set on the device and the random generator, with the steps.

    :meth:`vae_step`, :meth:`critic_step` and :meth:`adversarial_step` each
    take the indices of this process's share of a batch (``local`` of the
    global batch), do one update and return the scalars of their phase's
    ``tags`` as one detached device tensor. ``kl_weight`` gives the KL
    warm-up weight of the current step (it depends on the trainer's position);
    with ``graphs`` the VAE step reads it from the device tensor
    ``kl_weight_now`` instead, which the caller fills before each step.
    The constructor builds the networks (call it right after seeding) and
    puts the frames (and with ``train.parallel_weight`` > 0 the ``pairs``) on
    ``device``. It is one class of some 220 lines because the three steps
    share all of that state, and a CUDA graph captures a step as one callable.
    """

    def __init__(self, config: Config, frames: FrameSet, pairs: PairSet | None, device: torch.device, rank: int,
                 world: int, distributed: bool, graphs: bool, kl_weight: Callable[[], float]):
        self.cfg = cfg = config.train
        self.device = device
        self.distributed, self.world = distributed, world
        self.graphs = graphs
        self.kl_weight = kl_weight
        # The KL warm-up weight of the current step, as a device tensor a captured step can read.
        self.kl_weight_now = torch.zeros((), device=device) if graphs else None
        self.batch = cfg.batch_size  # global batch
        self.local_batch = cfg.batch_size // world
        self.local = slice(rank * self.local_batch, (rank + 1) * self.local_batch)
        self.num_frames = frames.num_frames
        self.num_speakers = len(frames.speakers)
        self.conversion = cfg.adversarial_target == "conversion" and self.num_speakers > 1
        self.parallel = cfg.parallel_weight > 0

        self.encoder, self.decoder, self.critic = (m.to(device) for m in build_models(config.model,
                                                                                     self.num_speakers))
        self.opt_encoder = _adam(self.encoder.parameters(), cfg, device, capturable=graphs)
        self.opt_decoder = _adam(self.decoder.parameters(), cfg, device, capturable=graphs)
        self.opt_critic = _adam(self.critic.parameters(), cfg, device, capturable=graphs)
        # The callables used for training forwards (DDP and/or torch.compile on top of the plain modules).
        self.train_encoder, self.train_decoder, self.train_critic = wrap_for_training(
            (self.encoder, self.decoder, self.critic), device, distributed, cfg.compile)
        self.critic_condition = bool(config.model.critic_conditional)

        # The training set, on the device, sorted by speaker.
        self.x = torch.from_numpy(frames.frames).to(device)
        self.speaker_ids = torch.from_numpy(frames.speaker_ids).to(device)
        self.speaker_offsets = torch.from_numpy(frames.offsets).to(device)
        self.speaker_counts = torch.from_numpy(frames.counts).to(device)
        # With encoder context, every row's window as indices into a table of its utterances' frames.
        self.context = config.model.context_frames
        if self.context:
            self.context_table = torch.from_numpy(frames.context.table).to(device)
            self.windows = torch.from_numpy(frames.context.windows).to(device)
        self.num_pairs = pairs.num_pairs if self.parallel else 0
        if self.parallel:
            self.pair_target = torch.from_numpy(pairs.target).to(device)
            self.pair_target_ids = torch.from_numpy(pairs.target_ids).to(device)
            if self.context:
                self.pair_table = torch.from_numpy(pairs.context.table).to(device)
                self.pair_windows = torch.from_numpy(pairs.context.windows).to(device)
            else:
                self.pair_source = torch.from_numpy(pairs.source).to(device)
        extra = (PARALLEL_TAG,) if self.parallel else ()
        self.tags = {"vae": VAE_TAGS + extra, "critic": CRITIC_TAGS, "adversarial": PHASE_TAGS["adversarial"] + extra}

        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)

    def modules(self) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """The plain encoder, decoder and critic."""
        return self.encoder, self.decoder, self.critic

    def state_dict(self) -> dict:
        """The random generator's state, the weights and the optimizer states, in a checkpoint's key order."""
        return {"rng": self.generator.get_state(),
                "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
                "critic": self.critic.state_dict(), "opt_encoder": self.opt_encoder.state_dict(),
                "opt_decoder": self.opt_decoder.state_dict(), "opt_critic": self.opt_critic.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.critic.load_state_dict(state["critic"])
        self.opt_encoder.load_state_dict(state["opt_encoder"])
        self.opt_decoder.load_state_dict(state["opt_decoder"])
        self.opt_critic.load_state_dict(state["opt_critic"])
        self.generator.set_state(state["rng"].cpu())

    def _randn(self, *shape_tail: int) -> torch.Tensor:
        """Standard normal numbers for the global batch, this process's share."""
        return torch.randn((self.batch, *shape_tail), generator=self.generator, device=self.device)[self.local]

    def _rand(self, *shape_tail: int) -> torch.Tensor:
        """U(0, 1) numbers for the global batch, this process's share."""
        return torch.rand((self.batch, *shape_tail), generator=self.generator, device=self.device)[self.local]

    def targets(self, source_ids: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target speaker ids and the real frames the critic compares the generated frames with.

        Conversion: each frame gets a random *other* speaker as target, and a
        random real frame of that speaker. Reconstruction: the target is the
        frame's own speaker and the real frame is the frame itself.
        """
        if not self.conversion:
            return source_ids, x
        shift = torch.randint(1, self.num_speakers, (self.batch,), generator=self.generator,
                              device=self.device)[self.local]
        targets = (source_ids + shift) % self.num_speakers
        counts = self.speaker_counts[targets]
        pick = (self._rand() * counts).long().clamp_max(counts - 1)
        return targets, self.x[self.speaker_offsets[targets] + pick]

    def encoder_input(self, batch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of the training rows ``batch`` (frames ``x``): ``x``, or their context windows."""
        if not self.context:
            return x
        return self.context_table[self.windows[batch]].flatten(1)

    def _encode(self, batch: torch.Tensor, x: torch.Tensor):
        """``(mu, logvar, pairs)`` of the training rows ``batch`` (frames ``x``); ``pairs`` None without parallel data.

        With parallel data a random batch of aligned pairs rides along in the
        same encoder pass: ``pairs = (their μ, target frames, target ids)``.
        """
        inputs = self.encoder_input(batch, x)
        if not self.parallel:
            return *self.train_encoder(inputs), None
        pick = torch.randint(self.num_pairs, (self.batch,), generator=self.generator, device=self.device)[self.local]
        pair_inputs = self.pair_table[self.pair_windows[pick]].flatten(1) if self.context else self.pair_source[pick]
        mu_all, logvar_all = self.train_encoder(torch.cat([inputs, pair_inputs]))
        mu, pair_mu = mu_all.split(x.shape[0])
        return mu, logvar_all[:x.shape[0]], (pair_mu, self.pair_target[pick], self.pair_target_ids[pick])

    def vae_step(self, batch: torch.Tensor) -> torch.Tensor:
        """One update of encoder and decoder on the VAE loss (NLL + KL at the warm-up weight)."""
        x, speakers = self.x[batch], self.speaker_ids[batch]
        mu, logvar, pairs = self._encode(batch, x)
        z = reparameterize(mu, logvar, self._randn(mu.shape[1]))
        if pairs is None:
            reconstruction = self.train_decoder(z, speakers)
        else:  # the pairs' conversions in the same decoder pass
            reconstruction, pair_converted = self.train_decoder(torch.cat([z, pairs[0]]),
                                                                torch.cat([speakers, pairs[2]])).split(x.shape[0])
        nll, kl = vae_loss(x, reconstruction, self.decoder.log_variance, mu, logvar)
        objective = nll + (self.kl_weight_now if self.graphs else self.kl_weight()) * kl
        return self._update_encoder_decoder(objective, [nll, kl, objective],
                                            None if pairs is None else (pairs[1], pair_converted))

    def _update_encoder_decoder(self, loss: torch.Tensor, scalars: list[torch.Tensor],
                                pair_outputs: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """One Adam step of encoder and decoder on ``loss``; returns ``scalars`` as one detached tensor.

        With parallel data, ``pair_outputs = (target frames, their conversions)``
        adds the weighted parallel NLL to the loss and to the scalars (last).
        """
        if pair_outputs is not None:
            parallel_nll = gaussian_nll(*pair_outputs, self.decoder.log_variance)
            loss = loss + self.cfg.parallel_weight * parallel_nll
            scalars.append(parallel_nll)
        self.opt_encoder.zero_grad(set_to_none=True)
        self.opt_decoder.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_encoder.step()
        self.opt_decoder.step()
        return torch.stack(scalars).detach()

    def _critic_update(self, real: torch.Tensor, fake: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        """One critic step on detached ``fake``; returns the CRITIC_TAGS scalars (not yet detached)."""
        out = critic_loss(self.train_critic, real, fake, self._rand(1), self.cfg.gp_lambda,
                          targets if self.critic_condition else None)
        self.opt_critic.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.opt_critic.step()
        return [out[tag.removeprefix("critic/")] for tag in CRITIC_TAGS]

    def critic_step(self, batch: torch.Tensor) -> torch.Tensor:
        """A critic step against the current (not updated) encoder and decoder."""
        x, speakers = self.x[batch], self.speaker_ids[batch]
        targets, real = self.targets(speakers, x)
        with torch.no_grad():
            mu, logvar = self.encoder(self.encoder_input(batch, x))
            fake = self.decoder(reparameterize(mu, logvar, self._randn(mu.shape[1])), targets)
        return torch.stack(self._critic_update(real, fake, targets)).detach()

    def adversarial_step(self, batch: torch.Tensor) -> torch.Tensor:
        """``n_critic`` critic steps (the last on this batch), then one generator update of encoder and decoder."""
        cfg = self.cfg
        for _ in range(cfg.n_critic - 1):  # extra critic steps on random batches
            extra = torch.randint(self.num_frames, (self.batch,), generator=self.generator,
                                  device=self.device)[self.local]
            self.critic_step(extra)
        x, speakers = self.x[batch], self.speaker_ids[batch]
        targets, real = self.targets(speakers, x)
        mu, logvar, pairs = self._encode(batch, x)
        z = reparameterize(mu, logvar, self._randn(mu.shape[1]))
        # One decoder pass for every output: the reconstruction from z (trains
        # encoder and decoder) and the generated frame from the *detached* z
        # (decoded with the target's code), whose adversarial gradient can
        # therefore only reach the decoder; with parallel data also the pairs'
        # conversions (trains encoder and decoder, like the reconstruction).
        latents, codes = [z, z.detach()], [speakers, targets]
        if pairs is not None:
            latents.append(pairs[0])
            codes.append(pairs[2])
        decoded = self.train_decoder(torch.cat(latents), torch.cat(codes)).split(x.shape[0])
        reconstruction, generated = decoded[0], decoded[1]
        nll, kl = vae_loss(x, reconstruction, self.decoder.log_variance, mu, logvar)
        critic_scalars = self._critic_update(real, generated.detach(), targets)

        # Generator step against the updated critic; the critic's weights get no gradient.
        with frozen(self.critic):
            adversarial = -self.critic(generated, targets if self.critic_condition else None).mean()
        if cfg.alpha_mode == "scale":
            both = torch.stack([nll, adversarial]).detach()
            nll_all, adversarial_all = reduce_mean(both, self.distributed, self.world)
            alpha = adversarial_weight(nll_all, adversarial_all, "scale", cfg.alpha_value)
        else:
            alpha = adversarial_weight(nll, adversarial, "fixed", cfg.alpha_value)
        vae_objective = torch.add(nll, kl, alpha=cfg.kl_weight)  # the KL warm-up belongs to pretraining only
        loss = torch.addcmul(vae_objective, alpha, adversarial)
        scalars = [nll, kl, vae_objective, *critic_scalars, adversarial, alpha, loss]
        return self._update_encoder_decoder(loss, scalars, None if pairs is None else (pairs[1], decoded[2]))
