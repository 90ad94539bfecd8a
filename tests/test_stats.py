"""Statistics of extracted features match a direct NumPy computation, and `vawgan stats` writes them."""

from __future__ import annotations

import numpy as np
import pytest

from vawgan.cli import main
from vawgan.corpus import write_manifest
from vawgan.errors import VawganError
from vawgan.features.store import feature_path, load_features
from vawgan.stats import Statistics, compute_corpus_statistics


def test_statistics_match_numpy(flite_features):
    feature_dir, utterances, _ = flite_features
    stats, missing = compute_corpus_statistics(utterances, feature_dir)
    assert missing == 0
    feats = {u: load_features(feature_path(feature_dir, u.speaker, u.utt_id)) for u in utterances}
    every = []
    for spk in ("awb", "rms", "slt"):
        mine = [f for u, f in feats.items() if u.speaker == spk]
        frames = np.concatenate([f.mcep[f.speech, 1:] for f in mine]).astype(np.float64)
        lf0 = np.log(np.concatenate([f.f0[f.f0 > 0] for f in mine]))
        every.append(frames)
        np.testing.assert_allclose(stats.speaker_mcep_mean[spk], frames.mean(axis=0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(stats.speaker_mcep_std[spk], frames.std(axis=0), rtol=1e-6, atol=1e-9)
        assert stats.lf0_mean[spk] == pytest.approx(lf0.mean(), rel=1e-12)
        assert stats.lf0_std[spk] == pytest.approx(lf0.std(), rel=1e-9)
        assert stats.frames[spk] == frames.shape[0]
        # GV: the per-utterance variance of the speech frames, averaged over the speaker's utterances
        per_utterance = [f.mcep[f.speech, 1:].astype(np.float64).var(axis=0) for f in mine]
        np.testing.assert_allclose(stats.gv(spk), np.mean(per_utterance, axis=0), rtol=1e-9)
    every = np.concatenate(every)
    np.testing.assert_allclose(stats.mcep_mean, every.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.mcep_std, every.std(axis=0), rtol=1e-6, atol=1e-9)
    # Normalized speech frames of a speaker have zero mean and unit variance with its own statistics.
    z = stats.normalize(every[: stats.frames["awb"]], "awb")
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-6)


def test_stats_command_and_missing_features(flite_features, tmp_path, capsys):
    feature_dir, utterances, _ = flite_features
    manifest = tmp_path / "train.tsv"
    ghost = type(utterances[0])("awb", "fb999", utterances[0].path)  # never extracted
    write_manifest([*utterances, ghost], manifest)
    out = tmp_path / "stats.npz"
    assert main(["stats", "--manifest", str(manifest), "--features", str(feature_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 utterance(s)" in captured.err and "left out" in captured.err
    loaded = Statistics.load(out)
    direct, _ = compute_corpus_statistics(utterances, feature_dir)
    assert loaded.speakers == ["awb", "rms", "slt"]
    np.testing.assert_array_equal(loaded.speaker_mcep_std["slt"], direct.speaker_mcep_std["slt"])
    np.testing.assert_array_equal(loaded.gv("rms"), direct.gv("rms"))
    assert loaded.lf0_mean == direct.lf0_mean


def test_statistics_written_before_the_gv_still_load_and_say_how_to_add_it(flite_features, tmp_path):
    feature_dir, utterances, _ = flite_features
    stats, _ = compute_corpus_statistics(utterances, feature_dir)
    stats.speaker_gv.clear()  # a file of an older vawgan
    stats.save(tmp_path / "old.npz")
    old = Statistics.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(old.speaker_mcep_mean["awb"], stats.speaker_mcep_mean["awb"])
    with pytest.raises(VawganError, match="no global variance for 'awb'.*re-run `vawgan stats`"):
        old.gv("awb")
    with pytest.raises(VawganError, match="unknown speaker 'bdl'"):
        old.gv("bdl")


def test_stats_without_features_is_an_error(flite_features, tmp_path):
    _, utterances, _ = flite_features
    with pytest.raises(VawganError, match="run `vawgan extract` first"):
        compute_corpus_statistics(utterances, tmp_path / "nothing")
