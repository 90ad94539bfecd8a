"""DCGAN, MLP GAN and BEGAN on digit images: training, sampling, evaluation, plots.

One trainer serves the three models; they differ in their networks and in
their step function (:func:`vawgan.gans.losses.bce_gan_step` or
:func:`vawgan.gans.losses.began_step`). Every ``eval_every`` epochs the
generated digits are scored with :class:`~vawgan.gans.metrics.DigitEvaluator`
and checked by :func:`~vawgan.gans.metrics.detect_collapse`; a collapse is
logged as a warning at once and repeated in the final report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from vawgan.errors import VawganError
from vawgan.gans import plots
from vawgan.gans.config import BeganConfig, ImageGanConfig
from vawgan.gans.data import load_digit_images
from vawgan.gans.losses import began_step, bce_gan_step
from vawgan.gans.metrics import DigitEvaluator, DigitScores, detect_collapse
from vawgan.gans.models import (BeganDiscriminator, BeganGenerator, DCGANDiscriminator, DCGANGenerator,
                                MLPDiscriminator, MLPGenerator, sample_noise)
from vawgan.gans.runs import (adam, load_run, log_step_scalars, restore_run_state, run_logging, save_run_state,
                              start_run, write_report)
from vawgan.runlog import RunLogger
from vawgan.utils import atomic_path, configure_cpu, seed_everything

KINDS = ("dcgan", "mlp")
CURVE_TAGS = {
    "dcgan": ["gan/d_real", "gan/d_fake", "gan/d_accuracy", "gan/g_loss"],
    "mlp": ["gan/d_real", "gan/d_fake", "gan/d_accuracy", "gan/g_loss"],
    "began": ["gan/loss_real", "gan/g_loss", "gan/d_loss", "gan/k", "gan/m_global"],
}


def model_kind(config: ImageGanConfig | BeganConfig) -> str:
    if isinstance(config, BeganConfig):
        return "began"
    if config.model.kind not in KINDS:
        raise VawganError(f"model.kind {config.model.kind!r}: expected one of {', '.join(KINDS)}")
    return config.model.kind


def build_networks(config: ImageGanConfig | BeganConfig, device):
    """The generator and discriminator named by the config."""
    m = config.model
    kind = model_kind(config)
    if kind == "began":
        networks = BeganGenerator(m.noise_dim, m.channels), BeganDiscriminator(m.hidden, m.channels)
    elif kind == "dcgan":
        networks = DCGANGenerator(m.noise_dim), DCGANDiscriminator(m.leaky_slope)
    else:
        networks = (MLPGenerator(m.noise_dim, m.mlp_hidden, m.leaky_slope),
                    MLPDiscriminator(m.mlp_hidden, m.leaky_slope))
    return networks[0].to(device), networks[1].to(device)


@torch.no_grad()
def generate(generator, n: int, device, seed: int = 1234, batch_size: int = 500) -> np.ndarray:
    """``n`` images (N, 1, 28, 28) from fixed noise, with the generator in evaluation mode."""
    was_training = generator.training
    generator.eval()
    noise = sample_noise(n, generator.noise_dim, generator=torch.Generator().manual_seed(seed))
    images = [generator(noise[i:i + batch_size].to(device)).cpu() for i in range(0, n, batch_size)]
    generator.train(was_training)
    return torch.cat(images).numpy()


def scores_line(s: DigitScores) -> str:
    return (f"classes {s.classes_present}/10, class entropy {s.class_entropy:.3f}, "
            f"confidence {s.mean_confidence:.3f}, Frechet {s.frechet:.2f}, diversity {s.diversity:.2f}")


def train(config: ImageGanConfig | BeganConfig, run_dir: Path, device, resume: bool = False) -> dict:
    """Train the model the config names; return the final report (also written to ``run_dir``)."""
    run_dir = Path(run_dir)
    kind = model_kind(config)
    t = config.train
    seed_everything(t.seed)
    configure_cpu(t.num_threads)
    digits = load_digit_images(config.data.mnist_dir, config.data.allow_fallback)
    train_images = torch.from_numpy(digits.train_images[: config.data.max_train_images]).to(device)
    generator, discriminator = build_networks(config, device)
    batches = len(train_images) // t.batch_size
    if batches == 0:
        raise VawganError(f"train.batch_size {t.batch_size} is larger than the {len(train_images)} training images")
    state = start_run(run_dir, config, resume)  # after the config and data have proved usable
    opt_g = adam(generator, t.learning_rate, t.adam_betas)
    opt_d = adam(discriminator, t.learning_rate, t.adam_betas)
    modules = {"generator": generator, "discriminator": discriminator, "opt_g": opt_g, "opt_d": opt_d}
    epoch, step = restore_run_state(state, modules) if state else (0, 0)
    k = torch.tensor(state.get("k", 0.0) if state else 0.0, device=device)
    elapsed = state.get("train_seconds", 0.0) if state else 0.0
    collapses: list[dict] = state.get("collapses", []) if state else []
    noise_fn = lambda n: sample_noise(n, generator.noise_dim, device)  # noqa: E731
    with run_logging(run_dir) as log, RunLogger(run_dir, tensorboard=t.tensorboard) as logger:
        log.info("%s on %s: %d training images, %d steps per epoch, device %s", kind, digits.source,
                 len(train_images), batches, device)
        # Draws no global random numbers, so a resumed run continues with the checkpoint's.
        evaluator = DigitEvaluator(digits, device, t.eval_samples, t.seed, t.classifier_steps)
        log.info("digit classifier: %.1f %% accurate on the %d real test images; real-vs-real floor: %s",
                 100 * evaluator.classifier_accuracy, len(digits.test_images), scores_line(evaluator.floor))
        scores = None
        while epoch < t.epochs:
            started = time.perf_counter()
            generator.train()
            discriminator.train()
            order = torch.randperm(len(train_images), device=device)
            first_step, records = step, []
            for b in range(batches):
                real = train_images[order[b * t.batch_size:(b + 1) * t.batch_size]]
                if kind == "began":
                    record, k = began_step(generator, discriminator, opt_g, opt_d, real, noise_fn, k, t.gamma,
                                           t.lambda_k)
                else:
                    record = bce_gan_step(generator, discriminator, opt_g, opt_d, real, noise_fn)
                records.append(record)
                step += 1
            epoch += 1
            means = log_step_scalars(logger, first_step, "gan", records)
            elapsed += time.perf_counter() - started
            log.info("epoch %d/%d step %d (%.0f s): %s", epoch, t.epochs, step, elapsed,
                     ", ".join(f"{name} {v:.4g}" for name, v in means.items()))
            if epoch in t.sample_epochs or epoch == t.epochs:
                plots.image_grid(generate(generator, 100, device), f"{kind}, epoch {epoch}",
                                 run_dir / "samples" / f"epoch_{epoch:04d}.png")
            if epoch % t.eval_every == 0 or epoch == t.epochs:
                scores = evaluator.score(generate(generator, evaluator.n, device))
                logger.log(step, {f"eval/{name}": value for name, value in scores.as_dict().items()
                                  if name != "class_histogram"})
                log.info("epoch %d digit metrics: %s", epoch, scores_line(scores))
                reason = detect_collapse(scores, evaluator.floor, t.collapse_min_classes, t.collapse_min_diversity)
                if reason:
                    collapses.append({"epoch": epoch, "reason": reason})
                    log.warning("WARNING: mode collapse suspected at epoch %d: %s", epoch, reason)
            save_run_state(run_dir, epoch, step, modules, k=float(k), train_seconds=elapsed, collapses=collapses)
        if scores is None:  # resumed a finished run: score it once more for the report
            scores = evaluator.score(generate(generator, evaluator.n, device))
        final_collapse = detect_collapse(scores, evaluator.floor, t.collapse_min_classes, t.collapse_min_diversity)
        report = {"model": kind, "data": digits.source, "epochs": epoch, "steps": step,
                  "train_seconds": round(elapsed, 1), "device": str(device),
                  "classifier_test_accuracy": evaluator.classifier_accuracy, "n_eval": evaluator.n,
                  "generated": scores.as_dict(), "real_floor": evaluator.floor.as_dict(),
                  "collapsed_at_end": final_collapse, "collapse_warnings": collapses}
        lines = [f"{kind} after {epoch} epochs ({step} steps, {elapsed:.0f} s) on {digits.source}",
                 f"  generated ({evaluator.n}): {scores_line(scores)}",
                 f"  real floor ({evaluator.n}): {scores_line(evaluator.floor)}",
                 f"  mode collapse: {'YES - ' + final_collapse if final_collapse else 'not detected at the end'}"]
        if collapses:
            lines.append("  collapse warnings during training: "
                         + "; ".join(f"epoch {c['epoch']}: {c['reason']}" for c in collapses))
        write_report(run_dir, report, "\n".join(lines))
        for line in lines:
            log.info("%s", line)
    plot(run_dir, type(config), device)
    return report


def load_generator(run_dir: Path, config_cls, device):
    config, state = load_run(Path(run_dir), config_cls, device)
    generator, _ = build_networks(config, device)
    generator.load_state_dict(state["generator"])
    return config, generator.eval(), state


def sample(run_dir: Path, config_cls, n: int, output: Path, device, seed: int = 1234) -> None:
    """Write ``n`` generated images: a PNG grid when ``output`` ends in .png, else a .npy array."""
    config, generator, state = load_generator(run_dir, config_cls, device)
    images = generate(generator, n, device, seed)
    if Path(output).suffix == ".png":
        plots.image_grid(images, f"{model_kind(config)}, epoch {state['epoch']}", output)
    else:
        with atomic_path(output) as tmp:
            np.save(tmp, images)


def evaluate(run_dir: Path, config_cls, device) -> tuple[DigitScores, DigitScores, str | None]:
    """Score a trained run's generator: (generated scores, real floor, collapse reason or None)."""
    config, generator, _ = load_generator(run_dir, config_cls, device)
    digits = load_digit_images(config.data.mnist_dir, config.data.allow_fallback)
    evaluator = DigitEvaluator(digits, device, config.train.eval_samples, config.train.seed,
                               config.train.classifier_steps)
    scores = evaluator.score(generate(generator, evaluator.n, device))
    t = config.train
    return scores, evaluator.floor, detect_collapse(scores, evaluator.floor, t.collapse_min_classes,
                                                    t.collapse_min_diversity)


def plot(run_dir: Path, config_cls, device) -> list[Path]:
    """Loss curves (raw and moving average), BEGAN's M_global and k, and a final sample grid."""
    run_dir = Path(run_dir)
    config, generator, state = load_generator(run_dir, config_cls, device)
    kind = model_kind(config)
    written = [run_dir / "losses.png", run_dir / "samples" / "final.png"]
    plots.loss_curves(run_dir / "metrics.csv", CURVE_TAGS[kind], written[0], title=f"{kind} training")
    plots.image_grid(generate(generator, 100, device), f"{kind}, epoch {state['epoch']}", written[1])
    if kind == "began":
        written.append(run_dir / "m_global.png")
        plots.loss_curves(run_dir / "metrics.csv", ["gan/m_global", "gan/k"], written[-1],
                          title="BEGAN convergence measure M_global and k_t")
    return written
