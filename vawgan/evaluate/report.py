"""Score converted wavs against natural targets and write the comparison table.

Every system is measured the same way: its output wavs and the natural target
wavs are re-analysed with the project's own WORLD analysis
(:func:`vawgan.features.world.analyze_file`, the feature settings of the
config) and compared with :func:`vawgan.evaluate.metrics.score_pair`. So the
numbers include the vocoder, as a listener hears it, and no system is favoured
by being scored on its internal features.

Converted wavs are found by the layout of recipe stage 6,
``<converted_root>/<system>/<source>-<target>/<utt_id>.wav``; the natural target
of each is the target speaker's recording of the same ``utt_id`` in the
manifest. The rows of the table, in order:

* ``copy``   — the source wav unchanged (no conversion: the floor),
* ``gmm``    — joint-density GMM + MLPG (:mod:`vawgan.baselines.gmm`, the peer system),
* ``vae``    — the VAE after pretraining, before adversarial fine-tuning,
* ``vawgan`` — the VAE after adversarial fine-tuning (VAW-GAN),
* ``anasyn`` — analysis–synthesis of the target itself (the ceiling).

What each folder's wavs were made with (which weights, GV postfilter strength
α, vocoder compensation) is read from the ``system.yaml`` that conversion
writes beside them (:class:`vawgan.systems.SystemSettings`), or, for a folder
without one, from its name: ``vae_gv0.5`` (written by ``vawgan convert
--which vae --gv-postfilter 0.5``) is the VAE with the GV postfilter at 0.5,
the VAE brought to the VAW-GAN's variance without training (recipe stage 6);
a name ending in ``_vc`` (``vawgan_vc``, ``gmm_vc``, ``anasyn_vc``) is that
system synthesized with vocoder compensation (``--vocoder-compensation``,
:func:`vawgan.features.synthesis.compensate_vocoder`). The features of a
vocoder-compensated system before the vocoder are the plain system's, so the
feature-level table leaves it out.

Each wav is analysed with the F0 search range of the speaker whose voice it
should carry: the target's for converted speech and the ceiling, the source's
for the unchanged source copy.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vawgan.audio import scaling_summary, write_audio
from vawgan.baselines.gmm import PairModels
from vawgan.convert import Converter
from vawgan.corpus import Utterance, parallel_pairs
from vawgan.errors import VawganError
from vawgan.evaluate.metrics import CONVENTION, PairScores, gv_ratio, score_pair
from vawgan.features.store import feature_path, load_features
from vawgan.features.world import analysis_synthesis, analyze_file
from vawgan.model_dir import ModelDir
from vawgan.systems import SystemSettings
from vawgan.utils import atomic_path, bar_disabled

log = logging.getLogger(__name__)

SYSTEMS = ("copy", "gmm", "vae", "vawgan", "anasyn")
# The VAE with a half-strength GV postfilter: as much variance as the VAW-GAN's, without
# adversarial training (docs/evaluation.md); recipe stage 6 writes it, the figures draw it.
POSTFILTER_COMPARISON = "vae_gv0.5"


def model_system(system: str) -> tuple[str, float] | None:
    """``(weights, GV postfilter strength)`` of a system named as recipes name them, None for the others.

    ``vae`` → ``("vae", 0.0)``, ``vawgan_gv1`` → ``("vawgan", 1.0)``; ``copy``, ``gmm``, ``anasyn`` and the
    vocoder-compensated ``*_vc`` (the same features as their plain system) → None.
    """
    return SystemSettings.from_name(system).model_weights()


def system_settings(converted_root: str | os.PathLike, systems: tuple[str, ...]) -> dict[str, SystemSettings]:
    """What each of ``systems`` was made with: its folder's ``system.yaml``, or else what its name says."""
    return {system: SystemSettings.load(Path(converted_root) / system) or SystemSettings.from_name(system)
            for system in systems}


COLUMNS = (
    ("mcd", "MCD [dB]", "{:.2f}"),
    ("mcd_with_c0", "MCD incl. c0 [dB]", "{:.2f}"),
    ("f0_rmse_cents", "F0 RMSE [cent]", "{:.0f}"),
    ("f0_corr", "F0 corr", "{:.3f}"),
    ("vuv_error", "V/UV error [%]", "{:.1f}"),
    ("gv_ratio", "GV ratio", "{:.3f}"),
    ("ms_distance", "MS distance [dB]", "{:.2f}"),
)


@dataclass
class ConvertedUtterance:
    """One converted wav and the natural target it is scored against."""

    system: str
    source: str
    target: str
    utt_id: str
    path: Path
    target_path: Path


@dataclass
class UtteranceResult:
    """The scores of one converted wav."""

    item: ConvertedUtterance
    scores: PairScores


