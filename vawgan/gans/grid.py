"""Vanilla and Coulomb GAN on the 25-Gaussian grid: training, sampling, evaluation, plots."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vawgan.errors import VawganError
from vawgan.gans import plots
from vawgan.gans.config import Grid2DConfig
from vawgan.gans.data import grid_centres, make_grid_data
from vawgan.gans.losses import bce_gan_step, coulomb_step
from vawgan.gans.metrics import ModeCoverage, fit_gmm, mode_coverage
from vawgan.gans.models import grid_discriminator, grid_generator, sample_noise
from vawgan.gans.runs import (adam, load_run, log_step_scalars, restore_run_state, run_logging, save_run_state,
                              start_run, write_report)
from vawgan.runlog import RunLogger
from vawgan.utils import atomic_path, configure_cpu, seed_everything

KINDS = ("coulomb", "vanilla")


def build_networks(config: Grid2DConfig, device):
    if config.model.kind not in KINDS:
        raise VawganError(f"model.kind {config.model.kind!r}: expected one of {', '.join(KINDS)}")
    m = config.model
    return (grid_generator(m.noise_dim, m.hidden, m.layers).to(device),
            grid_discriminator(m.hidden, m.layers).to(device))


def epsilon_at(config: Grid2DConfig, step: int) -> float:
    """The Plummer softening at iteration ``step``: ``epsilon`` halved every ``epsilon_halve_every`` steps,
    never below ``epsilon_min``."""
    t = config.train
    return max(t.epsilon * 0.5 ** (step // t.epsilon_halve_every), t.epsilon_min)


@torch.no_grad()
def generate(generator, n: int, noise_dim: int, device, seed: int = 1234) -> np.ndarray:
    """``n`` generated points (fixed noise seed, so evaluations are comparable across epochs)."""
    noise = sample_noise(n, noise_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return generator(noise).cpu().numpy()


def evaluate_points(config: Grid2DConfig, samples: np.ndarray) -> ModeCoverage:
    return mode_coverage(samples, grid_centres(config.data.grid_values), float(np.sqrt(config.data.variance)),
                         config.train.mode_share)


def coverage_line(c: ModeCoverage, separator: str = " ") -> str:
    """Modes and high-quality share, then (after ``separator``: a newline for plot titles) the rest's split."""
    return (f"modes {c.modes}/{c.n_modes}, high-quality {100 * c.high_quality:.1f} %{separator}"
            f"(3-6 sigma out {100 * c.near_miss:.1f} %, farther {100 * c.far_out:.1f} %)")


def train(config: Grid2DConfig, run_dir: Path, device, resume: bool = False) -> dict:
    """Train the GAN named by ``config.model.kind``; return the final report (also written to ``run_dir``)."""
    run_dir = Path(run_dir)
    t = config.train
    seed_everything(t.seed)
    configure_cpu(t.num_threads)
    data = torch.from_numpy(make_grid_data(config.data.grid_values, config.data.variance,
                                           config.data.samples_per_mode, t.seed)).to(device)
    centres = grid_centres(config.data.grid_values)
    generator, discriminator = build_networks(config, device)
    batches = len(data) // t.batch_size
    if batches == 0:
        raise VawganError(f"train.batch_size {t.batch_size} is larger than the {len(data)} training points")
    state = start_run(run_dir, config, resume)  # after the config has proved usable: no stray run dirs
    opt_g = adam(generator, t.learning_rate, t.adam_betas)
    opt_d = adam(discriminator, t.learning_rate, t.adam_betas)
    decay = lambda step: 1.0 / (1.0 + t.lr_decay * step)  # noqa: E731
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, decay)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, decay)
    modules = {"generator": generator, "discriminator": discriminator, "opt_g": opt_g, "opt_d": opt_d,
               "sched_g": sched_g, "sched_d": sched_d}
    epoch, step = restore_run_state(state, modules) if state else (0, 0)
    elapsed = state.get("train_seconds", 0.0) if state else 0.0
    start_epoch = epoch
    noise_fn = lambda n: sample_noise(n, config.model.noise_dim, device)  # noqa: E731
    frames_dir = run_dir / "frames"
    with run_logging(run_dir) as log, RunLogger(run_dir, tensorboard=t.tensorboard) as logger:
        log.info("%s GAN on the 5x5 grid: %d points, %d iterations per epoch, device %s",
                 config.model.kind, len(data), batches, device)
        while epoch < t.epochs:
            started = time.perf_counter()
            generator.train()
            order = torch.randperm(len(data), device=device)
            first_step, records = step, []
            for b in range(batches):
                real = data[order[b * t.batch_size:(b + 1) * t.batch_size]]
                if config.model.kind == "coulomb":
                    records.append(coulomb_step(generator, discriminator, opt_g, opt_d, real,
                                                noise_fn(t.batch_size), epsilon_at(config, step),
                                                t.plummer_dim))
                else:
                    records.append(bce_gan_step(generator, discriminator, opt_g, opt_d, real, noise_fn))
                sched_g.step()
                sched_d.step()
                step += 1
            epoch += 1
            means = log_step_scalars(logger, first_step, "grid", records)
            elapsed += time.perf_counter() - started
            samples = generate(generator, t.eval_samples, config.model.noise_dim, device)
            coverage = evaluate_points(config, samples)
            logger.log(step, {"eval/modes": coverage.modes, "eval/high_quality": coverage.high_quality,
                              "eval/near_miss": coverage.near_miss,
                              "train/epsilon": epsilon_at(config, step), "train/lr": sched_g.get_last_lr()[0]})
            log.info("epoch %d/%d step %d (%.0f s): %s; %s", epoch, t.epochs, step, elapsed,
                     coverage_line(coverage), ", ".join(f"{k} {v:.4g}" for k, v in means.items()))
            if t.frames:
                plots.grid_frame(samples[:3000], centres,
                                 f"{config.model.kind} GAN, epoch {epoch}: " + coverage_line(coverage, "\n"),
                                 frames_dir / f"epoch_{epoch:04d}.png")
            save_run_state(run_dir, epoch, step, modules, train_seconds=elapsed)
        if epoch == start_epoch:  # resumed a finished run: evaluate it once more for the report
            coverage = evaluate_points(config, generate(generator, t.eval_samples, config.model.noise_dim, device))
        report = {"model": config.model.kind, "epochs": epoch, "steps": step, "train_seconds": round(elapsed, 1),
                  "eval_samples": t.eval_samples, "modes": coverage.modes, "n_modes": coverage.n_modes,
                  "high_quality": coverage.high_quality, "near_miss": coverage.near_miss,
                  "mode_counts": coverage.counts, "device": str(device)}
        text = (f"{config.model.kind} GAN after {epoch} epochs ({step} iterations, {elapsed:.0f} s of training): "
                f"{coverage_line(coverage)} on {t.eval_samples} samples")
        write_report(run_dir, report, text)
        log.info("%s", text)
    plot(run_dir, device)
    return report


