"""Gather the data of the evaluation figures from a recipe's outputs and draw them (``vawgan plot``).

The feature-level figures (scatter, GV, modulation spectrum, mel-cepstral
trajectory, F0 contour and F0 histograms) use the model's own outputs, not
re-analysed audio: the sentences of one speaker pair are converted with the
VAE weights (``vae.pt``) and the VAW-GAN weights (``vawgan.pt``) of the same
model directory — also with the VAE plus a half-strength GV postfilter, and
with the GMM baseline when its model is there — and compared with the natural
target's features of the same sentences (speech frames only). That isolates
what the adversarial fine-tuning did to the mel-cepstra from vocoder effects.
Spectrograms are drawn from the wavs of recipe stage 6, each re-analysed with
WORLD and warped onto the natural target's frames along the DTW path between
its mel-cepstra and the target's, so that all panels share the target's time
axis, with each wav's F0 drawn over its spectrogram. Every figure's title
names the speaker pair, the manifest's split and the level (features or wavs).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from vawgan.alignment import align_speakers
from vawgan.audio import load_audio
from vawgan.baselines.gmm import PairModels
from vawgan.config import FeatureConfig
from vawgan.convert import Converter
from vawgan.corpus import parallel_pairs, read_manifest
from vawgan.errors import VawganError
from vawgan.evaluate import plots
from vawgan.evaluate.metrics import global_variance, modulation_spectrum
from vawgan.evaluate.report import POSTFILTER_COMPARISON, model_system, split_pair_name, system_outputs
from vawgan.features.store import UtteranceFeatures, feature_path, load_features
from vawgan.features.world import analyze
from vawgan.model_dir import load_model_config


def _pair_sentences(utterances, source: str, target: str, utt_id: str | None):
    pairs = parallel_pairs(utterances, source, target, split=None)
    if not pairs:
        raise VawganError(f"no sentence spoken by both {source} and {target} in the manifest; "
                          "pick a speaker pair of a parallel corpus (--source/--target)")
    if utt_id is not None and utt_id not in {s.utt_id for s, _ in pairs}:
        raise VawganError(f"--utt {utt_id}: not a sentence of both {source} and {target} in the manifest; "
                          f"choose one of {', '.join(s.utt_id for s, _ in pairs)}")
    return pairs, utt_id or pairs[0][0].utt_id


def _converted_features(model_dir, feature_dir, gmm_dir, pairs, source: str, target: str):
    """``{label: [UtteranceFeatures per sentence]}`` for natural target, VAE, VAW-GAN (and GMM), plus the sources."""
    sources = [load_features(feature_path(feature_dir, source, s.utt_id)) for s, _ in pairs]
    converters = {which: Converter(model_dir, which=which, device="cpu") for which in ("vae", "vawgan")}
    stats = converters["vae"].model.stats
    which, alpha = model_system(POSTFILTER_COMPARISON)
    if target in stats.speaker_gv:  # statistics written before the GV existed cannot drive the postfilter
        converters[POSTFILTER_COMPARISON] = Converter(model_dir, which=which, device="cpu", gv_postfilter=alpha)
    gmms = PairModels(gmm_dir, stats)
    outputs = [system_outputs(f, source, target, converters, gmms) for f in sources]
    series = {"natural target": [load_features(feature_path(feature_dir, target, t.utt_id)) for _, t in pairs]}
    for system, label in (("vae", "VAE"), (POSTFILTER_COMPARISON, f"VAE + GV postfilter α {alpha:g}"),
                          ("vawgan", "VAW-GAN"), ("gmm", "GMM")):
        if system in outputs[0]:
            series[label] = [out[system] for out in outputs]
    return sources, series


def _speech_frames(feats_list, masks) -> np.ndarray:
    return np.vstack([np.asarray(f.mcep, dtype=np.float64)[m] for f, m in zip(feats_list, masks)])


def dtw_frame_map(moving, fixed) -> np.ndarray:
    """For each frame of ``fixed``, the frame of ``moving`` (the same sentence) that DTW pairs it with.

    Both are :class:`UtteranceFeatures`; the path is :func:`align_speakers`'s on
    their mel-cepstra, so two voices align on what they say. ``moving``'s frames
    taken in this order lie on ``fixed``'s time axis.
    """
    moving_idx, fixed_idx = align_speakers(moving.mcep[:, 1:], fixed.mcep[:, 1:])
    frames = np.empty(fixed.num_frames, dtype=int)
    frames[fixed_idx] = moving_idx
    return frames


def aligned_spectrogram_panels(recordings: dict[str, tuple[np.ndarray, UtteranceFeatures]], reference: str,
                               n_fft: int = 1024) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (spectrogram dB, F0)}`` of each recording, warped onto the frames of the one labelled ``reference``.

    ``recordings`` maps a label to a waveform and its WORLD analysis. Each
    recording's log spectrogram (:func:`plots.log_spectrogram`, hop = one
    frame period) and F0 are taken at the frames :func:`dtw_frame_map` pairs
    with the reference's, so every panel has the reference's number of frames:
    recordings of different lengths are compared sound by sound.
    """
    fixed = recordings[reference][1]
    hop = max(1, round(fixed.frame_period * fixed.fs / 1000.0))
    panels = {}
    for label, (x, feats) in recordings.items():
        frames = np.arange(fixed.num_frames) if label == reference else dtw_frame_map(feats, fixed)
        db = plots.log_spectrogram(x, n_fft=n_fft, hop_length=hop)
        columns = np.clip(np.rint(frames * feats.frame_period * feats.fs / 1000.0 / hop).astype(int),
                          0, db.shape[1] - 1)
        panels[label] = (db[:, columns], np.asarray(feats.f0)[frames])
    return panels


