"""Shared fixtures: the real recordings the tests run on.

* ``shared_corpus`` — the parallel Flite corpus in ``../shared/data/speech/flite``
  (3 speakers × 99 sentences, 16 kHz). Tests that need it are skipped, with the
  reason, where it is absent.
* ``shared_arctic`` — the natural CMU ARCTIC recordings in
  ``../shared/data/speech/arctic`` (bdl, slt: 593 sentences; clb: 30), skipped
  with the reason where absent.
* ``embedded_arctic`` — the small natural corpus inside the repository
  (``data/arctic``, FLAC), always there.
* ``arctic_wav`` — the real CMU ARCTIC recording that pysptk ships.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "flite"
SHARED_ARCTIC = SHARED_CORPUS.parent / "arctic"
EMBEDDED_ARCTIC = Path(__file__).resolve().parents[1] / "data" / "arctic"
ARCTIC_RECIPE_CONF = Path(__file__).resolve().parents[1] / "recipes" / "arctic" / "conf"


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"shared corpus absent at {SHARED_CORPUS} (expected ../shared/data/speech/flite beside the checkout)")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def shared_arctic() -> Path:
    if not SHARED_ARCTIC.is_dir():
        pytest.skip(f"natural corpus absent at {SHARED_ARCTIC} (expected ../shared/data/speech/arctic beside the checkout)")
    return SHARED_ARCTIC


@pytest.fixture(scope="session")
def embedded_arctic() -> Path:
    assert EMBEDDED_ARCTIC.is_dir(), f"the repository's natural corpus is missing at {EMBEDDED_ARCTIC}"
    return EMBEDDED_ARCTIC


@pytest.fixture(scope="session")
def arctic_wav() -> Path:
    pysptk = pytest.importorskip("pysptk")
    path = Path(pysptk.util.example_audio_file())
    if not path.is_file():
        pytest.skip(f"pysptk's example recording is missing at {path}")
    return path


# Utterances of the shared corpus that the session-wide feature fixture extracts (per speaker).
FEATURE_FIXTURE_IDS = ("fb001", "fb002")


@pytest.fixture(scope="session")
def flite_features(shared_corpus, tmp_path_factory):
    """``(feature_dir, utterances, feature_config)``: Harvest features of fb001 and fb002 of every
    speaker of the shared corpus, extracted once per test session with the default FeatureConfig."""
    from vawgan.config import FeatureConfig
    from vawgan.corpus import discover
    from vawgan.features.extract import extract_corpus

    utterances = [u for u in discover(shared_corpus) if u.utt_id in FEATURE_FIXTURE_IDS]
    feature_dir = tmp_path_factory.mktemp("flite_features")
    config = FeatureConfig()
    summary = extract_corpus(utterances, feature_dir, config, jobs=1, progress=False)
    assert summary.extracted == len(utterances) and not summary.failed
    return feature_dir, utterances, config


@pytest.fixture(scope="session")
def real_features(tmp_path_factory, flite_features):
    """A folder with ``train.tsv`` (the feature fixture's utterances), ``stats.npz`` and ``features/``."""
    from vawgan.corpus import write_manifest
    from vawgan.stats import compute_corpus_statistics

    feature_dir, utterances, _ = flite_features
    root = tmp_path_factory.mktemp("real")
    write_manifest(utterances, root / "train.tsv")
    stats, _ = compute_corpus_statistics(utterances, feature_dir)
    stats.save(root / "stats.npz")
    (root / "features").symlink_to(feature_dir, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for the module (restored after it).

    Small networks run faster on one thread than on two on a busy 2-core
    machine, where a second spinning thread competes with other processes.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
