"""The matrix form of the mel-cepstrum equals pysptk's frame-by-frame conversion."""

from __future__ import annotations

import numpy as np
import pyworld
import pysptk
import pytest
import soundfile as sf

from vawgan.features import mcep


@pytest.fixture(scope="module")
def envelope(arctic_wav):
    """CheapTrick power envelope of the real ARCTIC recording (DIO F0, fast)."""
    x, fs = sf.read(arctic_wav, dtype="float64")
    f0, times = pyworld.dio(x, fs, frame_period=5.0)
    return pyworld.cheaptrick(x, f0, times, fs), fs


@pytest.mark.parametrize("order", [39, 24])
def test_sp2mc_equals_pysptk(envelope, order):
    sp, fs = envelope
    alpha = mcep.mcep_alpha(fs)
    ours = mcep.sp2mc(sp, order, alpha)
    reference = pysptk.sp2mc(sp, order=order, alpha=alpha)
    assert ours.shape == reference.shape == (sp.shape[0], order + 1)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


def test_mc2sp_equals_pysptk(envelope):
    sp, fs = envelope
    alpha = mcep.mcep_alpha(fs)
    mc = pysptk.sp2mc(sp, order=39, alpha=alpha)
    fft_size = 2 * (sp.shape[1] - 1)
    ours = mcep.mc2sp(mc, alpha, fft_size)
    reference = pysptk.mc2sp(mc, alpha=alpha, fftlen=fft_size)
    np.testing.assert_allclose(np.log(ours), np.log(reference), rtol=0, atol=1e-10)


def test_round_trip_keeps_the_envelope_shape(envelope):
    """sp → mc → sp smooths the envelope but keeps it within 2 dB on average."""
    sp, fs = envelope
    alpha = mcep.mcep_alpha(fs)
    back = mcep.mc2sp(mcep.sp2mc(sp, 39, alpha), alpha, 2 * (sp.shape[1] - 1))
    error_db = np.abs(10 * np.log10(back / sp))
    assert error_db.mean() < 2.0  # 1.06 dB measured on this recording


def test_alpha_for_common_rates():
    assert mcep.mcep_alpha(16000) == pytest.approx(0.41, abs=0.01)
    assert mcep.mcep_alpha(22050) == pytest.approx(0.455, abs=0.01)
