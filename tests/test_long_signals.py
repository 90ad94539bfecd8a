"""Long recordings: F0 in segments, envelope and aperiodicity in frame batches, synthesis in pieces.

WORLD holds a whole signal's intermediate results in memory (Harvest ~30 MB
per second of 16 kHz audio), so the analysis (:mod:`vawgan.features.world`,
:mod:`vawgan.features.batching`) and the synthesis
(:mod:`vawgan.features.synthesis`) cut long signals. These tests use short real recordings with small segments and
batches, so that the cuts happen, and check the results against one call on
the whole signal.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import pyworld
import soundfile as sf

from vawgan.config import FeatureConfig
from vawgan.features import batching, synthesis, world
from vawgan.features.synthesis import synthesis_seams, synthesize
from vawgan.features.world import analyze, estimate_f0, f0_in_segments, resynthesis_mcd
from vawgan.utils import StageBars

FS = 16000


def _rms_recordings(shared_corpus, count: int) -> np.ndarray:
    return np.concatenate([sf.read(shared_corpus / "rms" / f"fb00{i}.wav", dtype="float64")[0]
                           for i in range(1, count + 1)])


def _disagreement(f0: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(share of frames whose voicing differs, share of frames voiced in both more than 50 cents apart)."""
    both = (f0 > 0) & (reference > 0)
    cents = 1200.0 * np.abs(np.log2(f0[both] / reference[both]))
    return float(np.mean((f0 > 0) != (reference > 0))), float(np.sum(cents > 50.0) / len(f0))


