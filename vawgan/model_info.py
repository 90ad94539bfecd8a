"""What a model directory says about itself: its model card and the summary `vawgan info` prints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from vawgan.errors import VawganError
from vawgan.model_dir import CHECKPOINT_FILE, MEMBERS_DIR, WEIGHT_FILES, ModelDir, load_model_config
from vawgan.utils import atomic_path

CARD_FILE = "card.yaml"
# The measures a model card keeps per system, from `vawgan evaluate`'s results.csv, and how `vawgan info` shows them.
CARD_MEASURES = (("mcd", "MCD {:.2f} dB"), ("f0_rmse_cents", "F0 RMSE {:.0f} cent"), ("vuv_error", "V/UV {:.1f} %"),
                 ("gv_ratio", "GV ratio {:.2f}"), ("ms_distance", "MS distance {:.2f} dB"))


def write_model_card(model_dir: str | os.PathLike, trained_on: str, results_csv: str | os.PathLike,
                     evaluated_on: str) -> Path:
    """Write ``card.yaml``: what the model was trained on and its scores from ``vawgan evaluate``.

    ``trained_on`` and ``evaluated_on`` are one-line descriptions of the data
    (corpus, speakers, split); ``results_csv`` is the ``results.csv`` that
    ``vawgan evaluate`` wrote for this model's conversions (wav level). The
    training protocol is the model's own ``corpus.protocol``.
    """
    import csv

    model_dir = Path(model_dir)
    with open(results_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    scores = {row["system"]: {key: round(float(row[key]), 4) for key, _ in CARD_MEASURES if row.get(key, "") != ""}
              for row in rows}
    card = {"trained_on": trained_on, "protocol": load_model_config(model_dir).corpus.protocol,
            "evaluated_on": evaluated_on, "scores": scores}
    with atomic_path(model_dir / CARD_FILE) as tmp:
        Path(tmp).write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
    return model_dir / CARD_FILE


def card_lines(model_dir: str | os.PathLike) -> list[str]:
    """``vawgan info``'s lines for a model card (none when the directory has no ``card.yaml``)."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return []
    try:
        card = yaml.safe_load(path.read_text())
        lines = [f"trained on: {card['trained_on']} ({card['protocol'].replace('_', '-')} protocol)",
                 f"scores on {card['evaluated_on']}:"]
        for system, measures in card["scores"].items():
            shown = [fmt.format(measures[key]) for key, fmt in CARD_MEASURES if key in measures]
            lines.append(f"  {system}: {', '.join(shown)}")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError):
        raise VawganError(f"{path}: not a readable model card; delete it or write it again "
                          "(vawgan.model_info.write_model_card)") from None
    return lines


def describe_model(model: ModelDir | str | os.PathLike) -> str:
    """A readable summary of a model directory: speakers, features, networks, schedule and trained weights.

    What ``vawgan info`` prints. Every weights file present is loaded, so a
    damaged or inconsistent directory raises the same :class:`VawganError`
    that ``vawgan convert`` would; weights a phase has not written yet are
    reported as missing, and an unfinished training run by its checkpoint.
    """
    from vawgan.checkpoint import load_checkpoint
    from vawgan.features.world import alpha_of

    model = model if isinstance(model, ModelDir) else ModelDir(model)
    model_dir, config, stats, speakers = model.path, model.config, model.stats, model.speakers
    f, m, t = config.features, config.model, config.train

    lines = [f"model directory: {model_dir.resolve()}", *card_lines(model_dir), f"speakers ({len(speakers)}):"]
    for name in speakers:
        floor, ceil = f.f0_ranges.get(name, (f.f0_floor, f.f0_ceil))
        lf0 = (f"F0 mean {np.exp(stats.lf0_mean[name]):.1f} Hz, log-F0 std {stats.lf0_std[name]:.3f}"
               if name in stats.lf0_mean else "no F0 statistics")
        frames = f"{stats.frames[name]:,} speech frames" if name in stats.frames else "frames not counted"
        lines.append(f"  {name}: {frames}, {lf0}, F0 search range {floor:g}-{ceil:g} Hz")
    aperiodicity = "every frame" if f.aperiodicity_step == 1 else f"1 frame in {f.aperiodicity_step}"
    lines.append(f"features: {f.sample_rate} Hz, {f.frame_period:g} ms frames, F0 by {f.f0_method}, "
                 f"D4C on {aperiodicity}, mel-cepstrum c0..c{f.mcep_order} (alpha {alpha_of(f):.3f}), "
                 f"silence below {f.silence_threshold_db:g} dB")
    encoder_input = m.input_dim * (2 * m.context_frames + 1)
    context = f" (frame ± {m.context_frames})" if m.context_frames else ""
    lines.append(f"encoder: {' → '.join(map(str, [encoder_input, *m.encoder_hidden]))} → μ, log σ² of "
                 f"{m.latent_dim}{context}")
    lines.append(f"decoder: {' → '.join(map(str, [m.latent_dim, *m.decoder_hidden, m.input_dim]))}, "
                 f"{m.speaker_dim}-dim speaker code ({m.decoder_conditioning.replace('_', ' ')}), "
                 f"{m.decoder_variance} variance")
    lines.append(f"critic: {' → '.join(map(str, [m.input_dim, *m.critic_hidden, 1]))}"
                 + (", conditioned on the speaker" if m.critic_conditional else ""))
    lines.append(f"schedule: {t.vae_epochs} VAE + {t.critic_epochs} critic + {t.adversarial_epochs} adversarial "
                 f"epochs, batch {t.batch_size}, KL weight {t.kl_weight:g}, parallel weight {t.parallel_weight:g}, "
                 f"seed {t.seed}, {config.corpus.protocol.replace('_', '-')} protocol")
    for which, file_name in WEIGHT_FILES.items():
        if model.has_weights(which):
            loaded = model.networks(which)  # checks the file against config and speakers
            numpy_only = "" if (model_dir / file_name).is_file() else " (its NumPy copy only)"
            lines.append(f"{file_name}: step {loaded.step:,}{numpy_only}")
        else:
            phase = "vae" if which == "vae" else "adversarial"
            lines.append(f"{file_name}: not written yet (the {phase} phase has not finished)")
    if (model_dir / CHECKPOINT_FILE).is_file():
        state = load_checkpoint(model_dir / CHECKPOINT_FILE)
        completed = list(state.get("completed", []))
        line = f"{CHECKPOINT_FILE}: phases finished: {', '.join(completed) or 'none'}"
        if state.get("phase") and state["phase"] not in completed:
            line += (f"; {state['phase']} phase interrupted in epoch {state.get('epoch', 0) + 1} at step "
                     f"{state.get('step', 0)} (continue with `vawgan train --resume`)")
        lines.append(line)
    members = [model.member(path) for path in model.member_paths()]
    if members:
        lines.append(f"ensemble: this model and {len(members)} member(s) in {MEMBERS_DIR}/, averaged by conversion")
        for member in members:
            weights = [which for which in WEIGHT_FILES if member.has_weights(which)]
            lines.append(f"  {member.path.name}: seed {member.config.train.seed}, "
                         f"weights {', '.join(weights) or 'none yet'}")
    return "\n".join(lines)
