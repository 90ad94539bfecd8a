"""Voice conversion with a trained model directory: wav → wav and features → features.

The steps (SPEC sections 2 and 4, Hsu et al. 2017):

1. analyse the input with the model's own feature settings (WORLD + mel-cepstrum);
2. normalize c1..c39 with the source speaker's statistics (when the source
   speaker is not known to the model: the input's own mean over its speech
   frames and the global standard deviation);
3. encode with the speaker-independent encoder (each frame with its
   neighbours when the model was trained with encoder context) and keep the
   mean μ of the posterior (no sampling, so the same input always gives the
   same output);
4. decode μ with the target speaker's code and denormalize with the target's
   statistics;
5. keep c0 (frame energy) and the coded aperiodicity of the source;
6. move F0 from the source's log-F0 distribution to the target's (voiced frames
   only); with an unknown source, the source's log-F0 mean and standard
   deviation are estimated from the input itself;
7. WORLD synthesis, written peak-safe (rescaled rather than clipped).

:class:`Converter` loads a model directory once and converts any number of
utterances with it. An ensemble directory (``members/``, trained with
``train.members``) converts with each of its models and averages the
converted c1..cD (step 4), which lowers the MCD (docs/training.md). Two small pretrained models ship inside the package
(:data:`PRETRAINED_MODELS`, folders of :data:`PRETRAINED_ROOT`); ``quick``, the
default, is loaded when no directory is given, and either can be named instead
of a directory (:func:`resolve_model_dir`).

Start-up. Importing PyTorch takes most of a command-line conversion's time
(about 1.5 s of CPU here, against a few tenths of a second for converting a
3 s utterance). The encoder and decoder are small MLPs, so on the CPU the
converter evaluates them with NumPy from ``<which>.npz``, the plain-array copy
training writes next to ``<which>.pt`` (:mod:`vawgan.weights`), and never
imports torch. The copy records the SHA-256 of the ``.pt`` it came from and is
only used while that still matches; otherwise (and on CUDA) the PyTorch
modules are used. Converting never writes into the model directory.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from vawgan.audio import write_audio
from vawgan.errors import VawganError
from vawgan.features.batching import Progress
from vawgan.features.store import UtteranceFeatures
from vawgan.features.synthesis import render
from vawgan.features.world import F0_METHODS, analyze, analyze_file
from vawgan.model_dir import CONFIG_FILE, ModelDir
from vawgan.pretrained import DEFAULT_PRETRAINED, PRETRAINED_MODELS, PRETRAINED_ROOT
from vawgan.transforms import convert_f0, gv_postfilter, lf0_statistics_of, normalize_unknown_source
from vawgan.utils import available_cores


def pretrained_model_dir(name: str = DEFAULT_PRETRAINED) -> Path:
    """The directory of the packaged pretrained model ``name`` (one of :data:`PRETRAINED_MODELS`)."""
    if name not in PRETRAINED_MODELS:
        raise VawganError(f"no packaged model named {name!r}; packaged models: {', '.join(PRETRAINED_MODELS)}")
    model_dir = PRETRAINED_ROOT / name
    if not (model_dir / CONFIG_FILE).is_file():
        raise VawganError(f"{model_dir}: the packaged pretrained model {name!r} is missing; "
                          "reinstall vawgan or pass --model DIR of a trained model")
    return model_dir


def resolve_model_dir(model: str | os.PathLike | None) -> Path:
    """A model directory from what a user gave: None (the default packaged model), a directory, or a packaged name.

    A packaged name means the packaged model whenever the argument does not
    look like a path (no path separator, no leading ``.``): a folder ``quick``
    in the working directory, perhaps downloaded, does not stand in for the
    packaged ``quick``; ``./quick`` names the folder.
    """
    if model is None:
        return pretrained_model_dir()
    name = str(model)
    looks_like_path = "/" in name or os.sep in name or name.startswith(".")
    if name in PRETRAINED_MODELS and not looks_like_path:
        return pretrained_model_dir(name)
    if Path(model).exists():
        return Path(model)
    raise VawganError(f"{model}: model directory not found (nor a packaged model: {', '.join(PRETRAINED_MODELS)}); "
                      "train one with `vawgan train`")


def check_output_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written as an audio file.

    Checks that ``path`` is not a folder, that its nearest existing parent is a
    folder a file can be created in (missing folders below it are created at
    write time), and that the suffix is one the writer knows. Writability is
    tried, not looked up with ``os.access``: permission bits do not stop root,
    and read-only or special file systems (``/proc``) pass that look-up.
    """
    path = Path(path)
    if path.suffix.lower() not in (".wav", ".flac"):
        raise VawganError(f"{path}: output must end in .wav or .flac")
    if path.is_dir():
        raise VawganError(f"{path}: output is a folder; give a file name such as {path / 'out.wav'}")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise VawganError(f"{path}: cannot create the output folder because {parent} is a file")
    try:
        if path.exists():
            open(path, "ab").close()  # appends nothing; the atomic writer replaces the file later
        else:
            tempfile.TemporaryFile(dir=parent).close()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise VawganError(f"{path}: cannot write into {parent} ({reason}); choose another -o path") from None
    return path