@pytest.mark.slow
def test_harvest_in_segments_agrees_with_one_call(shared_corpus):
    # An odd number of samples: Harvest's decimation grid (from the signal's end) then depends on where a
    # segment ends; without aligning the segments' ends to it, 0.8 % of the frames moved by more than 50 cents.
    x = _rms_recordings(shared_corpus, 3)
    x = x[:len(x) // 2 * 2 - 1]

    def harvest(piece):
        return pyworld.harvest(piece, FS, f0_floor=60.0, f0_ceil=500.0, frame_period=5.0)

    whole, whole_times = harvest(x)
    lengths = []
    f0, times = f0_in_segments(x, FS, lambda piece: lengths.append(len(piece)) or harvest(piece), 5.0,
                               segment_seconds=2.0, margin_seconds=0.5)
    assert len(lengths) >= 5 and max(lengths) <= 3.0 * FS + world.harvest_decimation(FS)
    np.testing.assert_array_equal(times, whole_times)
    voicing, far = _disagreement(f0, whole)
    assert voicing < 0.01 and far < 0.005, (voicing, far)  # measured 0.5 % and 0.13 %


def test_long_signal_f0_is_estimated_in_bounded_segments(shared_corpus, monkeypatch):
    """``estimate_f0`` (DIO) on a 45 s recording: segments of ~22 s at most, the frames of one call, same F0."""
    x = np.tile(_rms_recordings(shared_corpus, 3), 4)[:45 * FS]
    lengths = []
    dio = pyworld.dio
    monkeypatch.setattr(pyworld, "dio", lambda piece, *args, **kwargs: lengths.append(len(piece)) or dio(
        piece, *args, **kwargs))
    f0, times = estimate_f0(x, FS, "dio", 60.0, 500.0, 5.0)
    assert len(lengths) == 3 and max(lengths) <= (world.SEGMENT_SECONDS + 2 * world.SEGMENT_MARGIN_SECONDS) * FS
    whole = pyworld.stonemask(x, *dio(x, FS, f0_floor=60.0, f0_ceil=500.0, frame_period=5.0), FS)
    assert f0.shape == whole.shape and times[-1] == pytest.approx(45.0)
    voicing, far = _disagreement(f0, whole)
    assert voicing < 0.002 and far < 0.001, (voicing, far)


def test_analysis_in_frame_batches_matches_one_batch(shared_corpus, monkeypatch):
    x, fs = sf.read(shared_corpus / "slt" / "fb003.wav", dtype="float64")
    config = dataclasses.replace(FeatureConfig(), f0_method="dio")
    whole = analyze(x, fs, config)
    calls = []
    cheaptrick = pyworld.cheaptrick
    monkeypatch.setattr(pyworld, "cheaptrick", lambda x, f0, *args, **kwargs: calls.append(len(f0)) or cheaptrick(
        x, f0, *args, **kwargs))
    monkeypatch.setattr(batching, "MAX_FRAMES_PER_CALL", 150)
    batched = analyze(x, fs, config)
    assert max(calls) == 150 and sum(calls) == whole.num_frames
    np.testing.assert_array_equal(batched.f0, whole.f0)
    np.testing.assert_array_equal(batched.speech, whole.speech)
    # WORLD's analysis dither restarts with every call: tiny changes of the envelope, small ones of the aperiodicity.
    np.testing.assert_allclose(batched.mcep, whole.mcep, atol=1e-4)
    assert np.abs(batched.coded_ap - whole.coded_ap).max() < 0.5


def test_long_synthesis_in_pieces(shared_corpus):
    x, fs = sf.read(shared_corpus / "rms" / "fb002.wav", dtype="float64")
    config = dataclasses.replace(FeatureConfig(), f0_method="dio")
    feats = analyze(x, fs, config, speaker="rms")
    one_call = synthesize(feats)
    seams = synthesis_seams(feats, max_frames=250)  # both near a pause (with 200 one lands in speech: no pause near)
    pieces = synthesize(feats, max_frames=250)
    assert len(seams) >= 2 and np.all(feats.f0[seams] == 0)
    assert len(pieces) == len(one_call)
    hop = fs * feats.frame_period / 1000.0
    before_seam = int((seams[0] - synthesis.SYNTHESIS_CONTEXT_FRAMES) * hop)
    np.testing.assert_allclose(pieces[:before_seam], one_call[:before_seam], atol=1e-6)
    # No click: the steps from sample to sample around each seam are no larger than the signal's usual ones.
    steps = np.abs(np.diff(pieces))
    for seam in seams:
        around = steps[int((seam - 2) * hop):int((seam + 2) * hop)]
        assert around.max() < np.percentile(steps, 99.0)
    # Re-analysed, the pieces are as close to the features as one call's output is.
    assert resynthesis_mcd(feats, pieces, config, "rms") < resynthesis_mcd(feats, one_call, config, "rms") + 0.1


def test_sentence_synthesis_in_threads(shared_corpus, monkeypatch):
    """threads=2 renders a sentence in two pieces cut at an unvoiced frame: one call's length, its samples up to
    the seam, no click, and as close to the features when re-analysed; a sentence too short for two pieces, or
    one thread, is one call."""
    x, fs = sf.read(shared_corpus / "rms" / "fb002.wav", dtype="float64")
    config = dataclasses.replace(FeatureConfig(), f0_method="dio")
    feats = analyze(x, fs, config, speaker="rms")
    one_call = synthesize(feats)
    calls = []
    real_synthesis = synthesis._world_synthesis
    monkeypatch.setattr(synthesis, "_world_synthesis", lambda f, frames: calls.append(frames) or real_synthesis(f, frames))
    threaded = synthesize(feats, threads=2)
    assert len(calls) == 2 and len(threaded) == len(one_call)
    seam = calls[1].start + synthesis.SYNTHESIS_CONTEXT_FRAMES
    assert feats.f0[seam] == 0 and abs(seam - feats.num_frames / 2) <= feats.num_frames / 6
    hop = fs * feats.frame_period / 1000.0
    np.testing.assert_allclose(threaded[:int(calls[1].start * hop)], one_call[:int(calls[1].start * hop)], atol=1e-6)
    steps = np.abs(np.diff(threaded))
    assert steps[int((seam - 2) * hop):int((seam + 2) * hop)].max() < np.percentile(steps, 99.0)
    assert resynthesis_mcd(feats, threaded, config, "rms") < resynthesis_mcd(feats, one_call, config, "rms") + 0.1
    calls.clear()
    np.testing.assert_array_equal(synthesize(feats, threads=1), one_call)
    monkeypatch.setattr(batching, "MIN_FRAMES_PER_THREAD", feats.num_frames)  # too short for two pieces
    np.testing.assert_array_equal(synthesize(feats, threads=2), one_call)
    assert len(calls) == 2  # one call each
    # No unvoiced frame near the middle: no cut there.
    monkeypatch.setattr(batching, "MIN_FRAMES_PER_THREAD", 100)
    voiced = dataclasses.replace(feats, f0=np.where(feats.f0 > 0, feats.f0, 100.0))
    calls.clear()
    synthesize(voiced, threads=2)
    assert len(calls) == 1


@pytest.mark.parametrize("device", ["cpu", "auto"])  # cpu: the NumPy copy of the weights; auto (no GPU): torch
def test_networks_run_over_frame_batches_as_over_the_whole(shared_corpus, monkeypatch, device):
    """The packaged parallel model (encoder context of 8 frames) converts the same with batches of 100 frames."""
    from vawgan.convert import Converter

    converter = Converter("parallel", device=device)
    feats = converter.analyze_file(shared_corpus / "rms" / "fb004.wav", source="rms")
    whole = converter.convert_features(feats, "rms", "slt")
    monkeypatch.setattr(batching, "MAX_FRAMES_PER_CALL", 100)
    batched = converter.convert_features(feats, "rms", "slt")
    assert feats.num_frames > 300
    np.testing.assert_allclose(batched.mcep, whole.mcep, atol=1e-4)


@pytest.mark.slow
def test_segments_and_pieces_at_a_rate_whose_frames_are_not_whole_samples(shared_corpus):
    """22.05 kHz: a 5 ms frame is 110.25 samples, so segments and pieces start every 4 frames (441 samples)."""
    import librosa

    fs = 22050
    x = librosa.resample(_rms_recordings(shared_corpus, 3), orig_sr=FS, target_sr=fs)

    def dio(piece):
        return pyworld.dio(piece, fs, f0_floor=60.0, f0_ceil=500.0, frame_period=5.0)

    whole, whole_times = dio(x)
    f0, times = f0_in_segments(x, fs, dio, 5.0, segment_seconds=2.0, margin_seconds=0.5)
    np.testing.assert_array_equal(times, whole_times)
    assert _disagreement(f0, whole) == (0.0, 0.0)
    feats = analyze(x, fs, dataclasses.replace(FeatureConfig(), f0_method="dio", sample_rate=fs), speaker="rms")
    seams = synthesis_seams(feats, max_frames=300)
    assert len(seams) >= 5 and all(seam % 4 == 0 for seam in seams)
    assert len(synthesize(feats, max_frames=300)) == len(synthesize(feats))


@pytest.mark.slow
def test_long_analysis_and_synthesis_report_their_progress(shared_corpus, monkeypatch):
    """A 45 s recording: every stage reports after each segment, batch or piece, rising to the whole duration."""
    x = np.tile(_rms_recordings(shared_corpus, 3), 4)[:45 * FS]
    monkeypatch.setattr(batching, "MAX_FRAMES_PER_CALL", 3000)
    config = dataclasses.replace(FeatureConfig(), f0_method="dio", aperiodicity_step=2)
    reports = []
    feats = analyze(x, FS, config, progress=lambda *report: reports.append(report))
    synthesize(feats, max_frames=3000, progress=lambda *report: reports.append(report))
    stages = list(dict.fromkeys(stage for stage, _, _ in reports))
    assert stages == ["F0", "envelope", "aperiodicity", "synthesis"]
    for stage in stages:
        done = [d for s, d, _ in reports if s == stage]
        totals = {t for s, _, t in reports if s == stage}
        # 3 F0 segments of 20 s, 3000-frame batches (half the frames for D4C at step 2) and pieces of ~15 s.
        assert len(done) >= 2, (stage, done)
        assert len(totals) == 1 and totals.pop() == pytest.approx(45.0, abs=0.01)
        assert np.all(np.diff(done) > 0) and done[0] > 0 and done[-1] == pytest.approx(45.0, abs=0.01), (stage, done)


def test_stage_bars_draw_long_recordings_only():
    """The CLI's bars: none for a recording under a minute, one per stage (in seconds of audio) for a longer one."""
    short, long = io.StringIO(), io.StringIO()
    with StageBars("short.wav", disable=False, file=short) as bars:
        bars("F0", 30.0, 59.0)
    with StageBars("long.wav", disable=False, file=long) as bars:
        for stage in ("F0", "synthesis"):
            for done in (100.0, 300.0):
                bars(stage, done, 300.0)
    assert short.getvalue() == ""
    lines = long.getvalue().replace("\r", "\n")
    assert "long.wav: F0: 100%" in lines and "long.wav: synthesis:  33%" in lines
    assert "300/300 s of audio" in lines
