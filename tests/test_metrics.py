"""Known-answer tests of the evaluation measures (MCD, F0, V/UV, GV) on real mel-cepstra."""

from __future__ import annotations

import numpy as np
import pytest

from vawgan.errors import VawganError
from vawgan.alignment import MCD_CONSTANT, align, align_speakers, mcd_per_frame
from vawgan.evaluate.metrics import f0_scores, global_variance, gv_ratio, modulation_spectrum, score_pair


@pytest.fixture(scope="module")
def real_features(arctic_wav):
    """c0..c39, F0 and a speech mask of pysptk's CMU ARCTIC recording (WORLD DIO analysis)."""
    import pysptk
    import pyworld
    import soundfile as sf

    x, fs = sf.read(arctic_wav)
    x = x.astype(np.float64)
    f0, t = pyworld.dio(x, fs, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, fs)
    sp = pyworld.cheaptrick(x, f0, t, fs)
    mcep = pysptk.sp2mc(sp, order=39, alpha=pysptk.util.mcepalpha(fs))
    speech = mcep[:, 0] > mcep[:, 0].max() - 4.0  # frames within ~35 dB of the loudest one
    return mcep, f0, speech


def test_mcd_constant_is_the_textbook_value():
    assert MCD_CONSTANT == pytest.approx(6.1418, abs=1e-4)  # 10/ln10·sqrt(2)


def test_identical_utterances_score_zero(real_features):
    mcep, f0, speech = real_features
    s = score_pair(mcep, f0, speech, mcep.copy(), f0.copy(), speech.copy())
    assert s.mcd == 0.0 and s.mcd_with_c0 == 0.0
    assert s.f0_rmse_cents == 0.0 and s.f0_corr == pytest.approx(1.0) and s.vuv_error == 0.0
    np.testing.assert_allclose(s.gv_converted / s.gv_natural, 1.0)
    assert s.aligned_frames == speech.sum()


def test_constant_offset_gives_closed_form_mcd(real_features):
    mcep, f0, speech = real_features
    delta = 0.01
    shifted = mcep + delta
    s = score_pair(mcep, f0, speech, shifted, f0, speech)
    # Every aligned frame differs by delta in each of c1..c39: MCD = K·sqrt(39·δ²), independent of the frame.
    assert s.mcd == pytest.approx(MCD_CONSTANT * np.sqrt(39 * delta ** 2), rel=1e-9)
    assert s.mcd_with_c0 == pytest.approx(MCD_CONSTANT * np.sqrt(40 * delta ** 2), rel=1e-9)
    # A constant offset does not change the variance of any dimension.
    np.testing.assert_allclose(s.gv_converted, s.gv_natural, rtol=1e-9)


def test_dtw_undoes_a_time_stretch(real_features):
    mcep, f0, speech = real_features
    stretched = np.repeat(mcep, 2, axis=0)  # every frame twice: a 2× slower utterance
    s = score_pair(mcep, f0, speech, stretched, np.repeat(f0, 2), np.repeat(speech, 2))
    assert s.mcd == pytest.approx(0.0, abs=1e-9)
    assert s.f0_rmse_cents == pytest.approx(0.0, abs=1e-9)
    assert s.aligned_frames == 2 * speech.sum()