def _speaker_pairs(manifest, speakers: list[str], source: str | None, target: str | None,
                   pair_names: list[str] | None, all_pairs: bool) -> list[tuple[str, str]]:
    """The ordered speaker pairs to draw: every pair, the ``SRC-TGT`` names given, or ``source`` → ``target``
    (by default the manifest's first two speakers)."""
    if all_pairs:
        if len(speakers) < 2:
            raise VawganError(f"{manifest}: only one speaker ({speakers[0]}), so no speaker pair to draw")
        return list(itertools.permutations(speakers, 2))
    if pair_names:
        pairs = []
        for name in pair_names:
            try:
                pairs.append(split_pair_name(name, speakers))
            except VawganError:
                raise VawganError(f"--pair {name!r}: expected SRC-TGT with speakers of the manifest "
                                  f"({', '.join(speakers)})") from None
        return list(dict.fromkeys(pairs))
    source = source or speakers[0]
    target = target or next((s for s in speakers if s != source), source)
    for name in (source, target):
        if name not in speakers:
            raise VawganError(f"speaker {name!r} is not in {manifest}; speakers there: {', '.join(speakers)}")
    return [(source, target)]


def make_figures(kinds, model_dir: str | os.PathLike, feature_dir: str | os.PathLike, manifest: str | os.PathLike,
                 converted_root: str | os.PathLike, gmm_dir: str | os.PathLike, source: str | None,
                 target: str | None, utt_id: str | None, scatter_pairs, dims, out_dir: str | os.PathLike,
                 pair_names: list[str] | None = None, all_pairs: bool = False) -> list[Path]:
    """Draw the requested ``kinds`` of figure (see ``vawgan plot --help``) into ``out_dir``; returns the PNG paths.

    The sentence figures are drawn for one speaker pair (``source`` → ``target``),
    for each pair named in ``pair_names`` (``SRC-TGT``), or for every ordered
    pair of the manifest (``all_pairs``); their file names carry the pair. The
    training curves, which belong to the model, are drawn once. Every pair's
    speakers, sentences and wavs are checked before the first figure is written.
    """
    out_dir = Path(out_dir)
    written = []
    plans = []
    if set(kinds) - {"curves"}:
        utterances = read_manifest(manifest)
        speakers = sorted({u.speaker for u in utterances})
        for pair_source, pair_target in _speaker_pairs(manifest, speakers, source, target, pair_names,
                                                                  all_pairs):
            pairs, pair_utt = _pair_sentences(utterances, pair_source, pair_target, utt_id)
            wavs = (_spectrogram_wavs(utterances, converted_root, pair_source, pair_target, pair_utt)
                    if "spectrogram" in kinds else None)
            plans.append((pair_source, pair_target, pairs, pair_utt, wavs))
    if "curves" in kinds:
        written.append(plots.plot_training_curves(Path(model_dir) / "metrics.csv", out_dir / "training_curves.png"))
    for plan in plans:
        written += _pair_figures(kinds, model_dir, feature_dir, gmm_dir, *plan, scatter_pairs, dims, out_dir)
    return written


