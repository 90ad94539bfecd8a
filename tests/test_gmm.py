"""The joint-density GMM baseline: MLPG known answers, and a real conversion that moves towards the target."""

from __future__ import annotations

import numpy as np
import pytest

from vawgan.baselines.gmm import JointGMM, delta_matrix, joint_frames, mlpg, train_gmm, with_deltas
from vawgan.errors import VawganError
from vawgan.alignment import align, align_speakers
from vawgan.evaluate.metrics import score_pair


def test_deltas_use_the_central_difference_window():
    x = np.array([[0.0], [1.0], [4.0], [9.0]])
    np.testing.assert_allclose(with_deltas(x)[:, 1], [0.5, 2.0, 4.0, 2.5])  # edges repeat the end frames
    assert delta_matrix(4).shape == (4, 4)


def test_mlpg_returns_a_trajectory_whose_own_deltas_it_was_given():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=(200, 3)), axis=0)
    variances = rng.uniform(0.1, 2.0, size=(200, 6))
    np.testing.assert_allclose(mlpg(with_deltas(y), variances), y, atol=1e-8)


def test_mlpg_smooths_static_means_when_deltas_say_flat():
    static = np.repeat([[0.0], [1.0]], 50, axis=0)  # a step in the static means
    means = np.hstack([static, np.zeros_like(static)])  # but deltas say "no change"
    tight_delta = mlpg(means, np.hstack([np.ones_like(static), np.full_like(static, 1e-6)]))
    loose_delta = mlpg(means, np.hstack([np.ones_like(static), np.full_like(static, 1e4)]))
    np.testing.assert_allclose(tight_delta, 0.5, atol=0.05)  # trusted deltas flatten it to the mean level
    np.testing.assert_allclose(loose_delta, static, atol=1e-3)  # ignored deltas leave the statics


@pytest.fixture(scope="module")
def parallel_features(shared_corpus):
    """c0..c39, F0, speech masks of 5 parallel sentences of slt (source) and rms (target), DIO analysis."""
    from vawgan.config import FeatureConfig
    from vawgan.features.world import analyze_file

    config = FeatureConfig(f0_method="dio")
    ids = ["fb001", "fb002", "fb003", "fb004", "fb005"]
    return [(analyze_file(shared_corpus / "slt" / f"{u}.wav", config),
             analyze_file(shared_corpus / "rms" / f"{u}.wav", config)) for u in ids]


@pytest.mark.slow
def test_gmm_conversion_moves_towards_the_target_and_survives_a_round_trip(parallel_features, tmp_path):
    train, (held_src, held_tgt) = parallel_features[:4], parallel_features[4]
    gmm = train_gmm([(s.mcep[s.speech, 1:], t.mcep[t.speech, 1:]) for s, t in train],
                    n_components=4, covariance_type="full", max_iter=20)
    converted = held_src.mcep.astype(np.float64).copy()
    converted[:, 1:] = gmm.convert(converted[:, 1:])

    def mcd(mcep):
        return score_pair(held_tgt.mcep, held_tgt.f0, held_tgt.speech, mcep, held_src.f0, held_src.speech).mcd

    no_conversion, gmm_mcd = mcd(held_src.mcep), mcd(converted)
    assert gmm_mcd < no_conversion - 1.0, (gmm_mcd, no_conversion)

    gmm.save(tmp_path / "slt-rms.npz")
    again = JointGMM.load(tmp_path / "slt-rms.npz")
    np.testing.assert_allclose(again.convert(held_src.mcep[:, 1:]), converted[:, 1:], atol=1e-10)


def test_diagonal_gmm_trains_and_converts(parallel_features):
    pairs = [(s.mcep[s.speech, 1:], t.mcep[t.speech, 1:]) for s, t in parallel_features[:2]]
    gmm = train_gmm(pairs, n_components=2, covariance_type="diag", max_iter=5, max_frames=300)
    src = parallel_features[2][0].mcep[:, 1:]
    assert gmm.convert(src).shape == src.shape



def test_gmm_refinement_realigns_on_its_own_conversion(parallel_features):
    """realign=1: the first GMM converts each source, and the refit's frames pair along DTW(conversion, target)."""
    pairs = [(s.mcep[s.speech, 1:], t.mcep[t.speech, 1:]) for s, t in parallel_features[:3]]
    settings = dict(n_components=2, covariance_type="diag", max_iter=20, max_frames=300)
    direct = train_gmm(pairs, realign=0, **settings)
    src, tgt = pairs[0]
    si, ti = align_speakers(src, tgt)
    np.testing.assert_array_equal(joint_frames(pairs)[:len(si)],
                                  np.hstack([with_deltas(src)[si], with_deltas(tgt)[ti]]))
    refined_frames = joint_frames(pairs, aligner=direct)
    si, ti = align(direct.convert(src), tgt)
    np.testing.assert_array_equal(refined_frames[:len(si)], np.hstack([with_deltas(src)[si], with_deltas(tgt)[ti]]))
    assert not np.array_equal(refined_frames, joint_frames(pairs))

    refined = train_gmm(pairs, realign=1, **settings)
    assert not np.allclose(refined.means, direct.means)
    twice = train_gmm(pairs, realign=2, **settings)
    assert not np.allclose(twice.means, refined.means)
    with pytest.raises(VawganError, match="refinement passes"):
        train_gmm(pairs, realign=-1, **settings)

def test_gmm_training_reports_unconverged_em_without_sklearn_warnings(parallel_features):
    import warnings

    pairs = [(s.mcep[s.speech, 1:], t.mcep[t.speech, 1:]) for s, t in parallel_features[:2]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's ConvergenceWarning would fail the test
        stopped = train_gmm(pairs, n_components=2, covariance_type="diag", max_iter=1, max_frames=300)
        converged = train_gmm(pairs, n_components=2, covariance_type="diag", max_iter=200, max_frames=300)
    assert (stopped.em_iterations, stopped.em_converged) == (1, False)
    assert converged.em_converged and 1 < converged.em_iterations < 200


def test_gmm_errors_are_clear(tmp_path, parallel_features):
    with pytest.raises(VawganError, match="not found; run `vawgan gmm-train`"):
        JointGMM.load(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(VawganError, match="damaged"):
        JointGMM.load(tmp_path / "bad.npz")
    src, tgt = parallel_features[0]
    with pytest.raises(VawganError, match="fewer components"):
        train_gmm([(src.mcep[:20, 1:], tgt.mcep[:20, 1:])], n_components=8)
