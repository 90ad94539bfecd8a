"""The batched D4C (vawgan.features.d4c) against pyworld's own D4C + code_aperiodicity, on real speech."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import pyworld
import soundfile as sf

from vawgan.features import d4c


def _dio(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    f0, times = pyworld.dio(x, fs, frame_period=5.0)
    return pyworld.stonemask(x, f0, times, fs), times


def _pyworld_coded(x, f0, times, fs, fft_size):
    return pyworld.code_aperiodicity(pyworld.d4c(x, f0, times, fs, fft_size=fft_size), fs)


def _recordings(shared_corpus, arctic_wav):
    paths = [shared_corpus / speaker / "fb003.wav" for speaker in ("awb", "rms", "slt")] + [arctic_wav]
    return [sf.read(path, dtype="float64") for path in paths]


def test_matches_pyworld_on_real_speech(shared_corpus, arctic_wav):
    """Three Flite voices and the CMU ARCTIC recording: the same coded aperiodicity as pyworld, to WORLD's dither."""
    for x, fs in _recordings(shared_corpus, arctic_wav):
        f0, times = _dio(x, fs)
        expected = _pyworld_coded(x, f0, times, fs, 1024)
        coded = d4c.coded_aperiodicity(x, f0, times, fs, 1024)
        assert coded.shape == expected.shape == (len(f0), 1)
        difference = np.abs(coded - expected)  # dB
        # Measured: at most 0.18 dB, mean 0.001-0.004 dB (pyworld's dither of 1e-12 per sample is left out).
        assert difference.max() < 0.3 and difference.mean() < 0.01
        # Unvoiced frames and frames D4C's voicing check rejects: WORLD's "fully aperiodic" value, exactly.
        fully_aperiodic = expected[:, 0] == d4c.UNVOICED_CODED
        assert fully_aperiodic.any() and (f0 == 0).any()
        np.testing.assert_array_equal(coded[fully_aperiodic], expected[fully_aperiodic])
        assert np.all(coded <= 0.0)


@pytest.mark.parametrize("fs", [22050, 44100, 48000])
def test_other_sample_rates_code_the_same_bands(shared_corpus, fs):
    """More bands at higher rates, and the band-centre sampling of code_aperiodicity where centres miss a bin."""
    x, source_fs = sf.read(shared_corpus / "slt" / "fb003.wav", dtype="float64")
    x = librosa.resample(x, orig_sr=source_fs, target_sr=fs)
    f0, times = _dio(x, fs)
    fft_size = pyworld.get_cheaptrick_fft_size(fs)
    expected = _pyworld_coded(x, f0, times, fs, fft_size)
    coded = d4c.coded_aperiodicity(x, f0, times, fs, fft_size)
    assert coded.shape == expected.shape == (len(f0), d4c.number_of_bands(fs))
    assert np.all(np.isfinite(coded))
    # The 3 kHz band has the speech's energy: it matches. Bands above the 8 kHz the recording was made with
    # hold no signal, and both implementations measure rounding noise there (not compared).
    difference = np.abs(coded[:, 0] - expected[:, 0])
    assert difference.max() < 0.3 and difference.mean() < 0.01


def test_frames_are_analysed_independently(arctic_wav):
    """Any subset of frames gives those frames' rows of the whole (what analysis threads rely on)."""
    x, fs = sf.read(arctic_wav, dtype="float64")
    f0, times = _dio(x, fs)
    whole = d4c.coded_aperiodicity(x, f0, times, fs, 1024)
    for part in (slice(0, 137), slice(137, 560), slice(560, None), slice(3, None, 7)):
        np.testing.assert_allclose(d4c.coded_aperiodicity(x, f0[part], times[part], fs, 1024), whole[part],
                                   atol=1e-6)


def test_unvoiced_signal_and_band_limited_audio(arctic_wav):
    x, fs = sf.read(arctic_wav, dtype="float64")
    f0, times = _dio(x, fs)
    all_unvoiced = d4c.coded_aperiodicity(x, np.zeros_like(f0), times, fs, 1024)
    assert np.all(all_unvoiced == d4c.UNVOICED_CODED)
    # Telephone-band audio at 16 kHz: nothing above 4 kHz. Finite everywhere, and voiced frames stay periodic.
    narrow = librosa.resample(librosa.resample(x, orig_sr=fs, target_sr=8000), orig_sr=8000, target_sr=fs)
    f0, times = _dio(narrow, fs)
    coded = d4c.coded_aperiodicity(narrow, f0, times, fs, 1024)
    assert np.all(np.isfinite(coded))
    assert np.median(coded[f0 > 0]) < -3.0


def test_number_of_bands_follows_world():
    assert [d4c.number_of_bands(fs) for fs in (16000, 22050, 24000, 44100, 48000)] == [1, 2, 3, 5, 5]