def test_speaker_alignment_ignores_a_fixed_tilt_and_the_high_orders(real_features):
    """A "second speaker" = the recording 2x slower, a constant offset on every coefficient (another voice's
    fixed spectral tilt) and noise above c12 (speaker detail): align_speakers still finds the stretch exactly,
    where plain DTW on c1..c39 is pulled off it."""
    mcep, _, speech = real_features
    source = mcep[speech, 1:]
    rng = np.random.default_rng(0)
    other = np.repeat(source, 2, axis=0) + rng.normal(0.0, 0.3, size=39)
    other[:, 12:] += rng.normal(0.0, 0.1, size=(len(other), 27))
    src_idx, other_idx = align_speakers(source, other)
    np.testing.assert_array_equal(src_idx, other_idx // 2)
    plain_src, plain_other = align(source, other)
    assert not np.array_equal(plain_src, plain_other // 2)

def test_align_returns_a_monotonic_path_covering_both_sequences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(45, 5))
    ri, ci = align(a, b)
    assert ri[0] == 0 and ci[0] == 0 and ri[-1] == 29 and ci[-1] == 44
    assert np.all(np.diff(ri) >= 0) and np.all(np.diff(ci) >= 0)
    assert set(ri) == set(range(30)) and set(ci) == set(range(45))


def test_align_refuses_sequences_too_long_for_dtw_with_one_line():
    """Two 5-minute recordings would need ~70 GB of DTW matrices: a clear error before any allocation."""
    long = np.zeros((60_000, 39))
    with pytest.raises(VawganError, match=r"60000 x 60000 frames are too long to align by DTW \(about 72 GB\)"):
        align(long, long)


def test_mcd_per_frame_rejects_unaligned_arrays():
    with pytest.raises(ValueError, match="aligned"):
        mcd_per_frame(np.zeros((3, 39)), np.zeros((4, 39)))


def test_f0_scores_known_answers():
    ref = np.array([0, 100, 110, 120, 0, 130, 140, 0.0])
    up = ref * 2 ** (100 / 1200)  # a semitone higher everywhere
    rmse, corr, vuv, n = f0_scores(ref, up)
    assert rmse == pytest.approx(100.0) and corr == pytest.approx(1.0) and vuv == 0.0 and n == 5
    flipped = up.copy()
    flipped[[1, 4]] = [0, 150]  # one voiced frame made unvoiced, one unvoiced made voiced
    rmse, _, vuv, n = f0_scores(ref, flipped)
    assert vuv == pytest.approx(2 / 8) and n == 4 and rmse == pytest.approx(100.0)
    rmse, corr, vuv, n = f0_scores(np.zeros(5), np.zeros(5))
    assert np.isnan(rmse) and np.isnan(corr) and vuv == 0.0 and n == 0


def test_gv_ratio_of_a_scaled_trajectory_is_the_squared_scale(real_features):
    mcep, _, speech = real_features
    frames = mcep[speech, 1:]
    shrunk = frames.mean(axis=0) + 0.5 * (frames - frames.mean(axis=0))  # over-smoothing by half
    ratio = gv_ratio(global_variance(shrunk), global_variance(frames))
    np.testing.assert_allclose(ratio, 0.25, rtol=1e-9)


def test_modulation_spectrum_loses_high_frequencies_when_smoothed(real_features):
    from scipy.ndimage import uniform_filter1d

    mcep, _, speech = real_features
    traj = mcep[speech, 1]
    freqs, natural = modulation_spectrum(traj, 5.0)
    _, smooth = modulation_spectrum(uniform_filter1d(traj, 9), 5.0)
    assert freqs[-1] == pytest.approx(100.0)  # Nyquist of a 5 ms frame rate
    high = freqs > 20
    assert np.mean(natural[high] - smooth[high]) > 10.0  # dB lost by a 45 ms moving average


def test_modulation_spectrum_distance_known_answers(flite_features):
    from vawgan.evaluate.metrics import modulation_spectrum_distance
    from vawgan.features.store import load_features

    feature_dir, utterances, _ = flite_features
    u = utterances[0]
    feats = load_features(feature_dir / u.speaker / f"{u.utt_id}.npz")
    natural = feats.mcep[feats.speech, 1:].astype(np.float64)
    assert modulation_spectrum_distance(natural, natural) == 0.0
    # a trajectory scaled by a has every modulation power scaled by a², i.e. shifted by 20·log10(a) dB
    assert modulation_spectrum_distance(natural, 0.5 * natural) == pytest.approx(20 * np.log10(2), abs=1e-6)
    # smoothing in time (what an over-smoothed conversion does) moves it away from the natural spectrum
    kernel = np.ones(9) / 9
    smoothed = np.stack([np.convolve(natural[:, d], kernel, mode="same") for d in range(natural.shape[1])], axis=1)
    assert modulation_spectrum_distance(natural, smoothed) > 3.0
    assert np.isnan(modulation_spectrum_distance(natural[:40], natural))
