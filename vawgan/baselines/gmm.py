"""Joint-density GMM voice conversion with MLPG — the classic baseline (Toda et al. 2007; sprocket).

The peer system the VAW-GAN is compared against. Unlike the VAE it needs
*parallel* data: the same sentences spoken by source and target.

Training (:func:`train_gmm`):

1. for each parallel training sentence, keep the speech frames of both sides,
   append delta features (window ``[-0.5, 0, 0.5]``) to c1..cD, and pair the
   frames along a DTW path on the static features
   (:func:`vawgan.alignment.align_speakers`, as for the VAW-GAN's parallel pairs);
2. fit one Gaussian mixture (``sklearn.mixture.GaussianMixture``) to the joint
   vectors ``[x, Δx, y, Δy]``;
3. ``realign`` times (default once, as sprocket iterates its alignment):
   convert each training sentence's source with that mixture, pair the frames
   anew along a DTW path between the conversion and the target (one voice now,
   c1..cD), and fit a fresh mixture to those pairs.

Conversion (:meth:`JointGMM.convert`), sprocket's "suboptimal mixture sequence" method:

1. per source frame, pick the mixture with the highest posterior given ``[x, Δx]``;
2. take that mixture's conditional mean ``E[y, Δy | x, Δx]`` and conditional
   variances (the diagonal of its conditional covariance);
3. maximum-likelihood parameter generation (MLPG): the static trajectory whose
   statics and deltas best match those means under those variances, one sparse
   linear system per dimension.

c0 and the aperiodicity stay the source's and F0 goes through the same
log-Gaussian transform as the neural systems (:func:`vawgan.transforms.convert_f0`),
so the comparison isolates the spectral mapping.

A folder of the baseline holds one model per ordered speaker pair,
``<source>-<target>.npz`` (:func:`model_path`). :class:`PairModels` converts
utterances with such a folder, the one way every caller (``vawgan
gmm-convert``, the feature-level evaluation, the figures) converts with the
baseline; :func:`write_conversions` writes a manifest's conversions as wavs.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import spsolve
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from vawgan.alignment import align, align_speakers
from vawgan.audio import write_audio
from vawgan.corpus import parallel_pairs
from vawgan.errors import VawganError
from vawgan.features.store import UtteranceFeatures, feature_path, load_features, parallel_speech_frames
from vawgan.features.synthesis import render
from vawgan.stats import Statistics
from vawgan.systems import SystemSettings
from vawgan.transforms import convert_f0
from vawgan.utils import bar_disabled, read_npz, save_npz_atomic


DELTA_WINDOW = (-0.5, 0.0, 0.5)


def delta_matrix(num_frames: int):
    """Sparse (T, T) matrix W with (W @ x)_t = 0.5·(x_{t+1} − x_{t−1}), edges repeating the end frames."""
    t = np.arange(num_frames)
    rows = np.concatenate([t, t])
    cols = np.concatenate([np.minimum(t + 1, num_frames - 1), np.maximum(t - 1, 0)])
    vals = np.concatenate([np.full(num_frames, DELTA_WINDOW[2]), np.full(num_frames, DELTA_WINDOW[0])])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(num_frames, num_frames))


def with_deltas(static: np.ndarray) -> np.ndarray:
    """(T, D) static features → (T, 2D) ``[static, delta]`` with the window MLPG inverts."""
    static = np.asarray(static, dtype=np.float64)
    return np.hstack([static, delta_matrix(len(static)) @ static])


def mlpg(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Maximum-likelihood static trajectory from per-frame static+delta means and variances.

    ``means`` and ``variances`` are (T, 2D), ``[static, delta]``. Each dimension
    is solved on its own (diagonal covariances): minimise
    Σ_t (y_t − μ_t)²/σ²_t + ((W y)_t − μΔ_t)²/σΔ²_t, i.e. solve
    (P + Wᵀ PΔ W) y = P μ + Wᵀ PΔ μΔ.
    """
    means = np.asarray(means, dtype=np.float64)
    precisions = 1.0 / np.asarray(variances, dtype=np.float64)
    num_frames, width = means.shape
    dim = width // 2
    w = delta_matrix(num_frames)
    out = np.empty((num_frames, dim))
    for d in range(dim):
        p_static = sparse.diags(precisions[:, d])
        p_delta = sparse.diags(precisions[:, dim + d])
        lhs = (p_static + w.T @ p_delta @ w).tocsc()
        rhs = precisions[:, d] * means[:, d] + w.T @ (precisions[:, dim + d] * means[:, dim + d])
        out[:, d] = spsolve(lhs, rhs)
    return out


