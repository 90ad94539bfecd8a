"""vawgan.audio: every kind of bad input gets one clear line; good input comes back mono at the right rate."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from vawgan.audio import load_audio, scaling_summary, write_audio
from vawgan.errors import VawganError

FS = 16000


@pytest.fixture(scope="module")
def speech(arctic_wav) -> np.ndarray:
    """The real ARCTIC recording, mono float64 at 16 kHz."""
    x, fs = sf.read(arctic_wav, dtype="float64")
    assert fs == FS and x.ndim == 1
    return x


def _one_line(exc_info, *fragments) -> None:
    message = str(exc_info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_reads_real_recording_unchanged(arctic_wav, speech, caplog):
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        x = load_audio(arctic_wav, FS)
    assert x.dtype == np.float64 and x.ndim == 1
    np.testing.assert_array_equal(x, speech)
    assert not caplog.records  # nothing to warn about


def test_missing_file(tmp_path):
    with pytest.raises(VawganError) as err:
        load_audio(tmp_path / "nope.wav", FS)
    _one_line(err, "nope.wav", "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "empty.wav", "empty file")


def test_non_audio_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("fb001 Author of the danger trail, Philip Steels, etc.\n" * 20)
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "notes.wav", "not a readable audio file")


def test_truncated_header(tmp_path, speech):
    good = tmp_path / "good.wav"
    sf.write(good, speech, FS, subtype="PCM_16")
    path = tmp_path / "truncated.wav"
    path.write_bytes(good.read_bytes()[:30])  # the 44-byte RIFF header cut short
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "truncated.wav", "damaged or truncated WAV header")


def test_truncated_data_warns(tmp_path, speech, caplog):
    good = tmp_path / "good.wav"
    sf.write(good, speech, FS, subtype="PCM_16")
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:44 + 2 * 8000])  # header + the first half second
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        x = load_audio(path, FS)
    assert len(x) == 8000
    np.testing.assert_allclose(x, speech[:8000], atol=1 / 32768)
    assert any("cut.wav" in r.getMessage() and "truncated file" in r.getMessage() for r in caplog.records)


def test_header_without_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros(0), FS, subtype="PCM_16")
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "nosamples.wav", "no audio samples")


def test_silent_file(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(FS), FS, subtype="PCM_16")
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "silent.wav", "silent")


def test_constant_offset_alone_is_silent(tmp_path):
    # A file holding only a DC offset (a stuck converter) has no sound in it, though its peak is high.
    path = tmp_path / "offset.wav"
    sf.write(path, np.full(FS, 0.5), FS, subtype="PCM_16")
    with pytest.raises(VawganError) as err:
        load_audio(path, FS)
    _one_line(err, "offset.wav", "silent", "constant offset")


def test_speech_with_an_offset_is_not_silent(tmp_path, speech):
    path = tmp_path / "offset_speech.wav"
    sf.write(path, 0.5 * speech + 0.3, FS, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path, FS), 0.5 * speech + 0.3, atol=1e-4)


def test_stereo_is_averaged_with_a_warning(tmp_path, speech, caplog):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([speech, 0.5 * speech], axis=1), FS, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        x = load_audio(path, FS)
    np.testing.assert_allclose(x, 0.75 * speech, atol=1e-6)
    assert any("stereo.wav" in r.getMessage() and "2 channels" in r.getMessage() for r in caplog.records)


def test_other_sample_rate_is_resampled_with_a_warning(tmp_path, speech, caplog):
    import librosa

    path = tmp_path / "22k.wav"
    sf.write(path, librosa.resample(speech, orig_sr=FS, target_sr=22050), 22050, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        x = load_audio(path, FS)
    assert abs(len(x) - len(speech)) <= 2
    # Down and up again keeps the speech band: the two agree closely.
    n = min(len(x), len(speech))
    assert np.corrcoef(x[:n], speech[:n])[0, 1] > 0.99
    assert any("22050 Hz" in r.getMessage() and "16000 Hz" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("level", [1.0, 0.5])
def test_clipped_audio_warns(tmp_path, speech, caplog, level):
    # Clipped at full scale, or clipped and then scaled down by 6 dB: a plateau at the peak either way.
    path = tmp_path / "clipped.wav"
    sf.write(path, level * np.clip(4.0 * speech, -1.0, 1.0), FS, subtype="PCM_16")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        load_audio(path, FS)
    assert any("clipped.wav" in r.getMessage() and "clipped" in r.getMessage() for r in caplog.records)


def test_quiet_16_bit_noise_is_not_mistaken_for_clipping(tmp_path, caplog):
    # Room noise a few quantisation steps high hits its peak value again and again; that is not clipping.
    path = tmp_path / "noise.wav"
    steps = np.random.default_rng(0).integers(-3, 4, 16000)
    sf.write(path, steps / 32768.0, FS, subtype="PCM_16")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        load_audio(path, FS)
    assert not any("clipped" in r.getMessage() for r in caplog.records)


def test_a_short_file_with_one_sample_at_its_peak_is_not_clipped(tmp_path, speech, caplog):
    # 500 samples of real speech: its single peak sample is 0.2 % of the file, but one sample is no plateau.
    path = tmp_path / "short.wav"
    start = int(np.argmax(np.abs(speech))) - 250
    sf.write(path, speech[start:start + 500], FS, subtype="PCM_16")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        load_audio(path, FS)
    assert not any("clipped" in r.getMessage() for r in caplog.records)


def test_floating_point_audio_beyond_full_scale_is_kept_without_a_clipping_warning(tmp_path, speech, caplog):
    path = tmp_path / "loud_float.wav"
    loud = 40.0 * speech / np.abs(speech).max()
    sf.write(path, loud, FS, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        x = load_audio(path, FS)
    np.testing.assert_allclose(x, loud, rtol=1e-6)
    assert not any("clipped" in r.getMessage() for r in caplog.records)


def test_write_audio_rescales_instead_of_clipping(tmp_path, speech, caplog):
    path = tmp_path / "loud.wav"
    loud = 3.0 * speech / np.abs(speech).max()
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        write_audio(path, loud, FS)
    y, fs = sf.read(path)
    assert fs == FS
    assert np.abs(y).max() == pytest.approx(0.99, abs=1e-3)
    np.testing.assert_allclose(y, loud * 0.99 / 3.0, atol=1e-4)  # scaled, not clipped
    assert any("would clip" in r.getMessage() for r in caplog.records)
    assert [p.name for p in tmp_path.iterdir()] == ["loud.wav"]  # no temporary file left behind


def test_write_audio_returns_the_reduction_and_can_leave_the_warning_to_a_batch_summary(tmp_path, speech, caplog):
    loud = 3.0 * speech / np.abs(speech).max()
    with caplog.at_level(logging.WARNING, logger="vawgan"):
        reductions = [write_audio(tmp_path / "loud.wav", loud, FS, warn=False),
                      write_audio(tmp_path / "quiet.wav", 0.5 * loud / 3.0, FS, warn=False),
                      write_audio(tmp_path / "louder.wav", 2 * loud, FS, warn=False)]
    assert not caplog.records
    assert reductions[0] == pytest.approx(20 * np.log10(3.0 / 0.99)) and reductions[1] == 0.0
    assert scaling_summary(reductions) == "2 of 3 outputs were scaled down to avoid clipping, by at most 15.7 dB"
    assert scaling_summary(reductions[1:2]) is None and scaling_summary([]) is None


def test_write_audio_failure_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_audio(tmp_path / "bad.wav", np.array([0.1, np.nan]), FS)
    assert not list(tmp_path.iterdir())
