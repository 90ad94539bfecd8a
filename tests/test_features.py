"""WORLD analysis, speech mask, synthesis round trip and the single-file commands, on real speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from vawgan.cli import main
from vawgan.config import FeatureConfig
from vawgan.errors import VawganError
from vawgan.features.store import feature_path, load_features
from vawgan.alignment import mcd_per_frame
from vawgan.features.synthesis import compensate_vocoder, rendered_mcep, synthesize
from vawgan.features.world import analyze, analyze_file, resynthesis_mcd

# Median F0 (Hz) of voiced frames per speaker of the shared corpus: slt is a
# female voice, rms and awb male; ranges are wide, plausible adult ranges.
PLAUSIBLE_MEDIAN_F0 = {"slt": (140.0, 260.0), "rms": (75.0, 150.0), "awb": (85.0, 170.0)}


def _load(feature_dir, utt):
    return load_features(feature_path(feature_dir, utt.speaker, utt.utt_id))


def test_feature_file_contents(flite_features):
    feature_dir, utterances, config = flite_features
    for utt in utterances:
        feats = _load(feature_dir, utt)
        duration = sf.info(utt.path).duration
        assert feats.num_frames == pytest.approx(duration * 1000 / config.frame_period, abs=2)
        assert feats.mcep.shape == (feats.num_frames, 40) and feats.mcep.dtype == np.float32
        assert feats.coded_ap.shape == (feats.num_frames, 1)  # one band at 16 kHz
        assert feats.speech.dtype == bool and feats.f0.shape == (feats.num_frames,)
        assert feats.fs == 16000 and feats.fft_size == 1024 and feats.alpha == pytest.approx(0.41, abs=0.01)
        assert np.all(np.isfinite(feats.mcep)) and np.all(feats.f0 >= 0)


def test_f0_per_speaker_is_plausible(flite_features):
    feature_dir, utterances, _ = flite_features
    medians = {}
    for utt in utterances:
        feats = _load(feature_dir, utt)
        voiced = feats.f0[feats.f0 > 0]
        assert voiced.size > 0.3 * feats.num_frames, f"{utt}: too few voiced frames"
        low, high = PLAUSIBLE_MEDIAN_F0[utt.speaker]
        medians[utt.speaker, utt.utt_id] = float(np.median(voiced))
        assert low < medians[utt.speaker, utt.utt_id] < high, (utt, medians)
    for uid in {u.utt_id for u in utterances}:  # the female voice is higher than both male voices
        assert medians["slt", uid] > 1.15 * max(medians["rms", uid], medians["awb", uid])


def test_speech_mask_on_leading_and_trailing_silence(shared_corpus):
    """Flite's own pauses at both ends, and extra padding with low room noise, are silence."""
    x, fs = sf.read(shared_corpus / "rms" / "fb003.wav", dtype="float64")
    config = dataclasses.replace(FeatureConfig(), f0_method="dio")
    pad = int(0.5 * fs)
    noise = np.random.default_rng(0).normal(scale=1e-3 * np.abs(x).max(), size=2 * pad)  # −60 dB
    padded = np.concatenate([noise[:pad], x, noise[pad:]])
    feats = analyze(padded, fs, config)
    frames_per_pad = pad // int(fs * config.frame_period / 1000)
    assert not feats.speech[:frames_per_pad].any()
    assert not feats.speech[-frames_per_pad:].any()
    middle = feats.speech[frames_per_pad:-frames_per_pad]
    assert 0.7 < middle.mean() < 0.98  # mostly speech, short pauses and closures excluded
    # The rule is relative to the utterance's own level: 20 dB quieter, same mask.
    quiet = analyze(0.1 * padded, fs, config)
    assert np.mean(quiet.speech == feats.speech) > 0.98


