"""Three-phase training of VAW-GAN (SPEC section 4).

1. ``vae``: pretrain encoder + decoder on the VAE loss (Gaussian NLL + KL).
2. ``critic``: pretrain the Wasserstein critic (WGAN-GP) against the frozen
   VAE's outputs.
3. ``adversarial``: per generator step, ``n_critic`` critic steps, then one
   update of encoder and decoder where **only the decoder** sees the
   adversarial term: the encoder is trained by the VAE loss alone (the
   adversarial decode uses a detached latent, so no adversarial gradient can
   reach the encoder).

By default (``train.adversarial_target = "conversion"``) the critic compares
*converted* frames (a source frame encoded and decoded with another speaker's
code) with real frames of that target speaker, as in Hsu et al.'s code; with
``"reconstruction"``, or with a single speaker, it compares reconstructions
with the input frames, as in the reference blog.

Speed and devices. The whole training set lives on the training device as
one tensor; batches are index-sliced there. Per-step scalars are written into
a preallocated tensor on the device and read back once per epoch (and at
checkpoints), so the hot loop has no host round trip. All randomness (data
order, latent noise, ε of the gradient penalty, conversion targets) comes
from one ``torch.Generator`` whose state is checkpointed, which makes an
interrupted and resumed run end with the same weights as an uninterrupted one.
Random numbers are drawn for the *global* batch and sliced per process, so
data-parallel training (``torchrun``, DistributedDataParallel) computes the
same updates as one process on the global batch.

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

Failure handling. Checkpoints are written atomically every
``train.checkpoint_every`` steps and at the end of each phase, and only after
checking that the losses since the last check and all weights are finite: a
non-finite value stops training with :class:`TrainingDiverged`, which names
the first bad step and the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import torch

from vawgan.checkpoint import load_checkpoint, save_checkpoint
from vawgan.config import Config
from vawgan.data import FrameSet, PairSet
from vawgan.errors import VawganError
from vawgan.losses import adversarial_weight, critic_loss, gaussian_nll, reparameterize, vae_loss
from vawgan.model_dir import CHECKPOINT_FILE, WEIGHT_FILES, prepare_model_dir
from vawgan.models import build_models, encoder_input_dim
from vawgan.runlog import RunLogger
from vawgan.utils import configure_cpu, frozen, seed_everything
from vawgan.weights import save_weights

PHASES = ("vae", "critic", "adversarial")

# The per-step scalars each phase records (columns of the per-epoch history);
# the epoch means are logged under these tags.
VAE_TAGS = ("vae/nll", "vae/kl", "vae/loss")
CRITIC_TAGS = ("critic/loss", "critic/gradient_penalty", "critic/wasserstein", "critic/d_real", "critic/d_fake")
GENERATOR_TAGS = ("generator/adversarial", "generator/alpha", "generator/loss")
PHASE_TAGS = {"vae": VAE_TAGS, "critic": CRITIC_TAGS, "adversarial": VAE_TAGS + CRITIC_TAGS + GENERATOR_TAGS}
PARALLEL_TAG = "parallel/nll"  # logged last in the vae and adversarial phases when train.parallel_weight > 0


class TrainingDiverged(VawganError):
    """A loss or weight became NaN or infinite; nothing after the last good checkpoint was saved."""



def _adam(params, cfg, device: torch.device, capturable: bool = False) -> torch.optim.Adam:
    """Adam with the config's learning rate and betas; the fused kernel (one call per step) where available.

    ``capturable`` keeps the step counts on the device, as a CUDA graph needs.
    """
    return torch.optim.Adam(params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas),
                            fused=device.type in ("cpu", "cuda"), capturable=capturable)


class GraphedStep:
    """Runs a training step through one captured CUDA graph: one launch per step instead of hundreds.

    The networks are small, so an eager step on a GPU costs the host time of
    launching its few hundred kernels, not GPU time. A step function of the
    :class:`Trainer` takes the batch's frame indices and returns its scalars as
    one tensor, does only device work (no host synchronisation) and draws its
    random numbers from the trainer's generator, which the graph registers:
    each replay advances the generator as the eager step would. The first
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