def find_converted(converted_root: str | os.PathLike, utterances: list[Utterance],
                   systems: tuple[str, ...] = SYSTEMS) -> list[ConvertedUtterance]:
    """Every ``<system>/<src>-<tgt>/<utt>.wav`` under ``converted_root`` that has a natural target in the manifest.

    Systems without a folder are left out (the caller reports them). A wav
    whose target recording is not in the manifest is an error: the table would
    otherwise silently cover fewer sentences for one system than for another.
    """
    root = Path(converted_root)
    by_key = {(u.speaker, u.utt_id): u for u in utterances}
    speakers = sorted({u.speaker for u in utterances})
    found = []
    for system in systems:
        system_dir = root / system
        if not system_dir.is_dir():
            continue
        for pair_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
            source, target = split_pair_name(pair_dir.name, speakers)
            for wav in sorted(pair_dir.glob("*.wav")):
                natural = by_key.get((target, wav.stem))
                if natural is None:
                    raise VawganError(f"{wav}: no recording of {wav.stem!r} by target speaker {target!r} in the "
                                      "manifest; pass the manifest the wavs were converted from (--manifest)")
                found.append(ConvertedUtterance(system, source, target, wav.stem, wav, Path(natural.path)))
    return found


def copy_items(utterances: list[Utterance], pairs: list[tuple[str, str]]) -> list[ConvertedUtterance]:
    """The ``copy`` row without files: each source recording scored as if it were the conversion."""
    by_key = {(u.speaker, u.utt_id): u for u in utterances}
    items = []
    for source, target in pairs:
        for (spk, utt_id), u in sorted(by_key.items()):
            if spk == source and (target, utt_id) in by_key:
                items.append(ConvertedUtterance("copy", source, target, utt_id, Path(u.path),
                                                Path(by_key[target, utt_id].path)))
    return items


def anasyn_items(utterances: list[Utterance], targets: list[str], out_dir: str | os.PathLike,
                 feature_config) -> list[ConvertedUtterance]:
    """The ``anasyn`` row: analysis–synthesis of each target recording, written once to ``<out_dir>/<spk>/<utt>.wav``.

    Files already there are reused (the stage is cheap to re-run). Outputs
    scaled down to avoid clipping are reported in one warning.
    """
    items, reductions = [], []
    for u in utterances:
        if u.speaker not in targets:
            continue
        wav = Path(out_dir) / u.speaker / f"{u.utt_id}.wav"
        if not wav.is_file():
            reductions.append(write_audio(wav, analysis_synthesis(u.path, feature_config, u.speaker),
                                          feature_config.sample_rate, warn=False))
        items.append(ConvertedUtterance("anasyn", u.speaker, u.speaker, u.utt_id, wav, Path(u.path)))
    summary = scaling_summary(reductions)
    if summary:
        log.warning(summary)
    return items


def evaluate_features(utterances: list[Utterance], model_dir: ModelDir | str | os.PathLike,
                      feature_dir: str | os.PathLike,
                      gmm_dir: str | os.PathLike | None = None, systems: tuple[str, ...] = SYSTEMS,
                      progress: bool = True,
                      settings: dict[str, SystemSettings] | None = None) -> list[UtteranceResult]:
    """Score the systems' own converted mel-cepstra and F0, before any vocoder, against the target's features.

    For every ordered pair of speakers known to both the manifest and the
    model, each parallel sentence's source features (``vawgan extract``
    output) are converted with the model's VAE and VAW-GAN weights (with the
    GV postfilter for ``vae_gv<α>`` / ``vawgan_gv<α>``, or as ``settings``
    (:func:`system_settings`) say) and, when
    ``<gmm_dir>/<src>-<tgt>.npz`` exists, the GMM baseline; ``copy`` is the
    source's features unchanged. Converted frames keep the source's timeline,
    so the source's speech mask selects their speech frames. No re-analysis of
    audio is involved, which isolates what the model does to the features
    (WORLD re-analysis of synthesized speech itself raises the global variance).
    """
    model = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
    settings = settings or {}
    weights = {system: (settings.get(system) or SystemSettings.from_name(system)).model_weights()
               for system in systems}
    converters = {system: Converter(model, which=which[0], device="cpu", gv_postfilter=which[1])
                  for system, which in weights.items() if which is not None}
    stats = model.stats
    speakers = sorted({u.speaker for u in utterances} & set(stats.speakers))
    if len(speakers) < 2:
        raise VawganError(f"{model.path}: the model and the manifest share fewer than two speakers "
                          f"(model: {', '.join(stats.speakers)}); nothing to convert between")
    work = [(source, target, src_utt.utt_id, tgt_utt.utt_id)
            for source, target in itertools.permutations(speakers, 2)
            for src_utt, tgt_utt in parallel_pairs(utterances, source, target, split=None)]
    gmms = PairModels(gmm_dir, stats) if gmm_dir is not None and "gmm" in systems else None
    results = []
    for source, target, src_id, tgt_id in tqdm(work, desc="score features", unit="utt",
                                               disable=bar_disabled(progress)):
        src_path, tgt_path = feature_path(feature_dir, source, src_id), feature_path(feature_dir, target, tgt_id)
        src, tgt = load_features(src_path), load_features(tgt_path)
        outputs = system_outputs(src, source, target, converters, gmms)
        if "copy" in systems:
            outputs = {"copy": src, **outputs}
        for system, feats in outputs.items():
            scores = score_pair(tgt.mcep, tgt.f0, tgt.speech, feats.mcep, feats.f0, src.speech)
            results.append(UtteranceResult(ConvertedUtterance(system, source, target, src_id, src_path, tgt_path),
                                           scores))
    return results