def test_dio_agrees_with_harvest(flite_features):
    feature_dir, utterances, config = flite_features
    utt = utterances[0]
    harvest = _load(feature_dir, utt)
    dio = analyze_file(utt.path, dataclasses.replace(config, f0_method="dio"), speaker=utt.speaker)
    both = (harvest.f0 > 0) & (dio.f0 > 0)
    assert both.mean() > 0.5
    cents = 1200 * np.abs(np.log2(dio.f0[both] / harvest.f0[both]))
    assert np.median(cents) < 20


def test_speaker_f0_range_is_used(shared_corpus):
    config = FeatureConfig(f0_method="dio", f0_ranges={"slt": [250.0, 500.0]})
    path = shared_corpus / "slt" / "fb001.wav"
    narrowed = analyze_file(path, config, speaker="slt").f0
    default = analyze_file(path, config, speaker="rms").f0  # rms has no range set: the default applies
    assert np.all(narrowed[narrowed > 0] >= 240)
    assert np.median(default[default > 0]) < 200


@pytest.mark.parametrize("method", ["dio", pytest.param("harvest", marks=pytest.mark.slow)])
def test_threaded_analysis_matches_one_call(arctic_wav, method):
    """Blocks of frames analysed in threads give the one-call features up to WORLD's dither, the same every run."""
    x, fs = sf.read(arctic_wav, dtype="float64")  # 4 s: 800 frames, so 2 and 3 threads both split
    config = FeatureConfig(f0_method=method)
    serial = analyze(x, fs, config)
    for threads in (2, 3):
        threaded = analyze(x, fs, config, threads=threads)
        np.testing.assert_array_equal(threaded.f0, serial.f0)  # StoneMask per block is exact
        np.testing.assert_array_equal(threaded.speech, serial.speech)
        np.testing.assert_allclose(threaded.mcep, serial.mcep, atol=1e-4)
        ap_difference = np.abs(threaded.coded_ap - serial.coded_ap)  # dB
        assert ap_difference.max() < 0.5 and ap_difference.mean() < 0.05
        again = analyze(x, fs, config, threads=threads)
        np.testing.assert_array_equal(again.coded_ap, threaded.coded_ap)
        np.testing.assert_array_equal(again.mcep, threaded.mcep)


def test_threaded_analysis_works_in_a_forked_child(arctic_wav):
    """A child forked after the parent used the analysis threads starts its own (the parent's are not there)."""
    import multiprocessing

    x, fs = sf.read(arctic_wav, dtype="float64")
    config = FeatureConfig(f0_method="dio")
    expected = analyze(x, fs, config, threads=2)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(analyze, (x, fs, config), {"threads": 2})
        child = result.get(timeout=60)  # hangs (and fails here) when the child waits for the parent's threads
    np.testing.assert_array_equal(child.coded_ap, expected.coded_ap)
    np.testing.assert_array_equal(child.mcep, expected.mcep)