def joint_frames(pairs: Iterable[tuple[np.ndarray, np.ndarray]], aligner: "JointGMM | None" = None) -> np.ndarray:
    """DTW-aligned joint vectors ``[x, Δx, y, Δy]`` from (source c1..cD, target c1..cD) speech-frame pairs.

    Without ``aligner`` the two voices are aligned directly
    (:func:`vawgan.alignment.align_speakers`); with one, along the DTW
    path between ``aligner``'s conversion of the source and the target.
    """
    rows = []
    for source, target in pairs:
        if aligner is None:
            si, ti = align_speakers(source, target)
        else:
            si, ti = align(aligner.convert(source), target)
        rows.append(np.hstack([with_deltas(source)[si], with_deltas(target)[ti]]))
    if not rows:
        raise VawganError("no parallel training sentences for the GMM baseline; check the manifest's train split")
    return np.vstack(rows)


class JointGMM:
    """A Gaussian mixture on joint source/target vectors and the conversion it defines.

    Build one with :func:`train_gmm` or :meth:`load`.
    """

    def __init__(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, covariance_type: str):
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
        self.weights = np.asarray(weights, dtype=np.float64)
        self.means = np.asarray(means, dtype=np.float64)
        full = np.asarray(covariances, dtype=np.float64)
        if covariance_type == "diag":
            full = np.stack([np.diag(c) for c in full])
        self.covariance_type = covariance_type
        self.covariances = full  # (M, 4D, 4D)
        self.dim = self.means.shape[1] // 4
        # How the EM fit ended, set by train_gmm (None for a model read from a file: not saved).
        self.em_iterations: int | None = None
        self.em_converged: bool | None = None
        self._prepare()

    def _prepare(self) -> None:
        """Precompute per-mixture source marginals and conditional regressions."""
        h = 2 * self.dim  # width of [x, Δx] and of [y, Δy]
        sxx = self.covariances[:, :h, :h]
        syx = self.covariances[:, h:, :h]
        syy = self.covariances[:, h:, h:]
        self._marginal = GaussianMixture(n_components=len(self.weights), covariance_type="full")
        self._marginal.weights_ = self.weights
        self._marginal.means_ = self.means[:, :h]
        self._marginal.covariances_ = sxx
        self._marginal.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(sxx))
        # E[y | x, m] = μ_y + A_m (x − μ_x),  A_m = Σ_yx Σ_xx⁻¹;  Cov[y | x, m] = Σ_yy − A_m Σ_xy.
        self._regression = np.einsum("mij,mjk->mik", syx, np.linalg.inv(sxx))
        cond_cov = syy - np.einsum("mij,mkj->mik", self._regression, syx)
        self._cond_var = np.maximum(np.einsum("mii->mi", cond_cov), 1e-8)

    def convert(self, source: np.ndarray) -> np.ndarray:
        """Convert source c1..cD frames (T, D) to target c1..cD frames (T, D)."""
        source = np.asarray(source, dtype=np.float64)
        if source.ndim != 2 or source.shape[1] != self.dim:
            raise ValueError(f"expected (T, {self.dim}) source frames, got {source.shape}")
        x = with_deltas(source)
        with threadpool_limits(limits=1):  # small matrices: one BLAS thread is faster (see train_gmm)
            mixture = self._marginal.predict(x)
        h = 2 * self.dim
        offset = x - self.means[mixture, :h]
        cond_mean = self.means[mixture, h:] + np.einsum("tij,tj->ti", self._regression[mixture], offset)
        return mlpg(cond_mean, self._cond_var[mixture])

    def save(self, path: str | os.PathLike) -> None:
        """Write the mixture parameters to one ``.npz`` file, atomically."""
        covs = self.covariances if self.covariance_type == "full" else np.einsum("mii->mi", self.covariances)
        save_npz_atomic(path, weights=self.weights, means=self.means, covariances=covs,
                        covariance_type=np.array(self.covariance_type))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "JointGMM":
        """Read a file written by :meth:`save`; missing or damaged is a :class:`VawganError`."""
        with read_npz(path, "GMM baseline model", "run `vawgan gmm-train` first", "re-run `vawgan gmm-train`") as data:
            return cls(data["weights"], data["means"], data["covariances"], str(data["covariance_type"]))


