"""Unit tests of the conversion helpers that need no trained model: F0 transform, output checks."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from vawgan.config import FeatureConfig
from vawgan.convert import analysis_settings, check_output_writable
from vawgan.errors import VawganError
from vawgan.stats import Statistics
from vawgan.transforms import convert_f0, lf0_statistics_of, normalize_unknown_source


def test_convert_f0_moves_log_gaussian_to_target_and_keeps_unvoiced():
    rng = np.random.default_rng(0)
    src_mean, src_std = np.log(120.0), 0.15
    tgt_mean, tgt_std = np.log(210.0), 0.10
    f0 = np.exp(rng.normal(src_mean, src_std, 20000))
    f0[::5] = 0.0  # every fifth frame unvoiced
    out = convert_f0(f0, (src_mean, src_std), (tgt_mean, tgt_std))
    voiced = f0 > 0
    assert np.all(out[~voiced] == 0.0)
    assert np.all(out[voiced] > 0.0)
    lf0 = np.log(out[voiced])
    assert lf0.mean() == pytest.approx(tgt_mean, abs=0.01)
    assert lf0.std() == pytest.approx(tgt_std, rel=0.02)
    # A frame exactly at the source mean lands exactly at the target mean.
    assert convert_f0(np.array([120.0]), (src_mean, src_std), (tgt_mean, tgt_std))[0] == pytest.approx(210.0)


def test_convert_f0_identity_when_source_equals_target():
    f0 = np.array([0.0, 100.0, 150.0, 0.0, 220.0])
    stats = (np.log(140.0), 0.2)
    np.testing.assert_allclose(convert_f0(f0, stats, stats), f0)


def test_lf0_statistics_of_an_utterance():
    f0 = np.r_[np.zeros(30), np.full(50, 100.0), np.full(50, 200.0)]
    mean, std = lf0_statistics_of(f0, fallback_std=0.3)
    assert mean == pytest.approx(np.log(np.sqrt(100.0 * 200.0)))
    assert std == pytest.approx(np.log(2.0) / 2)


def test_lf0_statistics_without_enough_voiced_frames():
    assert lf0_statistics_of(np.zeros(100), fallback_std=0.3) is None
    few = np.r_[np.zeros(100), [110.0, 130.0, 120.0]]
    mean, std = lf0_statistics_of(few, fallback_std=0.3)
    assert std == 0.3  # too few frames to trust their spread: mean shift only
    flat = np.full(100, 150.0)
    assert lf0_statistics_of(flat, fallback_std=0.25) == (pytest.approx(np.log(150.0)), 0.25)


def test_an_unknown_speakers_input_is_centred_on_its_own_mean_and_scaled_by_the_global_std():
    rng = np.random.default_rng(0)
    stats = Statistics(mcep_mean=np.array([1.0, -2.0, 0.5]), mcep_std=np.array([2.0, 0.5, 1.0]))
    mcep = rng.normal(size=(200, 3))
    speech = np.ones(200, dtype=bool)
    speech[:50] = False  # silence frames do not count towards the mean
    mcep[:50] += 100.0
    out = normalize_unknown_source(mcep, speech, stats)
    np.testing.assert_allclose(out[speech].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out, (mcep - mcep[speech].mean(axis=0)) / stats.mcep_std)
    # A voice that differs by a fixed spectral offset normalizes to the same frames.
    np.testing.assert_allclose(normalize_unknown_source(mcep + [0.3, -1.0, 2.0], speech, stats), out, atol=1e-12)
    # Too little speech for a mean (fewer than 20 frames): the global statistics.
    short = np.zeros(200, dtype=bool)
    short[:19] = True
    np.testing.assert_allclose(normalize_unknown_source(mcep, short, stats), (mcep - stats.mcep_mean) / stats.mcep_std)


def test_check_output_writable(tmp_path):
    assert check_output_writable(tmp_path / "new" / "deeper" / "out.wav") == tmp_path / "new" / "deeper" / "out.wav"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(VawganError, match="must end in .wav or .flac"):
        check_output_writable(tmp_path / "out.mp3")
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(VawganError, match="is a folder"):
        check_output_writable(tmp_path / "dir.wav")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(VawganError, match="is a file"):
        check_output_writable(tmp_path / "afile" / "out.wav")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_check_output_writable_tries_the_folder_also_as_root():
    """/proc passes an os.access look-up (as root) but takes no files: found before any work."""
    with pytest.raises(VawganError, match="cannot write into /proc"):
        check_output_writable("/proc/out.wav")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_check_output_writable_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(VawganError, match="permission denied"):
            check_output_writable(ro / "out.wav")
    finally:
        ro.chmod(0o700)


def test_analysis_settings_override_the_models_and_reject_bad_values():
    model = FeatureConfig(f0_method="harvest", aperiodicity_step=1)
    assert analysis_settings(model) == model
    changed = analysis_settings(model, "dio", 4)
    assert (changed.f0_method, changed.aperiodicity_step) == ("dio", 4)
    assert dataclasses.replace(changed, f0_method="harvest", aperiodicity_step=1) == model  # nothing else moves
    with pytest.raises(VawganError, match="--f0-method 'crepe' is not one of harvest, dio"):
        analysis_settings(model, "crepe")
    with pytest.raises(VawganError, match="--aperiodicity-step 0: must be at least 1"):
        analysis_settings(model, aperiodicity_step=0)
