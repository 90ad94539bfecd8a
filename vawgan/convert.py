"""Voice conversion with a trained model directory: wav → wav and features → features.

The steps (SPEC sections 2 and 4, Hsu et al. 2017):

1. analyse the input with the model's own feature settings (WORLD + mel-cepstrum);
2. normalize c1..c39 with the source speaker's statistics (the global ones when
   the source speaker is not known to the model);
3. encode with the speaker-independent encoder and keep the mean μ of the
   posterior (no sampling, so the same input always gives the same output);
4. decode μ with the target speaker's code and denormalize with the target's
   statistics;
5. keep c0 (frame energy) and the coded aperiodicity of the source;
6. move F0 from the source's log-F0 distribution to the target's (voiced frames
   only); with an unknown source, the source's log-F0 mean and standard
   deviation are estimated from the input itself;
7. WORLD synthesis, written peak-safe (rescaled rather than clipped).

:class:`Converter` loads a model directory once and converts any number of
utterances with it; without a directory it loads the small pretrained model
shipped inside the package (:data:`PRETRAINED_DIR`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from vawgan.errors import VawganError
from vawgan.features.store import UtteranceFeatures

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

# Fewer voiced frames than this (50 ms) give no usable estimate of the input's
# own log-F0 spread; the F0 transform then only shifts the mean.
MIN_VOICED_FRAMES_FOR_STD = 10
_MIN_LF0_STD = 1e-3


def default_model_dir() -> Path:
    """The pretrained model directory shipped with the package."""
    if not (PRETRAINED_DIR / "config.yaml").is_file():
        raise VawganError(f"{PRETRAINED_DIR}: the packaged pretrained model is missing; "
                          "reinstall vawgan or pass --model DIR of a trained model")
    return PRETRAINED_DIR


def convert_f0(f0: np.ndarray, source_lf0: tuple[float, float], target_lf0: tuple[float, float]) -> np.ndarray:
    """Map F0 from the source's log-F0 Gaussian to the target's, on voiced frames.

    ``log f0' = (log f0 − μ_s) / σ_s · σ_t + μ_t`` where ``(μ, σ)`` are the mean
    and standard deviation of log-F0 in Hz. Unvoiced frames (F0 = 0) stay 0.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    src_mean, src_std = source_lf0
    tgt_mean, tgt_std = target_lf0
    out = np.zeros_like(f0)
    voiced = f0 > 0
    out[voiced] = np.exp((np.log(f0[voiced]) - src_mean) / src_std * tgt_std + tgt_mean)
    return out


def lf0_statistics_of(f0: np.ndarray, fallback_std: float) -> tuple[float, float] | None:
    """Mean and std of log-F0 over the voiced frames of one utterance.

    Used when the source speaker is unknown. Returns None when nothing is
    voiced (there is no F0 to convert). With too few voiced frames, or a flat
    contour, the spread cannot be estimated and ``fallback_std`` (the target's)
    is returned instead, so that the transform only moves the mean.
    """
    lf0 = np.log(np.asarray(f0, dtype=np.float64)[np.asarray(f0) > 0])
    if lf0.size == 0:
        return None
    std = float(lf0.std())
    if lf0.size < MIN_VOICED_FRAMES_FOR_STD or std < _MIN_LF0_STD:
        std = float(fallback_std)
    return float(lf0.mean()), std