class Trainer:
    """Runs the training phases on a :class:`~vawgan.data.FrameSet` into a model directory.

    The model directory must already hold ``config.yaml``, ``stats.npz`` and
    ``speakers.txt`` (:func:`vawgan.model_dir.prepare_model_dir`); the trainer
    adds ``checkpoint.pt``, ``vae.pt``, ``vawgan.pt`` and the logs. Use
    :meth:`run`. Inside ``torchrun`` (the default process group initialised),
    every process runs the same ``Trainer`` on its share of each batch.
    ``pairs`` (aligned parallel frames, :func:`vawgan.data.load_pairs`) is
    needed when ``train.parallel_weight`` > 0 and ignored otherwise.
    """

    def __init__(self, config: Config, frames: FrameSet, model_dir: str | os.PathLike, device: torch.device,
                 progress: bool = True, pairs: PairSet | None = None):
        import torch.distributed as dist

        self.config = config
        self.cfg = cfg = config.train
        self.model_dir = Path(model_dir)
        self.device = torch.device(device)
        self.speakers = list(frames.speakers)
        self.num_speakers = len(self.speakers)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.parallel = cfg.parallel_weight > 0
        self._validate(frames, pairs)

        self.batch = cfg.batch_size  # global batch
        self.local_batch = cfg.batch_size // self.world
        self.local = slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)
        self.num_frames = frames.num_frames
        self.steps_per_epoch = self.num_frames // self.batch  # the last partial batch is dropped
        self.conversion = cfg.adversarial_target == "conversion" and self.num_speakers > 1

        if self.device.type == "cpu":
            configure_cpu(cfg.num_threads)
        self.amp = bool(cfg.amp)
        # CUDA graphs on one GPU; DDP's gradient hooks and torch.compile's own
        # graphs are left to run eagerly, and so are torch releases whose graphs
        # cannot register the trainer's own generator.
        self.graphs = bool(cfg.cuda_graphs) and self.device.type == "cuda" and not self.distributed \
            and not cfg.compile and hasattr(torch.cuda.CUDAGraph, "register_generator_state")
        # TensorFloat-32 products on the GPU, only while this trainer runs (the setting is process-wide).
        self.tf32 = bool(cfg.tf32) and self.device.type == "cuda"
        # The KL warm-up weight of the current step, as a device tensor a captured step can read.
        self.kl_weight_now = torch.zeros((), device=self.device) if self.graphs else None

        seed_everything(cfg.seed)
        self.encoder, self.decoder, self.critic = (m.to(self.device) for m in build_models(config.model,
                                                                                          self.num_speakers))
        self.opt_encoder = _adam(self.encoder.parameters(), cfg, self.device, capturable=self.graphs)
        self.opt_decoder = _adam(self.decoder.parameters(), cfg, self.device, capturable=self.graphs)
        self.opt_critic = _adam(self.critic.parameters(), cfg, self.device, capturable=self.graphs)
        # The callables used for training forwards: DDP wrappers (gradient
        # all-reduce) and/or torch.compile on top of the plain modules.
        self.train_encoder, self.train_decoder, self.train_critic = self.encoder, self.decoder, self.critic
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_encoder, self.train_decoder, self.train_critic = (
                DDP(m, device_ids=ids) for m in (self.encoder, self.decoder, self.critic))
        if cfg.compile:
            self.train_encoder, self.train_decoder, self.train_critic = (
                torch.compile(m) for m in (self.train_encoder, self.train_decoder, self.train_critic))
        self.critic_condition = bool(config.model.critic_conditional)

        # The training set, on the device, sorted by speaker.
        self.x = torch.from_numpy(frames.frames).to(self.device)
        self.speaker_ids = torch.from_numpy(frames.speaker_ids).to(self.device)
        self.speaker_offsets = torch.from_numpy(frames.offsets).to(self.device)
        self.speaker_counts = torch.from_numpy(frames.counts).to(self.device)
        # With encoder context, every row's window as indices into a table of its utterances' frames.
        self.context = config.model.context_frames
        if self.context:
            self.context_table = torch.from_numpy(frames.context.table).to(self.device)
            self.windows = torch.from_numpy(frames.context.windows).to(self.device)
        self.num_pairs = pairs.num_pairs if self.parallel else 0
        if self.parallel:
            self.pair_target = torch.from_numpy(pairs.target).to(self.device)
            self.pair_target_ids = torch.from_numpy(pairs.target_ids).to(self.device)
            if self.context:
                self.pair_table = torch.from_numpy(pairs.context.table).to(self.device)
                self.pair_windows = torch.from_numpy(pairs.context.windows).to(self.device)
            else:
                self.pair_source = torch.from_numpy(pairs.source).to(self.device)
        extra = (PARALLEL_TAG,) if self.parallel else ()
        self.phase_tags = {"vae": VAE_TAGS + extra, "critic": CRITIC_TAGS,
                           "adversarial": PHASE_TAGS["adversarial"] + extra}

        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)
        # Training position: phases finished, the phase in progress, where in it.
        self.completed: list[str] = []
        self.phase: str | None = None
        self.epoch = 0  # epochs finished in the current phase
        self.step = 0  # steps finished in the current epoch
        self.global_step = 0  # optimizer steps over all phases (generator steps in the adversarial phase)
        self.epochs_logged = 0  # epochs over all phases: the x axis of the logged curves
        self.order: torch.Tensor | None = None  # the current epoch's frame order
        self.history: torch.Tensor | None = None  # (steps_per_epoch, len(tags)) per-step scalars
        self.last_checkpoint_step: int | None = None
        self.timings: dict[str, dict[str, float]] = {}
        self.final_scalars: dict[str, dict[str, float]] = {}
        self.warnings: list[str] = []  # what went wrong without stopping the run (a critic gone flat)
        self.members: list[Trainer] = []  # with train.members > 1: the other models' trainers (train_model)

    # ------------------------------------------------------------------ setup

    def _validate(self, frames: FrameSet, pairs: PairSet | None) -> None:
        cfg = self.cfg
        if cfg.parallel_weight < 0:
            raise VawganError("train.parallel_weight must not be negative")
        if cfg.realign_epochs < 0 or (cfg.realign_epochs and not self.parallel):
            raise VawganError(f"train.realign_epochs={cfg.realign_epochs}: re-aligning needs parallel data "
                              "(train.parallel_weight > 0) and a number of epochs >= 0")
        if self.parallel and pairs is None:
            raise VawganError(f"train.parallel_weight={cfg.parallel_weight} needs aligned parallel sentences "
                              "(vawgan.data.load_pairs); set it to 0 to train without parallel data")
        if self.parallel and list(pairs.speakers) != self.speakers:
            raise VawganError(f"the parallel pairs are for speakers {pairs.speakers}, the training frames for "
                              f"{self.speakers}; build both from the same manifest")
        if cfg.batch_size % self.world:
            raise VawganError(f"train.batch_size={cfg.batch_size} is not divisible by the {self.world} processes")
        if frames.num_frames < cfg.batch_size:
            raise VawganError(f"only {frames.num_frames} training frames, fewer than train.batch_size="
                              f"{cfg.batch_size}; add data or lower the batch size")
        if frames.frames.shape[1] != self.config.model.input_dim:
            raise VawganError(f"frames have {frames.frames.shape[1]} dimensions but model.input_dim is "
                              f"{self.config.model.input_dim}")
        encoder_input_dim(self.config.model)  # a negative context is an error before the data are compared
        context = self.config.model.context_frames
        for name, data in (("training frames", frames), ("parallel pairs", pairs if self.parallel else None)):
            loaded = 0 if data is None or data.context is None else data.context.context
            if data is not None and loaded != context:
                raise VawganError(f"the {name} were loaded with {loaded} context frames but model.context_frames "
                                  f"is {context}; load them with context={context}")
        if cfg.adversarial_target not in ("conversion", "reconstruction"):
            raise VawganError(f"train.adversarial_target={cfg.adversarial_target!r} is not one of conversion, "
                              "reconstruction")
        if cfg.alpha_mode not in ("scale", "fixed"):
            raise VawganError(f"train.alpha_mode={cfg.alpha_mode!r} is not one of scale, fixed")
        if cfg.n_critic < 1 or cfg.checkpoint_every < 1:
            raise VawganError("train.n_critic and train.checkpoint_every must be at least 1")
        if cfg.kl_weight < 0 or cfg.kl_warmup_epochs < 0:
            raise VawganError("train.kl_weight and train.kl_warmup_epochs must not be negative")

    @property
    def checkpoint_path(self) -> Path:
        return self.model_dir / CHECKPOINT_FILE

    def _state(self) -> dict:
        return {
            "format": 1, "speakers": self.speakers, "num_frames": self.num_frames, "batch_size": self.batch,
            "num_pairs": self.num_pairs, "context_frames": self.context,
            "completed": list(self.completed), "phase": self.phase, "epoch": self.epoch, "step": self.step,
            "global_step": self.global_step, "epochs_logged": self.epochs_logged,
            "order": None if self.order is None else self.order.cpu(),
            "history": None if self.history is None else self.history.cpu(),
            "rng": self.generator.get_state(),
            "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
            "critic": self.critic.state_dict(), "opt_encoder": self.opt_encoder.state_dict(),
            "opt_decoder": self.opt_decoder.state_dict(), "opt_critic": self.opt_critic.state_dict(),
        }

    def _restore(self, state: dict) -> None:
        path = self.checkpoint_path
        for key, mine in (("speakers", self.speakers), ("num_frames", self.num_frames), ("batch_size", self.batch),
                          ("num_pairs", self.num_pairs), ("context_frames", self.context)):
            if state.get(key, 0 if key in ("num_pairs", "context_frames") else None) != mine:
                raise VawganError(f"{path}: was written with {key}={state.get(key)!r} but this run has {mine!r}; "
                                  "train on the same data and batch size, or use another --model-dir")
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
        self.critic.load_state_dict(state["critic"])
        self.opt_encoder.load_state_dict(state["opt_encoder"])
        self.opt_decoder.load_state_dict(state["opt_decoder"])
        self.opt_critic.load_state_dict(state["opt_critic"])
        self.generator.set_state(state["rng"].cpu())
        self.completed = list(state["completed"])
        self.phase, self.epoch, self.step = state["phase"], state["epoch"], state["step"]
        self.global_step, self.epochs_logged = state["global_step"], state["epochs_logged"]
        self.order = None if state["order"] is None else state["order"].to(self.device)
        self.history = None if state["history"] is None else state["history"].to(self.device)
        self.last_checkpoint_step = self.global_step

    # ------------------------------------------------------------------ driver

    def run(self, phases: list[str] | tuple[str, ...] = PHASES, resume: bool = False) -> dict:
        """Run ``phases`` in order, continuing the model directory's checkpoint.

        A phase already finished in the checkpoint is skipped (re-running a
        recipe stage is cheap); a phase needs the phases before it. A phase
        that was interrupted continues only with ``resume=True``.
        Returns the final epoch's scalars of each phase run.
        """
        for phase in phases:
            if phase not in PHASES:
                raise VawganError(f"unknown phase {phase!r}; phases are {', '.join(PHASES)} (or all)")
        if self.checkpoint_path.is_file():
            self._restore(load_checkpoint(self.checkpoint_path, map_location="cpu"))
            if self.phase is not None and not resume:
                raise VawganError(f"{self.checkpoint_path}: the {self.phase} phase stopped at step "
                                  f"{self.global_step} (epoch {self.epoch + 1}); add --resume to continue it, "
                                  f"or delete {self.model_dir} to start over")
        logger = RunLogger(self.model_dir, tensorboard=self.cfg.tensorboard) if self.is_main else None
        try:
            for phase in phases:
                if phase in self.completed:
                    self._say(f"phase {phase}: already finished in {self.checkpoint_path}; skipping")
                    continue
                if self.phase is not None and self.phase != phase:
                    raise VawganError(f"{self.checkpoint_path}: the {self.phase} phase is unfinished; continue it "
                                      f"first with --phase {self.phase} --resume")
                missing = [p for p in PHASES[:PHASES.index(phase)] if p not in self.completed]
                if missing:
                    raise VawganError(f"phase {phase} needs the {missing[0]} phase first: run "
                                      f"`vawgan train --phase {missing[0]}` with this --model-dir (or --phase all)")
                with self.matmul_precision():
                    self._run_phase(phase, logger)
        finally:
            if logger is not None:
                logger.close()
        return self.final_scalars

    @contextlib.contextmanager
    def matmul_precision(self):
        """TensorFloat-32 float32 matrix products inside the block if ``train.tf32`` and a GPU; restored after.

        TF32 keeps float32's range with a 10-bit mantissa. On an H100 it runs
        this model's small products as single tensor-core kernels instead of
        split-K float32 ones: captured steps 19-30 % faster. Off by default:
        over five seeds its models converted 0.08 dB (VAE) and 0.11 dB
        (VAW-GAN) worse on average, within the seeds' spread (docs/training.md, "On
        a GPU"). The setting is process-wide, hence only while training runs.
        """
        before = torch.get_float32_matmul_precision()
        if self.tf32:
            torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)

    def _run_phase(self, phase: str, logger: RunLogger | None) -> None:
        cfg = self.cfg
        epochs = {"vae": cfg.vae_epochs, "critic": cfg.critic_epochs, "adversarial": cfg.adversarial_epochs}[phase]
        step_fn = {"vae": self._vae_step, "critic": self._critic_phase_step,
                   "adversarial": self._adversarial_step}[phase]
        tags = self.phase_tags[phase]
        if self.phase is None:  # a fresh start of this phase
            self.phase, self.epoch, self.step, self.order, self.history = phase, 0, 0, None, None
        if self.history is None:
            self.history = torch.zeros(self.steps_per_epoch, len(tags), device=self.device)
        # bf16 autocast: matrix products in bfloat16, losses and weights in float32
        # (no loss scaling needed, unlike float16). Without its cast cache: the
        # cache keeps each weight's bf16 copy until the context exits, so over an
        # epoch (or a CUDA graph's replays) the forwards would read the weights
        # as they were at the first step, not as the optimizer updated them.
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=False)
                    if self.amp else contextlib.nullcontext())
        run_step = GraphedStep(step_fn, self.generator) if self.graphs else step_fn
        sets_kl_weight = self.graphs and phase == "vae"  # the captured VAE step reads it from kl_weight_now
        pairs_note = f", + {self.batch} of {self.num_pairs} parallel pairs per step"
        self._say(f"phase {phase}: {epochs} epochs x {self.steps_per_epoch} steps of {self.batch} frames "
                  f"({self.num_frames} frames, {self.num_speakers} speaker(s), device {self.device}"
                  f"{pairs_note if self.parallel and phase != 'critic' else ''}"
                  f"{f', encoder context of {self.context} frames each side' if self.context else ''}"
                  f"{', CUDA graphs' if self.graphs else ''}{', TF32 products' if self.tf32 else ''}"
                  f"{f', {self.world} processes' if self.world > 1 else ''})")
        started, cpu_started, steps_run = time.perf_counter(), time.process_time(), 0
        while self.epoch < epochs:
            if self.order is None:
                self.order = torch.randperm(self.num_frames, generator=self.generator, device=self.device)
            epoch_started, first_step = time.perf_counter(), self.step
            bar = self._progress_bar(phase, epochs)
            with autocast:
                for i in range(self.step, self.steps_per_epoch):
                    batch = self.order[i * self.batch:(i + 1) * self.batch][self.local]
                    if sets_kl_weight:
                        self.kl_weight_now.fill_(self._kl_weight())
                    self.history[i] = run_step(batch)
                    self.step, self.global_step = i + 1, self.global_step + 1
                    if self.global_step % cfg.checkpoint_every == 0:
                        self._save_checkpoint()
                    if bar is not None:
                        bar.update(1)
            if bar is not None:
                bar.close()
            steps_run += self.steps_per_epoch - first_step
            self._end_epoch(phase, epochs, tags, logger, time.perf_counter() - epoch_started,
                            self.steps_per_epoch - first_step)
        seconds = time.perf_counter() - started
        # CPU seconds of this process next to wall seconds: on a shared machine
        # the ratio shows how much of the time the trainer actually ran.
        self.timings[phase] = {"steps": steps_run, "seconds": seconds, "cpu_seconds": time.process_time() - cpu_started,
                               "steps_per_second": steps_run / seconds if seconds > 0 else float("nan"),
                               "frames_per_second": steps_run * self.batch / seconds if seconds > 0 else float("nan")}
        self.completed.append(phase)
        self.phase, self.epoch, self.step, self.order, self.history = None, 0, 0, None, None
        self._save_checkpoint()
        if self.is_main and phase in ("vae", "adversarial"):
            which = "vae" if phase == "vae" else "vawgan"
            save_weights(self.model_dir / WEIGHT_FILES[which], self.encoder, self.decoder, self.speakers,
                         self.global_step, critic=self.critic if phase == "adversarial" else None)
            self._say(f"phase {phase}: done; weights in {self.model_dir / WEIGHT_FILES[which]}")

    def _progress_bar(self, phase: str, epochs: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        # disable=None: a bar on a terminal, nothing when the output is a file or pipe.
        return tqdm(total=self.steps_per_epoch, initial=self.step, desc=f"{phase} {self.epoch + 1}/{epochs}",
                    unit="step", leave=False, disable=None, file=sys.stderr)

    def _say(self, line: str) -> None:
        if self.is_main and self.progress:
            print(line, flush=True)

    # ------------------------------------------------------------------ checks, checkpoints, logs

    def _reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        """Average ``t`` over processes (identity in a single process)."""
        if self.distributed:
            import torch.distributed as dist

            t = t.clone()
            dist.all_reduce(t)
            t /= self.world
        return t

    def _check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` unless this epoch's losses so far and all weights are finite.

        One host synchronisation; called only at checkpoints and epoch ends.
        """
        rows = self.history[:self.step] if self.history is not None else torch.zeros(0, 1, device=self.device)
        finite_rows = torch.isfinite(rows).all(dim=1)
        weights_ok = torch.stack([torch.isfinite(p).all() for m in (self.encoder, self.decoder, self.critic)
                                  for p in m.parameters()]).all()
        flags = torch.cat([finite_rows.float(), weights_ok.float().reshape(1)])
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        flags = flags.cpu()
        if bool(flags.all()):
            return
        bad = (flags[:-1] == 0).nonzero()
        first_bad_row = int(bad[0]) if len(bad) else self.step - 1
        bad_step = self.global_step - self.step + first_bad_row + 1
        if self.last_checkpoint_step is None:
            last = "none was written yet"
        else:
            last = f"{self.checkpoint_path} (step {self.last_checkpoint_step})"
        raise TrainingDiverged(f"{self.phase} phase diverged: non-finite loss or weights at step {bad_step} "
                               f"(epoch {self.epoch + 1}); nothing after that was saved; last good checkpoint: "
                               f"{last}; lower train.learning_rate (or check the features) and run again with "
                               "--resume")

    def _save_checkpoint(self) -> None:
        self._check_finite()
        if self.is_main:
            save_checkpoint(self.checkpoint_path, self._state())
        self.last_checkpoint_step = self.global_step

    def _end_epoch(self, phase: str, epochs: int, tags: tuple[str, ...], logger: RunLogger | None,
                   seconds: float, steps: int) -> None:
        self._check_finite()
        means = self._reduce_mean(self.history.mean(dim=0)).tolist()  # the epoch's one host sync
        scalars = dict(zip(tags, means))
        self.final_scalars[phase] = scalars
        self.epoch, self.step, self.order = self.epoch + 1, 0, None
        self.epochs_logged += 1
        frames_per_second = steps * self.batch / seconds if seconds > 0 else float("nan")
        if logger is not None:
            logger.log(self.epochs_logged, {**scalars, "speed/frames_per_second": frames_per_second})
        shown = " ".join(f"{tag.split('/')[-1] if phase != 'adversarial' else tag} {value:.4g}"
                         for tag, value in scalars.items())
        self._say(f"{phase} epoch {self.epoch}/{epochs}: {shown} ({seconds:.1f} s, {frames_per_second:,.0f} frames/s)")
        if phase != "vae":
            self._warn_if_critic_is_flat(phase, epochs, scalars)

    def _warn_if_critic_is_flat(self, phase: str, epochs: int, scalars: dict[str, float]) -> None:
        """Say so (on stderr, also without progress output) when the critic scored every frame alike all epoch.

        Its input gradient is then (almost) zero, so the gradient penalty is
        (almost) (0 − 1)² = 1 and the Wasserstein estimate 0. A layer of
        ReLUs that are all inactive does this and cannot recover (no weight
        gets a gradient either); the generator then gets no gradient, and the
        adversarial phase silently only continues the VAE. A healthy critic
        is far from the thresholds (penalty 0.02–0.05, estimate 2–3 in the
        recipe runs; 0.36 and 0.13 after one epoch of a tiny test run).
        """
        penalty, wasserstein = scalars["critic/gradient_penalty"], scalars["critic/wasserstein"]
        if penalty < 0.95 or abs(wasserstein) > 1e-2:
            return
        message = (f"WARNING: {phase} epoch {self.epoch}/{epochs}: the critic scores every frame alike (gradient "
                   f"penalty {penalty:.3f}, Wasserstein estimate {wasserstein:.2g}); it has stopped learning and "
                   "the adversarial term has no gradient, so the VAW-GAN will be the VAE. Train again with "
                   "train.alpha_mode=fixed, a lower train.learning_rate or another train.seed")
        self.warnings.append(message)
        if self.is_main:
            print(message, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ random numbers

    def _randn(self, *shape_tail: int) -> torch.Tensor:
        """Standard normal numbers for the global batch, this process's share."""
        return torch.randn((self.batch, *shape_tail), generator=self.generator, device=self.device)[self.local]

    def _rand(self, *shape_tail: int) -> torch.Tensor:
        """U(0, 1) numbers for the global batch, this process's share."""
        return torch.rand((self.batch, *shape_tail), generator=self.generator, device=self.device)[self.local]

    def _targets(self, source_ids: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    # ------------------------------------------------------------------ the three kinds of steps

    def _kl_weight(self) -> float:
        """``train.kl_weight``, ramped linearly from 0 over the first ``train.kl_warmup_epochs`` of pretraining.

        A KL warm-up lets the decoder learn to use the latent before the KL
        term pulls the posterior to the prior (the usual cure for posterior
        collapse). It depends only on the phase's epoch and step, which a
        checkpoint restores, so resumed runs ramp identically.
        """
        warmup_steps = self.cfg.kl_warmup_epochs * self.steps_per_epoch
        if warmup_steps <= 0:
            return self.cfg.kl_weight
        done = self.epoch * self.steps_per_epoch + self.step + 1
        return self.cfg.kl_weight * min(1.0, done / warmup_steps)

    def _encoder_input(self, batch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees of the training rows ``batch`` (frames ``x``): ``x``, or their context windows."""
        if not self.context:
            return x
        return self.context_table[self.windows[batch]].flatten(1)

    def _encode(self, batch: torch.Tensor, x: torch.Tensor):
        """``(mu, logvar, pairs)`` of the training rows ``batch`` (frames ``x``); ``pairs`` None without parallel data.

        With parallel data a random batch of aligned pairs rides along in the
        same encoder pass: ``pairs = (their μ, target frames, target ids)``.
        """
        inputs = self._encoder_input(batch, x)
        if not self.parallel:
            return *self.train_encoder(inputs), None
        pick = torch.randint(self.num_pairs, (self.batch,), generator=self.generator, device=self.device)[self.local]
        pair_inputs = self.pair_table[self.pair_windows[pick]].flatten(1) if self.context else self.pair_source[pick]
        mu_all, logvar_all = self.train_encoder(torch.cat([inputs, pair_inputs]))
        mu, pair_mu = mu_all.split(x.shape[0])
        return mu, logvar_all[:x.shape[0]], (pair_mu, self.pair_target[pick], self.pair_target_ids[pick])

    def _vae_step(self, batch: torch.Tensor) -> torch.Tensor:
        x, speakers = self.x[batch], self.speaker_ids[batch]
        mu, logvar, pairs = self._encode(batch, x)
        z = reparameterize(mu, logvar, self._randn(mu.shape[1]))
        if pairs is None:
            reconstruction = self.train_decoder(z, speakers)
        else:  # the pairs' conversions in the same decoder pass
            reconstruction, pair_converted = self.train_decoder(torch.cat([z, pairs[0]]),
                                                                torch.cat([speakers, pairs[2]])).split(x.shape[0])
        nll, kl = vae_loss(x, reconstruction, self.decoder.log_variance, mu, logvar)
        objective = nll + (self.kl_weight_now if self.graphs else self._kl_weight()) * kl
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

    def _critic_phase_step(self, batch: torch.Tensor) -> torch.Tensor:
        """A critic step against the current (not updated) encoder and decoder."""
        x, speakers = self.x[batch], self.speaker_ids[batch]
        targets, real = self._targets(speakers, x)
        with torch.no_grad():
            mu, logvar = self.encoder(self._encoder_input(batch, x))
            fake = self.decoder(reparameterize(mu, logvar, self._randn(mu.shape[1])), targets)
        return torch.stack(self._critic_update(real, fake, targets)).detach()

    def _adversarial_step(self, batch: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        for _ in range(cfg.n_critic - 1):  # extra critic steps on random batches
            extra = torch.randint(self.num_frames, (self.batch,), generator=self.generator,
                                  device=self.device)[self.local]
            self._critic_phase_step(extra)
        x, speakers = self.x[batch], self.speaker_ids[batch]
        targets, real = self._targets(speakers, x)
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
            nll_all, adversarial_all = self._reduce_mean(torch.stack([nll, adversarial]).detach())
            alpha = adversarial_weight(nll_all, adversarial_all, "scale", cfg.alpha_value)
        else:
            alpha = adversarial_weight(nll, adversarial, "fixed", cfg.alpha_value)
        vae_objective = torch.add(nll, kl, alpha=cfg.kl_weight)  # the KL warm-up belongs to pretraining only
        loss = torch.addcmul(vae_objective, alpha, adversarial)
        scalars = [nll, kl, vae_objective, *critic_scalars, adversarial, alpha, loss]
        return self._update_encoder_decoder(loss, scalars, None if pairs is None else (pairs[1], decoded[2]))



def train_in(model_dir, config: Config, frames: FrameSet, pairs: PairSet | None, stats, device, phases,
             resume: bool, progress: bool, rank: int) -> Trainer:
    """Prepare ``model_dir`` (rank 0) and run ``phases`` of a :class:`Trainer` in it, all processes in step."""
    import torch.distributed as dist

    trainer = Trainer(config, frames, model_dir, device, progress=progress, pairs=pairs)  # checks settings first
    if rank == 0:
        prepare_model_dir(model_dir, config, stats, frames.speakers)
    if dist.is_initialized():
        dist.barrier()
    trainer.run(phases, resume=resume)
    if dist.is_initialized():
        dist.barrier()  # every process has finished before any tears the group down
    return trainer