def _pair_figures(kinds, model_dir, feature_dir, gmm_dir, source: str, target: str, pairs, utt_id: str,
                  spectrogram_wavs: dict[str, Path] | None, scatter_pairs, dims, out_dir: Path) -> list[Path]:
    """The sentence figures of one speaker pair: ``pairs`` are its parallel sentences, ``utt_id`` the one drawn
    over time."""
    written = []
    tag = f"{source}-{target}"
    split = "+".join(sorted({s.split for s, _ in pairs if s.split})) or "all"
    heading = f"{source} → {target}, {split} split ({len(pairs)} sentences)"
    feature_level = f"{heading}, feature level (before the vocoder)"
    if set(kinds) & {"scatter", "gv", "modspec", "trajectory", "f0", "f0hist"}:
        sources, series = _converted_features(model_dir, feature_dir, gmm_dir, pairs, source, target)
        # Converted frames keep the source's timeline, so the source's speech mask selects their speech frames.
        masks = {label: [f.speech for f in (feats if label == "natural target" else sources)]
                 for label, feats in series.items()}
        frames = {label: _speech_frames(feats, masks[label]) for label, feats in series.items()}
        index = [s.utt_id for s, _ in pairs].index(utt_id)
        src, natural = sources[index], series["natural target"][index]
        # The natural target warped onto the source's time axis (converted frames already are on it).
        warped = dtw_frame_map(natural, src)
        if "scatter" in kinds:
            written.append(plots.plot_scatter(frames, out_dir / f"scatter_{tag}.png", pairs=scatter_pairs,
                                              title=feature_level))
        if "gv" in kinds:
            gvs = {label: np.mean([global_variance(np.asarray(f.mcep, dtype=np.float64)[m, 1:])
                                   for f, m in zip(feats, masks[label])], axis=0)
                   for label, feats in series.items()}
            written.append(plots.plot_global_variance(gvs, out_dir / f"gv_{tag}.png", title=feature_level))
        if "modspec" in kinds:
            frame_period = sources[0].frame_period
            spectra = {}
            for label, feats in series.items():
                per_utt = [modulation_spectrum(np.asarray(f.mcep, dtype=np.float64)[m], frame_period)
                           for f, m in zip(feats, masks[label]) if m.sum() >= 128]
                if not per_utt:
                    raise VawganError("no sentence has 128 speech frames (0.64 s) for a modulation spectrum")
                spectra[label] = (per_utt[0][0], np.mean([p for _, p in per_utt], axis=0))
            written.append(plots.plot_modulation_spectrum(spectra, dims, out_dir / f"modspec_{tag}.png",
                                                          title=feature_level))
        if "trajectory" in kinds:
            k = dims[0]
            trajectories = {"source": src.mcep[:, k], "natural target": natural.mcep[warped, k]}
            trajectories.update({label: feats[index].mcep[:, k] for label, feats in series.items()
                                 if label != "natural target"})
            written.append(plots.plot_trajectory(
                trajectories, k, src.frame_period, out_dir / f"trajectory_{tag}_{utt_id}_c{k}.png",
                title=f"c{k} of {utt_id}, natural target time-warped by DTW\n{feature_level}"))
        if "f0" in kinds:
            contours = {"source": src.f0, "natural target": natural.f0[warped]}
            contours.update({label: feats[index].f0 for label, feats in series.items() if label != "natural target"})
            written.append(plots.plot_f0_contours(
                contours, src.frame_period, out_dir / f"f0_{tag}_{utt_id}.png",
                title=f"F0 of {utt_id}, natural target time-warped by DTW\n{feature_level}"))
        if "f0hist" in kinds:
            per_speaker = {source: {"source": np.concatenate([f.f0[f.speech] for f in sources])},
                           target: {label: np.concatenate([f.f0[m] for f, m in zip(feats, masks[label])])
                                    for label, feats in series.items()}}
            written.append(plots.plot_f0_histograms(per_speaker, out_dir / f"f0hist_{tag}.png",
                                                    title=f"voiced F0 per speaker\n{feature_level}"))
    if "spectrogram" in kinds:
        written.append(_spectrograms(
            spectrogram_wavs, load_model_config(model_dir).features, source, target,
            out_dir / f"spectrogram_{tag}_{utt_id}.png",
            title=f"{utt_id}: {heading}, wav level, time-aligned to the target by DTW, F0 in cyan"))
    return written


def _spectrogram_wavs(utterances, converted_root, source: str, target: str, utt_id: str) -> dict[str, Path]:
    """``{label: wav}`` of the spectrogram figure: source, the converted systems found, natural target."""
    by_key = {(u.speaker, u.utt_id): Path(u.path) for u in utterances}
    wavs = {f"source ({source})": by_key[source, utt_id]}
    for system, label in (("gmm", "GMM"), ("vae", "VAE"), ("vawgan", "VAW-GAN")):
        path = Path(converted_root) / system / f"{source}-{target}" / f"{utt_id}.wav"
        if path.is_file():
            wavs[f"{label} ({source} → {target})"] = path
    if len(wavs) == 1:
        raise VawganError(f"{converted_root}: no converted wav of {utt_id} for {source}-{target} "
                          "(gmm/, vae/ or vawgan/); run `vawgan convert` (recipe stage 6) first")
    wavs[f"natural target ({target})"] = by_key[target, utt_id]
    return wavs


def _spectrograms(wavs: dict[str, Path], config: FeatureConfig, source: str, target: str, out_path: Path,
                  title: str) -> Path:
    """The wavs analysed with the model's feature settings (F0 range of the voice each one is in) and drawn
    time-aligned to the natural target, which is the last of ``wavs``."""
    recordings = {}
    for i, (label, path) in enumerate(wavs.items()):
        x = load_audio(path, config.sample_rate)
        recordings[label] = (x, analyze(x, config.sample_rate, config, speaker=source if i == 0 else target,
                                        name=str(path)))
    panels = aligned_spectrogram_panels(recordings, reference=label)
    return plots.plot_aligned_spectrograms(panels, config.sample_rate, config.frame_period, out_path, title=title)