def check_output_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written as an audio file.

    Checks that ``path`` is not a folder, that its nearest existing parent is a
    writable folder (missing folders below it are created at write time), and
    that the suffix is one the writer knows.
    """
    path = Path(path)
    if path.suffix.lower() not in (".wav", ".flac"):
        raise VawganError(f"{path}: output must end in .wav or .flac")
    if path.is_dir():
        raise VawganError(f"{path}: output is a folder; give a file name such as {path / 'out.wav'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise VawganError(f"{path}: output file exists and is not writable; choose another -o path")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise VawganError(f"{path}: cannot create the output folder because {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VawganError(f"{path}: cannot write into {parent} (permission denied); choose another -o path")
    return path


class Converter:
    """Converts utterances between the speakers of one trained model.

    Parameters
    ----------
    model_dir:
        A model directory written by ``vawgan train`` (config, statistics,
        speaker list, weights); None loads the pretrained model shipped with
        the package.
    which:
        ``"vawgan"`` (weights after adversarial fine-tuning) or ``"vae"``
        (weights after VAE pretraining, the over-smoothed baseline).
    device:
        ``auto``, ``cpu`` or ``cuda[:N]``. The network is small; WORLD analysis
        and synthesis run on the CPU in any case.
    f0_method:
        ``harvest`` or ``dio`` to override the model's F0 extractor for the
        input (``dio`` is several times faster); None keeps the model's.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, which: str = "vawgan", device: str = "auto",
                 f0_method: str | None = None):
        from vawgan.model_dir import load_model

        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.model = load_model(self.model_dir, which=which, device=device)
        self.which = which
        features = self.model.config.features
        if f0_method is not None:
            if f0_method not in ("harvest", "dio"):
                raise VawganError(f"--f0-method {f0_method!r} is not one of harvest, dio")
            features = dataclasses.replace(features, f0_method=f0_method)
        self.feature_config = features

    @property
    def speakers(self) -> list[str]:
        """The speakers the model can convert from and to."""
        return list(self.model.speakers)

    @property
    def sample_rate(self) -> int:
        """The sample rate the model was trained at; inputs are resampled to it."""
        return int(self.feature_config.sample_rate)

    def check_speaker(self, speaker: str) -> int:
        """The index of ``speaker``; a :class:`VawganError` listing the known speakers otherwise."""
        return self.model.speaker_index(speaker)

    def convert_features(self, feats: UtteranceFeatures, source: str | None, target: str,
                         sample: bool = False) -> UtteranceFeatures:
        """Convert one utterance's features from ``source`` (None: unknown) to ``target``.

        ``sample=True`` decodes a draw from the encoder's posterior instead of
        its mean μ (for listening to the model's uncertainty; not repeatable
        without a fixed torch seed).
        """
        import torch

        target_index = self.check_speaker(target)
        if source is not None:
            self.check_speaker(source)
        order = self.model.config.model.input_dim
        if feats.mcep.ndim != 2 or feats.mcep.shape[1] != order + 1:
            raise VawganError(f"features have {feats.mcep.shape[-1]} mel-cepstral coefficients per frame; "
                              f"the model expects c0..c{order} ({order + 1})")
        if feats.fs != self.sample_rate:
            raise VawganError(f"features are at {feats.fs} Hz but the model was trained at {self.sample_rate} Hz; "
                              "re-analyse the audio at the model's sample rate")
        stats = self.model.stats
        mcep = np.asarray(feats.mcep, dtype=np.float64)
        normalized = stats.normalize(mcep[:, 1:], source)
        device = self.model.device
        with torch.inference_mode():
            x = torch.from_numpy(normalized.astype(np.float32)).to(device)
            mu, logvar = self.model.encoder(x)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
            speaker_ids = torch.full((x.shape[0],), target_index, dtype=torch.long, device=device)
            decoded = self.model.decoder(z, speaker_ids).cpu().numpy().astype(np.float64)
        converted = mcep.copy()
        converted[:, 1:] = stats.denormalize(decoded, target)

        target_lf0 = (stats.lf0_mean[target], stats.lf0_std[target])
        if source is not None:
            source_lf0 = (stats.lf0_mean[source], stats.lf0_std[source])
        else:
            source_lf0 = lf0_statistics_of(feats.f0, fallback_std=target_lf0[1])
        f0 = convert_f0(feats.f0, source_lf0, target_lf0) if source_lf0 is not None else np.zeros_like(feats.f0)
        return dataclasses.replace(feats, f0=f0, mcep=converted)

    def analyze_file(self, path: str | os.PathLike, source: str | None = None) -> UtteranceFeatures:
        """Read ``path`` (resampled to the model's rate, with a warning) and analyse it like the training data.

        The source speaker's F0 search range is used when the config sets one.
        """
        from vawgan.features.world import analyze_file

        return analyze_file(path, self.feature_config, speaker=source)

    def convert_audio(self, x: np.ndarray, target: str, source: str | None = None, sample: bool = False,
                      name: str = "signal") -> np.ndarray:
        """Convert a mono waveform at :attr:`sample_rate`; returns the converted waveform.

        ``name`` is how errors refer to the signal.
        """
        from vawgan.features.world import analyze, synthesize

        feats = analyze(x, self.sample_rate, self.feature_config, speaker=source, name=name)
        return synthesize(self.convert_features(feats, source, target, sample=sample))

    def write_converted(self, feats: UtteranceFeatures, out_wav: str | os.PathLike, target: str,
                        source: str | None = None, sample: bool = False) -> Path:
        """Convert analysed features to ``target``, synthesize and write ``out_wav`` atomically (peak-safe)."""
        from vawgan.audio import write_audio
        from vawgan.features.world import synthesize

        y = synthesize(self.convert_features(feats, source, target, sample=sample))
        write_audio(out_wav, y, self.sample_rate)
        return Path(out_wav)

    def convert_file(self, in_wav: str | os.PathLike, out_wav: str | os.PathLike, target: str,
                     source: str | None = None, sample: bool = False) -> Path:
        """Read ``in_wav``, convert it to ``target`` and write ``out_wav`` atomically.

        Speaker names and the output path are checked before the audio is
        read, so a mistake costs no analysis time and leaves no file behind.
        An input at another sample rate is resampled to the model's (with a
        warning); the output is at the model's sample rate.
        """
        out_wav = check_output_writable(out_wav)
        self.check_speaker(target)
        if source is not None:
            self.check_speaker(source)
        return self.write_converted(self.analyze_file(in_wav, source), out_wav, target, source, sample=sample)