def train_gmm(pairs: Iterable[tuple[np.ndarray, np.ndarray]], n_components: int = 32, covariance_type: str = "full",
              max_iter: int = 50, seed: int = 0, max_frames: int | None = None, realign: int = 1) -> JointGMM:
    """Fit a joint-density GMM to DTW-aligned (source c1..cD, target c1..cD) speech frames.

    ``realign`` is the number of refinement passes (step 3 of the module
    docstring; 0: the direct cross-speaker alignment only). On the Flite eval
    split one pass took the GMM's features from 3.83 to 3.71 dB MCD (16
    components, 10 000 EM frames, mean over the six speaker pairs); each pass
    costs another EM fit.

    ``max_frames`` keeps an evenly spaced subset of the aligned frames for EM
    (None: all); neighbouring 5 ms frames are nearly alike, and EM time grows
    linearly with the frame count.

    ``reg_covar`` of 1e-3 keeps full covariances of 4·D = 156 dimensions invertible.
    The returned model's ``em_iterations`` and ``em_converged`` say whether
    EM met its tolerance within ``max_iter`` iterations (of its last fit).
    BLAS runs single-threaded during EM: its per-call matrices are small, and
    on a busy 2-core machine two BLAS threads made EM about ten times slower
    (measured: 32 s instead of 3 s for 4 components on 2,651 frames).
    """
    if realign < 0:
        raise VawganError(f"realign={realign}: the number of refinement passes must be 0 or more")
    pairs = list(pairs)
    model = None
    for _ in range(realign + 1):
        model = _fit_joint(joint_frames(pairs, aligner=model), n_components, covariance_type, max_iter, seed,
                           max_frames)
    return model


def _fit_joint(joint: np.ndarray, n_components: int, covariance_type: str, max_iter: int, seed: int,
               max_frames: int | None) -> JointGMM:
    """One EM fit of :func:`train_gmm` to the joint vectors ``joint``."""
    if max_frames is not None and len(joint) > max_frames:
        joint = joint[np.linspace(0, len(joint) - 1, max_frames).round().astype(int)]
    if len(joint) < 10 * n_components:
        raise VawganError(f"only {len(joint)} aligned frames for a {n_components}-component GMM; "
                          "use more training sentences or fewer components")
    gmm = GaussianMixture(n_components=n_components, covariance_type=covariance_type, max_iter=max_iter,
                          reg_covar=1e-3, random_state=seed, init_params="kmeans")
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Reported by the caller from em_converged, in one line instead of sklearn's warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(joint)
    model = JointGMM(gmm.weights_, gmm.means_, gmm.covariances_, covariance_type)
    model.em_iterations, model.em_converged = int(gmm.n_iter_), bool(gmm.converged_)
    return model


def train_pair(utterances: list, feature_dir: str | os.PathLike, source: str, target: str,
               n_components: int = 32, covariance_type: str = "full", max_iter: int = 50, seed: int = 0,
               max_frames: int | None = None, realign: int = 1) -> JointGMM:
    """Train the GMM of one ordered speaker pair on the parallel sentences of ``utterances`` (a manifest split).

    Features come from ``vawgan extract`` (``<feature_dir>/<speaker>/<utt_id>.npz``); speech frames only.
    """
    pairs = parallel_speech_frames(utterances, feature_dir, source, target)
    if not pairs:
        raise VawganError(f"no parallel sentences of {source} and {target} in the manifest; the GMM baseline "
                          "needs the same sentences from both speakers")
    return train_gmm(pairs, n_components=n_components, covariance_type=covariance_type, max_iter=max_iter, seed=seed,
                     max_frames=max_frames, realign=realign)