def system_outputs(feats, source: str, target: str, converters: dict, gmms: PairModels | None) -> dict:
    """``{system: converted UtteranceFeatures}`` of one source utterance: ``gmm`` first (when ``gmms`` holds the
    pair's model), then each of ``converters`` (``{"vae": Converter, "vawgan": Converter}``)."""
    outputs = {}
    if gmms is not None and gmms.has_pair(source, target):
        outputs["gmm"] = gmms.convert_features(feats, source, target)
    for which, converter in converters.items():
        outputs[which] = converter.convert_features(feats, source, target)
    return outputs


def split_pair_name(name: str, speakers: list[str]) -> tuple[str, str]:
    """``"slt-rms"`` → ``("slt", "rms")``, with both halves known speakers (names may contain dashes)."""
    for i, ch in enumerate(name):
        if ch == "-" and name[:i] in speakers and name[i + 1:] in speakers:
            return name[:i], name[i + 1:]
    raise VawganError(f"folder {name!r}: expected <source>-<target> with speakers from the manifest "
                      f"({', '.join(speakers)})")


def _analyse(job):
    """Worker: analyse one wav (path, speaker, feature config) → (mcep, f0, speech)."""
    path, speaker, feature_config = job
    feats = analyze_file(path, feature_config, speaker=speaker)
    return np.asarray(feats.mcep, dtype=np.float64), np.asarray(feats.f0), np.asarray(feats.speech, dtype=bool)


def evaluate_converted(items: list[ConvertedUtterance], feature_config, jobs: int = 1,
                       progress: bool = True) -> list[UtteranceResult]:
    """Re-analyse every converted wav and its natural target (each file once) and score each pair.

    ``jobs`` > 1 analyses in that many worker processes.
    """
    voice_of = {}
    for item in items:
        voice_of[item.target_path] = item.target
        voice_of[item.path] = item.source if item.system == "copy" else item.target
    paths = sorted(voice_of)
    work = [(p, voice_of[p], feature_config) for p in paths]
    bar = dict(total=len(work), desc="analyse wavs", unit="wav", disable=bar_disabled(progress))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            analysed = list(tqdm(pool.map(_analyse, work, chunksize=4), **bar))
    else:
        analysed = [_analyse(job) for job in tqdm(work, **bar)]
    features = dict(zip(paths, analysed))
    results = []
    for item in items:
        try:
            scores = score_pair(*features[item.target_path], *features[item.path])
        except (ValueError, VawganError) as exc:
            raise VawganError(f"{item.path}: cannot be scored against {item.target_path} ({exc})") from None
        results.append(UtteranceResult(item, scores))
    return results


def summarize(results: list[UtteranceResult], systems: tuple[str, ...] = SYSTEMS,
              settings: dict[str, SystemSettings] | None = None) -> list[dict]:
    """One row per system (in ``systems`` order): means over its utterances of every measure.

    Each row is described by its ``settings`` (:func:`system_settings`) or else by its name.

    MCD also gets its standard deviation over utterances; F0 measures skip
    utterances without two frames voiced in both (NaN). The GV ratio is the
    mean over dimensions of (utterance-averaged converted GV) / (same for the
    natural targets of the same utterances).
    """
    rows = []
    for system in systems:
        mine = [r.scores for r in results if r.item.system == system]
        if not mine:
            continue
        ratio = gv_ratio(np.stack([s.gv_converted for s in mine]), np.stack([s.gv_natural for s in mine]))
        rows.append({
            "system": system,
            "description": ((settings or {}).get(system) or SystemSettings.from_name(system)).description(),
            "utterances": len(mine),
            "mcd": float(np.mean([s.mcd for s in mine])),
            "mcd_std": float(np.std([s.mcd for s in mine])),
            "mcd_with_c0": float(np.mean([s.mcd_with_c0 for s in mine])),
            "f0_rmse_cents": _nanmean([s.f0_rmse_cents for s in mine]),
            "f0_corr": _nanmean([s.f0_corr for s in mine]),
            "vuv_error": 100.0 * float(np.mean([s.vuv_error for s in mine])),
            "gv_ratio": float(np.mean(ratio)),
            "ms_distance": _nanmean([s.ms_distance for s in mine]),
        })
    return rows