def load_generator(run_dir: Path, device):
    config, state = load_run(Path(run_dir), Grid2DConfig, device)
    generator, discriminator = build_networks(config, device)
    generator.load_state_dict(state["generator"])
    discriminator.load_state_dict(state["discriminator"])
    return config, generator.eval(), discriminator.eval(), state


def sample(run_dir: Path, n: int, output: Path, device, seed: int = 1234) -> None:
    """Write ``n`` generated points to ``output`` (.npy)."""
    config, generator, _, _ = load_generator(run_dir, device)
    with atomic_path(output) as tmp:
        np.save(tmp, generate(generator, n, config.model.noise_dim, device, seed))


def evaluate(run_dir: Path, device, n: int | None = None) -> ModeCoverage:
    """Mode coverage of a trained run's generator on ``n`` samples (the config's eval_samples by default)."""
    config, generator, _, _ = load_generator(run_dir, device)
    return evaluate_points(config, generate(generator, n or config.train.eval_samples, config.model.noise_dim,
                                            device))


@torch.no_grad()
def plot(run_dir: Path, device) -> list[Path]:
    """Samples + fitted GMM, the discriminator's field with real and fake points, the GIF, loss curves."""
    run_dir = Path(run_dir)
    config, generator, discriminator, state = load_generator(run_dir, device)
    kind = config.model.kind
    samples = generate(generator, config.train.eval_samples, config.model.noise_dim, device)
    coverage = evaluate_points(config, samples)
    centres = grid_centres(config.data.grid_values)
    written = [run_dir / "samples_gmm.png", run_dir / "discriminator_field.png", run_dir / "losses.png"]
    plots.grid_samples_with_gmm(samples, centres, fit_gmm(samples, len(centres)),
                                f"{kind} GAN, epoch {state['epoch']}: " + coverage_line(coverage, "\n"), written[0])
    axis = np.linspace(-plots.GRID_LIMIT, plots.GRID_LIMIT, 200, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    plane = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1)).to(device)
    field = discriminator(plane).cpu().numpy().reshape(xx.shape)
    real = make_grid_data(config.data.grid_values, config.data.variance, 40, seed=1)
    label = "D(x): learned potential" if kind == "coulomb" else "D(x): logit of 'real'"
    plots.potential_heatmap(field, plots.GRID_LIMIT, real, samples[:1000], f"{kind} GAN discriminator",
                            label, written[1])
    tags = ["grid/d_loss", "grid/g_loss"] if kind == "coulomb" else [
        "grid/d_real", "grid/d_fake", "grid/d_accuracy", "grid/g_loss"]
    plots.loss_curves(run_dir / "metrics.csv", tags + ["eval/modes", "eval/high_quality"], written[2],
                      title=f"{kind} GAN on the grid")
    frames = sorted((run_dir / "frames").glob("epoch_*.png"))
    if frames:
        written.append(run_dir / "training.gif")
        plots.assemble_gif(frames, written[-1])
    return written