def convert_features(gmm: JointGMM, feats, source_lf0: tuple[float, float], target_lf0: tuple[float, float]):
    """Converted copy of one utterance's features: c1..cD by the GMM, F0 by the log-Gaussian transform.

    c0 and the coded aperiodicity stay the source's, as in the neural systems.
    """
    mcep = np.asarray(feats.mcep, dtype=np.float64).copy()
    mcep[:, 1:] = gmm.convert(mcep[:, 1:])
    return dataclasses.replace(feats, mcep=mcep, f0=convert_f0(feats.f0, source_lf0, target_lf0))


def model_path(gmm_dir: str | os.PathLike, source: str, target: str) -> Path:
    """Where a folder of the baseline keeps the model of one ordered speaker pair: ``<gmm_dir>/<source>-<target>.npz``."""
    return Path(gmm_dir) / f"{source}-{target}.npz"


class PairModels:
    """The models of one folder of the baseline (:func:`model_path`), converting utterances between their speakers.

    ``stats`` gives the speakers' log-F0 statistics for the F0 transform. Each
    pair's model is read from its file once, when first needed.
    """

    def __init__(self, gmm_dir: str | os.PathLike, stats: Statistics):
        self.gmm_dir = Path(gmm_dir)
        self.stats = stats
        self._models: dict[tuple[str, str], JointGMM] = {}

    def has_pair(self, source: str, target: str) -> bool:
        """True when the folder holds a model from ``source`` to ``target``."""
        return model_path(self.gmm_dir, source, target).is_file()

    def convert_features(self, feats: UtteranceFeatures, source: str, target: str) -> UtteranceFeatures:
        """One utterance's features converted from ``source`` to ``target`` (see :func:`convert_features`)."""
        if (source, target) not in self._models:
            self._models[source, target] = JointGMM.load(model_path(self.gmm_dir, source, target))
        lf0 = self.stats.lf0_mean, self.stats.lf0_std
        return convert_features(self._models[source, target], feats, (lf0[0][source], lf0[1][source]),
                                (lf0[0][target], lf0[1][target]))


def write_conversions(gmm_dir: str | os.PathLike, utterances: list, feature_dir: str | os.PathLike,
                      stats: Statistics, feature_config, out_dir: str | os.PathLike,
                      vocoder_compensation: bool = False, progress: bool = True) -> list[float]:
    """Convert every sentence of ``utterances`` (a manifest) that both speakers of a pair in ``gmm_dir`` recorded.

    The source's features (``vawgan extract``'s, in ``feature_dir``) are
    converted by :class:`PairModels` and rendered by WORLD (after vocoder
    compensation when asked, with the target's F0 floor from
    ``feature_config``) into ``<out_dir>/<source>-<target>/<utt_id>.wav``.
    What they were made with is recorded in ``<out_dir>/system.yaml``
    (:class:`vawgan.systems.SystemSettings`). Returns, for each wav written,
    by how many dB it was scaled down to avoid clipping (0 for most;
    :func:`vawgan.audio.scaling_summary` makes one line of them).
    """
    speakers = sorted({u.speaker for u in utterances})
    models = PairModels(gmm_dir, stats)
    pairs = [pair for pair in itertools.permutations(speakers, 2) if models.has_pair(*pair)]
    if not pairs:
        raise VawganError(f"{gmm_dir}: no GMM models (<src>-<tgt>.npz) for the speakers of the manifest "
                          f"({', '.join(speakers)}); run `vawgan gmm-train` first")
    jobs = []
    for source, target in pairs:
        for name in (source, target):
            stats.mean_std(name)  # a clear error when the statistics lack a speaker
        jobs += [(source, target, src_utt.utt_id)
                 for src_utt, _ in parallel_pairs(utterances, source, target, split=None)]
    reductions = []
    for source, target, utt_id in tqdm(jobs, desc="gmm convert", unit="utt", disable=bar_disabled(progress)):
        feats = load_features(feature_path(feature_dir, source, utt_id))
        converted = models.convert_features(feats, source, target)
        y = render(converted, vocoder_compensation, feature_config.f0_range(target)[0])
        reductions.append(write_audio(Path(out_dir) / f"{source}-{target}" / f"{utt_id}.wav", y, feats.fs,
                                      warn=False))
    SystemSettings("gmm", vocoder_compensation=vocoder_compensation, model=str(Path(gmm_dir).resolve())).save(out_dir)
    return reductions
