"""The :class:`Trainer`: the phases in order, their epochs and steps, checkpoints, logs and printed lines.

What one step computes lives in :mod:`vawgan.training.steps`, what a
checkpoint holds in :mod:`vawgan.training.checkpoints`.
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
from vawgan.model_dir import CHECKPOINT_FILE, WEIGHT_FILES, prepare_model_dir
from vawgan.runlog import RunLogger
from vawgan.training.checkpoints import check_finite, restore_training_state, training_state
from vawgan.training.checks import check_settings
from vawgan.training.distributed import reduce_mean
from vawgan.training.steps import GraphedStep, TrainingSteps
from vawgan.utils import configure_cpu, seed_everything
from vawgan.weights import save_weights

PHASES = ("vae", "critic", "adversarial")


class Trainer:
    """Runs the training phases on a :class:`~vawgan.data.FrameSet` into a model directory.

    The model directory must already hold ``config.yaml``, ``stats.npz`` and
    ``speakers.txt`` (:func:`vawgan.model_dir.prepare_model_dir`); the trainer
    adds ``checkpoint.pt``, ``vae.pt``, ``vawgan.pt`` and the logs. Use
    :meth:`run`. Inside ``torchrun`` (the default process group initialised),
    every process runs the same ``Trainer`` on its share of each batch.
    ``pairs`` (aligned parallel frames, :func:`vawgan.data.load_pairs`) is
    needed when ``train.parallel_weight`` > 0 and ignored otherwise.

    The networks, their optimizers, the data on the device and the random
    generator are its ``steps`` (:class:`~vawgan.training.steps.TrainingSteps`);
    the trainer holds the position in training, which its checkpoints save
    (:mod:`vawgan.training.checkpoints`).
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
        check_settings(config, frames, pairs, self.world)

        self.batch = cfg.batch_size  # global batch
        self.num_frames = frames.num_frames
        self.steps_per_epoch = self.num_frames // self.batch  # the last partial batch is dropped

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

        seed_everything(cfg.seed)
        self.steps = TrainingSteps(config, frames, pairs, self.device, self.rank, self.world, self.distributed,
                                   self.graphs, self._kl_weight)
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

    @property
    def checkpoint_path(self) -> Path:
        return self.model_dir / CHECKPOINT_FILE

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
            restore_training_state(self, load_checkpoint(self.checkpoint_path, map_location="cpu"))
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
                with matmul_precision(self.tf32):
                    self._run_phase(phase, logger)
        finally:
            if logger is not None:
                logger.close()
        return self.final_scalars

    def _run_phase(self, phase: str, logger: RunLogger | None) -> None:
        cfg = self.cfg
        epochs = {"vae": cfg.vae_epochs, "critic": cfg.critic_epochs, "adversarial": cfg.adversarial_epochs}[phase]
        step_fn = {"vae": self.steps.vae_step, "critic": self.steps.critic_step,
                   "adversarial": self.steps.adversarial_step}[phase]
        tags = self.steps.tags[phase]
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
        run_step = GraphedStep(step_fn, self.steps.generator) if self.graphs else step_fn
        sets_kl_weight = self.graphs and phase == "vae"  # the captured VAE step reads it from kl_weight_now
        pairs_note = f", + {self.batch} of {self.steps.num_pairs} parallel pairs per step"
        self._say(f"phase {phase}: {epochs} epochs x {self.steps_per_epoch} steps of {self.batch} frames "
                  f"({self.num_frames} frames, {self.num_speakers} speaker(s), device {self.device}"
                  f"{pairs_note if self.steps.parallel and phase != 'critic' else ''}"
                  f"{f', encoder context of {self.steps.context} frames each side' if self.steps.context else ''}"
                  f"{', CUDA graphs' if self.graphs else ''}{', TF32 products' if self.tf32 else ''}"
                  f"{f', {self.world} processes' if self.world > 1 else ''})")
        started, cpu_started, steps_run = time.perf_counter(), time.process_time(), 0
        while self.epoch < epochs:
            if self.order is None:
                self.order = torch.randperm(self.num_frames, generator=self.steps.generator, device=self.device)
            epoch_started, first_step = time.perf_counter(), self.step
            bar = self._progress_bar(phase, epochs)
            with autocast:
                for i in range(self.step, self.steps_per_epoch):
                    batch = self.order[i * self.batch:(i + 1) * self.batch][self.steps.local]
                    if sets_kl_weight:
                        self.steps.kl_weight_now.fill_(self._kl_weight())
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
        self.timings[phase] = phase_timing(steps_run, self.batch, seconds, time.process_time() - cpu_started)
        self.completed.append(phase)
        self.phase, self.epoch, self.step, self.order, self.history = None, 0, 0, None, None
        self._save_checkpoint()
        if self.is_main and phase in ("vae", "adversarial"):
            which = "vae" if phase == "vae" else "vawgan"
            save_weights(self.model_dir / WEIGHT_FILES[which], self.steps.encoder, self.steps.decoder, self.speakers,
                         self.global_step, critic=self.steps.critic if phase == "adversarial" else None)
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

    def _save_checkpoint(self) -> None:
        check_finite(self)
        if self.is_main:
            save_checkpoint(self.checkpoint_path, training_state(self))
        self.last_checkpoint_step = self.global_step

    def _end_epoch(self, phase: str, epochs: int, tags: tuple[str, ...], logger: RunLogger | None,
                   seconds: float, steps: int) -> None:
        check_finite(self)
        means = reduce_mean(self.history.mean(dim=0), self.distributed, self.world).tolist()  # one host sync
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
        warning = flat_critic_warning(phase, self.epoch, epochs, scalars) if phase != "vae" else None
        if warning is not None:
            self.warnings.append(warning)
            if self.is_main:
                print(warning, file=sys.stderr, flush=True)

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


@contextlib.contextmanager
def matmul_precision(tf32: bool):
    """TensorFloat-32 float32 matrix products inside the block if ``tf32``; the setting is restored after.

    TF32 keeps float32's range with a 10-bit mantissa. On an H100 it runs
    this model's small products as single tensor-core kernels instead of
    split-K float32 ones: captured steps 19-30 % faster. Off by default:
    over five seeds its models converted 0.08 dB (VAE) and 0.11 dB
    (VAW-GAN) worse on average, within the seeds' spread (docs/training.md, "On
    a GPU"). The setting is process-wide, hence only while training runs.
    """
    before = torch.get_float32_matmul_precision()
    if tf32:
        torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def flat_critic_warning(phase: str, epoch: int, epochs: int, scalars: dict[str, float]) -> str | None:
    """The warning when the critic scored every frame alike all ``epoch`` (1-based), else None.

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
        return None
    return (f"WARNING: {phase} epoch {epoch}/{epochs}: the critic scores every frame alike (gradient "
            f"penalty {penalty:.3f}, Wasserstein estimate {wasserstein:.2g}); it has stopped learning and "
            "the adversarial term has no gradient, so the VAW-GAN will be the VAE. Train again with "
            "train.alpha_mode=fixed, a lower train.learning_rate or another train.seed")


def phase_timing(steps: int, batch: int, seconds: float, cpu_seconds: float) -> dict[str, float]:
    """A phase's ``steps`` of ``batch`` frames in ``seconds``: the :attr:`Trainer.timings` entry.

    CPU seconds of this process next to wall seconds: on a shared machine the
    ratio shows how much of the time the trainer actually ran.
    """
    return {"steps": steps, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "steps_per_second": steps / seconds if seconds > 0 else float("nan"),
            "frames_per_second": steps * batch / seconds if seconds > 0 else float("nan")}


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