def analysis_settings(features, f0_method: str | None = None, aperiodicity_step: int | None = None):
    """A model's :class:`~vawgan.config.FeatureConfig` with a conversion's overrides of the input's analysis.

    ``f0_method`` and ``aperiodicity_step`` (``--f0-method``,
    ``--aperiodicity-step``) replace the model's values unless None; they are
    checked here, so that a bad value stops a conversion before any work.
    """
    if f0_method is not None:
        if f0_method not in F0_METHODS:
            raise VawganError(f"--f0-method {f0_method!r} is not one of {', '.join(F0_METHODS)}")
        features = dataclasses.replace(features, f0_method=f0_method)
    if aperiodicity_step is not None:
        if aperiodicity_step < 1:
            raise VawganError(f"--aperiodicity-step {aperiodicity_step}: must be at least 1 (1: every frame)")
        features = dataclasses.replace(features, aperiodicity_step=aperiodicity_step)
    return features


class Converter:
    """Converts utterances between the speakers of one trained model.

    Parameters
    ----------
    model_dir:
        A model directory written by ``vawgan train`` (config, statistics,
        speaker list, weights), already opened as a :class:`~vawgan.model_dir.ModelDir`
        or as a path, or the name of a packaged pretrained model
        (:data:`PRETRAINED_MODELS`); None loads the default one, ``quick``.
    which:
        ``"vawgan"`` (weights after adversarial fine-tuning) or ``"vae"``
        (weights after VAE pretraining, the over-smoothed baseline).
    device:
        ``cpu`` (default), ``auto`` or ``cuda[:N]``. The networks are small and
        WORLD analysis and synthesis run on the CPU in any case, so a GPU only
        adds its start-up time for single utterances. On the CPU the NumPy
        copy of the weights is used when it is current (no torch import).
    f0_method:
        ``harvest`` or ``dio`` to override the model's F0 extractor for the
        input (``dio`` is several times faster); None keeps the model's.
    aperiodicity_step:
        Run D4C on every n-th frame of the input only and interpolate its
        coded aperiodicity in time (:func:`vawgan.features.world.coded_aperiodicity`;
        4 makes a DIO analysis about twice as fast); None keeps the model's
        ``features.aperiodicity_step`` (1, every frame, unless configured).
    threads:
        CPU threads for the analysis and synthesis of one utterance
        (StoneMask, CheapTrick and D4C on blocks of frames in parallel,
        :func:`vawgan.features.batching.per_frame_in_blocks`; the synthesis in
        pieces cut at unvoiced frames, :func:`vawgan.features.synthesis.synthesize`);
        None: one per available core. 1 analyses exactly as corpus extraction
        does and synthesizes in one call; more threads change the coded
        aperiodicity by WORLD's dither only (at most 0.31 dB, mean 0.004 dB,
        over 60 Flite recordings) and restart WORLD's pulses and noise at
        an unvoiced frame near the middle of the synthesis (as close to the
        features, not the same samples).
        Pass 1 when you run several converters in parallel processes
        yourself, so that they do not fight over the cores.
    gv_postfilter:
        Strength α of the GV postfilter (:func:`gv_postfilter`) applied to
        every conversion, towards the target speaker's global variance from
        the model's statistics: 0 (default) off, 1 the target's variance.
    vocoder_compensation:
        Pre-compensate WORLD's rendering of the converted envelope
        (:func:`vawgan.features.synthesis.compensate_vocoder`): one more synthesis
        and CheapTrick pass per utterance, so that the output re-analyses
        closer to the converted mel-cepstra (0.2–0.3 dB lower MCD to the
        target on the Flite eval split, docs/conversion.md). Off by default.
    members:
        For an ensemble directory (``members/``, trained with
        ``train.members``): how many of its models to average, the
        directory's own first, then its members by seed. None (default):
        every model that holds the ``which`` weights; 1: the directory's own
        model alone. Each model converts the utterance and the converted
        c1..cD are averaged (the same as averaging the decoders' normalized
        outputs: every model denormalizes with the same target statistics).
    """

    def __init__(self, model_dir: ModelDir | str | os.PathLike | None = None, which: str = "vawgan",
                 device: str = "cpu", f0_method: str | None = None, threads: int | None = None,
                 gv_postfilter: float = 0.0, aperiodicity_step: int | None = None,
                 vocoder_compensation: bool = False, members: int | None = None):
        if threads is not None and threads < 1:
            raise VawganError(f"threads must be at least 1, got {threads}")
        if not 0.0 <= gv_postfilter <= 2.0:
            raise VawganError(f"the GV postfilter's strength must be within 0..2 (1: the target's variance), "
                              f"got {gv_postfilter}")
        self.gv_postfilter = float(gv_postfilter)
        self.vocoder_compensation = bool(vocoder_compensation)
        self.threads = threads or available_cores()
        self.model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(resolve_model_dir(model_dir))
        self.which = which
        self.model = self.model_dir.networks(which, device)
        self.model_dirs = [self.model_dir, *self._choose_members(members)]  # the ensemble, in averaging order
        self.networks = [self.model, *(member.networks(which, device) for member in self.model_dirs[1:])]
        self.feature_config = analysis_settings(self.model.config.features, f0_method, aperiodicity_step)
        if self.gv_postfilter:
            for speaker in self.speakers:  # stop before any work when the statistics lack the GV
                self.model.stats.gv(speaker)

    def _choose_members(self, members: int | None) -> list[ModelDir]:
        """The first ``members - 1`` ensemble members holding the weights (None: all of them), each checked."""
        if members is not None and members < 1:
            raise VawganError(f"--members {members}: must be at least 1 (1: the directory's own model alone)")
        available = self.model_dir.member_paths(self.which)
        wanted = len(available) if members is None else members - 1
        if wanted > len(available):
            raise VawganError(f"--members {members}: {self.model_dir.path} holds {len(available) + 1} model(s) with "
                              f"{self.which} weights (itself and {len(available)} in members/)")
        return [self.model_dir.member(path) for path in available[:wanted]]

    @property
    def weights_time(self) -> float:
        """When the newest weights in use were written (each model's ``.pt``, or its NumPy copy without one)."""
        return max(model_dir.weights_time(self.which) for model_dir in self.model_dirs)

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
        its mean μ (for listening to the model's uncertainty; a fresh draw
        every call). With the converter's ``gv_postfilter`` set, the decoded
        c1..cD then go through :func:`gv_postfilter` towards the target's GV.
        """
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
        if source is not None:
            normalized = stats.normalize(mcep[:, 1:], source)
        else:
            normalized = normalize_unknown_source(mcep[:, 1:], feats.speech, stats)
        decoded = self._encode_decode(normalized, target_index, sample)
        converted = mcep.copy()
        converted[:, 1:] = stats.denormalize(decoded, target)
        if self.gv_postfilter:
            converted = gv_postfilter(converted, feats.speech, stats.gv(target), self.gv_postfilter)

        target_lf0 = (stats.lf0_mean[target], stats.lf0_std[target])
        if source is not None:
            source_lf0 = (stats.lf0_mean[source], stats.lf0_std[source])
        else:
            source_lf0 = lf0_statistics_of(feats.f0, fallback_std=target_lf0[1])
        f0 = convert_f0(feats.f0, source_lf0, target_lf0) if source_lf0 is not None else np.zeros_like(feats.f0)
        return dataclasses.replace(feats, f0=f0, mcep=converted)

    def _encode_decode(self, normalized: np.ndarray, target_index: int, sample: bool) -> np.ndarray:
        """Encode one utterance's normalized frames (μ, or a posterior draw), decode with speaker ``target_index``.

        An ensemble's models each encode and decode; their outputs are averaged.
        """
        decoded = [network.convert_frames(normalized, target_index, sample) for network in self.networks]
        return decoded[0] if len(decoded) == 1 else np.mean(decoded, axis=0)

    def analyze_file(self, path: str | os.PathLike, source: str | None = None,
                     progress: Progress | None = None) -> UtteranceFeatures:
        """Read ``path`` (resampled to the model's rate, with a warning) and analyse it like the training data.

        The source speaker's F0 search range is used when the config sets one.
        ``progress`` hears how the analysis advances (:data:`vawgan.features.batching.Progress`).
        """
        return analyze_file(path, self.feature_config, speaker=source, threads=self.threads, progress=progress)

    def convert_audio(self, x: np.ndarray, target: str, source: str | None = None, sample: bool = False,
                      name: str = "signal", progress: Progress | None = None) -> np.ndarray:
        """Convert a mono waveform at :attr:`sample_rate`; returns the converted waveform.

        ``name`` is how errors refer to the signal; ``progress`` hears how the
        analysis and the synthesis advance (:data:`vawgan.features.batching.Progress`).
        """
        feats = analyze(x, self.sample_rate, self.feature_config, speaker=source, name=name, threads=self.threads,
                        progress=progress)
        return self.render(self.convert_features(feats, source, target, sample=sample), target, progress=progress)

    def render(self, converted: UtteranceFeatures, target: str, progress: Progress | None = None) -> np.ndarray:
        """The waveform of features converted to ``target``: WORLD synthesis, vocoder-compensated when asked.

        The compensation's re-analysis uses the target's F0 floor, as the
        analysis of the target's own recordings does.
        """
        floor, _ = self.feature_config.f0_range(target)
        return render(converted, self.vocoder_compensation, floor, threads=self.threads, progress=progress)

    def write_converted(self, feats: UtteranceFeatures, out_wav: str | os.PathLike, target: str,
                        source: str | None = None, sample: bool = False, progress: Progress | None = None,
                        warn: bool = True) -> float:
        """Convert analysed features to ``target``, synthesize and write ``out_wav`` atomically (peak-safe).

        Returns how many dB the output was scaled down to avoid clipping
        (:func:`vawgan.audio.write_audio`, which warns unless ``warn`` is False).
        """
        y = self.render(self.convert_features(feats, source, target, sample=sample), target, progress=progress)
        return write_audio(out_wav, y, self.sample_rate, warn=warn)

    def convert_file(self, in_wav: str | os.PathLike, out_wav: str | os.PathLike, target: str,
                     source: str | None = None, sample: bool = False, progress: Progress | None = None) -> Path:
        """Read ``in_wav``, convert it to ``target`` and write ``out_wav`` atomically.

        Speaker names and the output path are checked before the audio is
        read, so a mistake costs no analysis time and leaves no file behind.
        An input at another sample rate is resampled to the model's (with a
        warning); the output is at the model's sample rate. ``progress`` hears
        how the analysis and the synthesis advance
        (:data:`vawgan.features.batching.Progress`; the CLI draws bars for long inputs).
        """
        out_wav = check_output_writable(out_wav)
        self.check_speaker(target)
        if source is not None:
            self.check_speaker(source)
        feats = self.analyze_file(in_wav, source, progress=progress)
        self.write_converted(feats, out_wav, target, source, sample=sample, progress=progress)
        return out_wav