def _nanmean(values: list[float]) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values[~np.isnan(values)])) if np.any(~np.isnan(values)) else float("nan")


def pair_mcd(results: list[UtteranceResult], systems: tuple[str, ...] = SYSTEMS) -> tuple[list[str], dict]:
    """Mean MCD per (system, "src-tgt") for the per-pair table (conversions only, not the ceiling)."""
    pairs = sorted({f"{r.item.source}-{r.item.target}" for r in results if r.item.source != r.item.target})
    table = {}
    for system in systems:
        for pair in pairs:
            vals = [r.scores.mcd for r in results
                    if r.item.system == system and f"{r.item.source}-{r.item.target}" == pair]
            if vals:
                table[system, pair] = float(np.mean(vals))
    return pairs, table


WAV_LEVEL_NOTE = "Every wav, natural or converted, is re-analysed with the same WORLD settings."
FEATURE_LEVEL_NOTE = ("Feature level: the systems' own mel-cepstra and F0 before the vocoder, against the target's "
                      "analysed features; the converted speech frames are the source's.")


def format_markdown(rows: list[dict], results: list[UtteranceResult], note: str = WAV_LEVEL_NOTE) -> str:
    """The comparison table, its convention and the per-pair MCDs, as Markdown."""
    out = io.StringIO()
    header = ["system", "what it is", *[title for _, title, _ in COLUMNS], "utterances"]
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|\n")
    for row in rows:
        cells = [row["system"], row["description"]]
        for key, _, fmt in COLUMNS:
            cells.append("n/a" if np.isnan(row[key]) else fmt.format(row[key]))
        cells[2] = f"{row['mcd']:.2f} ± {row['mcd_std']:.2f}"
        cells.append(str(row["utterances"]))
        out.write("| " + " | ".join(cells) + " |\n")
    out.write(f"\nMeans over the converted utterances of the manifest's sentences (MCD ± its standard deviation over "
              f"utterances). Convention: {CONVENTION}. {note}\n")
    pairs, table = pair_mcd(results, tuple(r["system"] for r in rows))
    if len(pairs) > 1:
        out.write("\nMCD [dB] per speaker pair (source-target):\n\n")
        out.write("| system | " + " | ".join(pairs) + " |\n")
        out.write("|---|" + "|".join(["---:"] * len(pairs)) + "|\n")
        for row in rows:
            cells = [f"{table[row['system'], p]:.2f}" if (row["system"], p) in table else "" for p in pairs]
            if any(cells):
                out.write(f"| {row['system']} | " + " | ".join(cells) + " |\n")
    return out.getvalue()


def write_results(rows: list[dict], results: list[UtteranceResult], out_dir: str | os.PathLike,
                  suffix: str = "", note: str = WAV_LEVEL_NOTE) -> dict[str, Path]:
    """Write ``results<suffix>.md``, ``results<suffix>.csv`` (one row per system) and
    ``per_utterance<suffix>.csv`` atomically; ``note`` says what was compared."""
    out_dir = Path(out_dir)
    paths = {"md": out_dir / f"results{suffix}.md", "csv": out_dir / f"results{suffix}.csv",
             "per_utterance": out_dir / f"per_utterance{suffix}.csv"}
    with atomic_path(paths["md"]) as tmp:
        Path(tmp).write_text(format_markdown(rows, results, note))
    fields = ["system", "description", "utterances", "mcd", "mcd_std", "mcd_with_c0", "f0_rmse_cents", "f0_corr",
              "vuv_error", "gv_ratio", "ms_distance"]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*fields, "convention"], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            values = {k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in fields}
            writer.writerow({**values, "convention": f"{CONVENTION}. {note} vuv_error in percent"})
    with atomic_path(paths["per_utterance"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["system", "source", "target", "utt_id", "mcd", "mcd_with_c0", "f0_rmse_cents", "f0_corr",
                         "vuv_error", "gv_ratio_mean", "ms_distance", "aligned_frames", "voiced_frames", "path"])
        for r in results:
            s = r.scores
            writer.writerow([r.item.system, r.item.source, r.item.target, r.item.utt_id, f"{s.mcd:.4f}",
                             f"{s.mcd_with_c0:.4f}", f"{s.f0_rmse_cents:.2f}", f"{s.f0_corr:.4f}",
                             f"{s.vuv_error:.4f}", f"{np.mean(s.gv_converted / s.gv_natural):.4f}",
                             f"{s.ms_distance:.4f}", s.aligned_frames, s.voiced_frames, str(r.item.path)])
    return paths