def test_short_signal_is_analysed_in_one_call_whatever_the_threads(arctic_wav):
    x, fs = sf.read(arctic_wav, dtype="float64")
    x = x[: fs // 2]  # 0.5 s, ~100 frames: fewer than two blocks' worth
    config = FeatureConfig(f0_method="dio")
    serial, threaded = analyze(x, fs, config), analyze(x, fs, config, threads=4)
    np.testing.assert_array_equal(threaded.mcep, serial.mcep)
    np.testing.assert_array_equal(threaded.coded_ap, serial.coded_ap)


def test_aperiodicity_on_every_nth_frame(arctic_wav, monkeypatch):
    """``aperiodicity_step`` n: D4C on about 1/n of the voiced frames, the rest interpolated close to WORLD's values."""
    import pyworld

    x, fs = sf.read(arctic_wav, dtype="float64")
    exact = analyze(x, fs, FeatureConfig(f0_method="dio"))
    voiced = exact.f0 > 0
    analysed_f0 = []
    d4c = pyworld.d4c

    def counting_d4c(x, f0, times, fs, **options):
        analysed_f0.append(f0)
        return d4c(x, f0, times, fs, **options)

    monkeypatch.setattr(pyworld, "d4c", counting_d4c)
    for step, mean_difference_db in ((2, 1.5), (4, 2.5)):
        analysed_f0.clear()
        fast = analyze(x, fs, FeatureConfig(f0_method="dio", aperiodicity_step=step))
        # Everything but the aperiodicity is untouched.
        np.testing.assert_array_equal(fast.f0, exact.f0)
        np.testing.assert_array_equal(fast.mcep, exact.mcep)
        assert fast.coded_ap.shape == exact.coded_ap.shape
        # D4C analysed every n-th frame (one more call: the value of a frame without F0), at an F0 where
        # a voiced frame is near: each voiced stretch of L frames costs at most L / n + 3 analyses.
        calls = np.concatenate(analysed_f0)
        assert len(calls) <= len(exact.f0) // step + 3
        stretches = np.count_nonzero(np.diff(voiced.astype(int)) == 1) + int(voiced[0])
        assert (calls > 0).sum() <= voiced.sum() / step + 3 * stretches
        # Unvoiced frames: exactly D4C's value without F0; voiced ones: close to the per-frame analysis
        # (measured on this recording: mean 0.5 dB at n = 2, 1.0 dB at n = 4).
        np.testing.assert_array_equal(fast.coded_ap[~voiced], exact.coded_ap[~voiced])
        difference = np.abs(fast.coded_ap[voiced] - exact.coded_ap[voiced])
        assert 0.0 < difference.mean() < mean_difference_db
        # The analysed voiced frames themselves are D4C's values (up to WORLD's dither, see above).
        analysed = np.zeros_like(voiced)
        analysed[::step] = True
        at_analysed = np.abs(fast.coded_ap[analysed & voiced] - exact.coded_ap[analysed & voiced])
        assert np.median(at_analysed) < 0.05
    with pytest.raises(VawganError, match="aperiodicity_step=0 must be at least 1"):
        analyze(x, fs, FeatureConfig(aperiodicity_step=0))


def test_too_short_and_wrong_rate(arctic_wav):
    config = FeatureConfig()
    x, fs = sf.read(arctic_wav, dtype="float64")
    with pytest.raises(VawganError, match="shorter than one analysis window"):
        analyze(x[:500], fs, config, name="short.wav")
    with pytest.raises(VawganError, match="22050 Hz"):
        analyze(x, 22050, config, name="x.wav")


# Round-trip MCD (dB, c1..c39, speech frames) measured over all 297 utterances of the
# shared corpus with recipes/flite/conf/full.yaml: mean 3.24, per speaker awb 2.21,
# rms 3.69, slt 3.81, largest single utterance 4.16 (docs/features.md, "Features
# and statistics"). This test uses the wider default F0 range (60–500 Hz), hence a
# little margin above that largest value.
ROUND_TRIP_MCD_MAX = 4.5


@pytest.mark.slow
def test_round_trip_mcd(flite_features, arctic_wav):
    feature_dir, utterances, config = flite_features
    for utt in [u for u in utterances if u.utt_id == "fb001"]:
        feats = _load(feature_dir, utt)
        y = synthesize(feats)
        assert abs(len(y) - sf.info(utt.path).frames) < 200
        mcd = resynthesis_mcd(feats, y, config, speaker=utt.speaker)
        assert 0.5 < mcd < ROUND_TRIP_MCD_MAX, (utt, mcd)
    # A corrupted envelope must be caught by the measure: shift c1 by one unit.
    broken = dataclasses.replace(feats, mcep=feats.mcep + np.eye(40, dtype=np.float32)[1])
    assert resynthesis_mcd(feats, synthesize(broken), config, speaker=utt.speaker) > ROUND_TRIP_MCD_MAX


@pytest.mark.slow
def test_vocoder_compensation_brings_the_rendering_closer_to_the_features(flite_features):
    """One compensation step lowers the re-analysed MCD of every speaker's analysis–synthesis (re-analysis with
    F0 estimated afresh, as the evaluation does) and leaves F0, aperiodicity and the speech mask alone."""
    feature_dir, utterances, config = flite_features
    for utt in [u for u in utterances if u.utt_id == "fb001"]:
        feats = _load(feature_dir, utt)
        floor, _ = config.f0_range(utt.speaker)
        compensated = compensate_vocoder(feats, floor)
        assert compensated.mcep.shape == feats.mcep.shape and compensated.mcep.dtype == feats.mcep.dtype
        for name in ("f0", "coded_ap", "speech"):
            assert np.array_equal(getattr(compensated, name), getattr(feats, name)), name
        plain = resynthesis_mcd(feats, synthesize(feats), config, speaker=utt.speaker)
        better = resynthesis_mcd(feats, synthesize(compensated), config, speaker=utt.speaker)
        assert better < plain - 0.2, (utt, plain, better)  # measured 0.3-0.6 dB lower on the eval split


def test_rendered_mcep_in_frame_batches_matches_one_batch(flite_features, monkeypatch):
    """Long renderings are re-analysed in batches of frames; the batches join to one call's mel-cepstra."""
    from vawgan.features import batching

    feature_dir, utterances, config = flite_features
    feats = _load(feature_dir, utterances[0])
    y = synthesize(feats)
    whole = rendered_mcep(y, feats, 71.0)
    monkeypatch.setattr(batching, "MAX_FRAMES_PER_CALL", feats.num_frames // 3)
    assert np.allclose(rendered_mcep(y, feats, 71.0), whole, atol=1e-4)
    # The re-analysis of a rendering is close to what was rendered (the vocoder's ceiling), not equal.
    assert 0.5 < float(np.mean(mcd_per_frame(feats.mcep[feats.speech, 1:], whole[feats.speech, 1:]))) < 6.0


def test_resynth_command(arctic_wav, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert main(["resynth", str(arctic_wav), "-o", str(out), "--set", "features.f0_method=dio"]) == 0
    y, fs = sf.read(out)
    assert fs == 16000 and len(y) == pytest.approx(sf.info(arctic_wav).frames, abs=200)
    plain = capsys.readouterr().out
    assert "round-trip MCD" in plain
    # With vocoder compensation the same round trip re-analyses closer to the original (the real ARCTIC recording).
    assert main(["resynth", str(arctic_wav), "-o", str(tmp_path / "vc.wav"), "--vocoder-compensation",
                 "--set", "features.f0_method=dio"]) == 0
    compensated = capsys.readouterr().out

    def mcd_of(line: str) -> float:
        return float(line.split("round-trip MCD ")[1].split(" dB")[0])

    assert mcd_of(compensated) < mcd_of(plain) - 0.2, (plain, compensated)


@pytest.mark.parametrize("content, problem", [(b"", "empty file"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated WAV header"),
                                              (b"hello, not audio" * 10, "not a readable")])
def test_single_file_command_errors(tmp_path, capsys, content, problem):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    out = tmp_path / "out.wav"
    assert main(["resynth", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.wav" in err and problem in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


def test_resynth_manifest_skips_bad_files(shared_corpus, tmp_path, capsys):
    from vawgan.corpus import Utterance, write_manifest

    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    manifest = tmp_path / "m.tsv"
    write_manifest([Utterance("slt", "fb004", shared_corpus / "slt" / "fb004.wav"), Utterance("slt", "bad", bad)],
                   manifest)
    out = tmp_path / "anasyn"
    assert main(["resynth", "--manifest", str(manifest), "--out-dir", str(out), "--jobs", "2",
                 "--set", "features.f0_method=dio"]) == 0
    captured = capsys.readouterr()
    assert "(1 utterances, 1 skipped)" in captured.out
    assert any(line.startswith("skipped:") and "bad.wav" in line for line in captured.err.splitlines())
    assert sorted(p.name for p in (out / "slt").iterdir()) == ["fb004.wav"]
