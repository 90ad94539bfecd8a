"""The natural CMU ARCTIC corpora: discovery in every layout, the recipe's fixed splits and its two protocols."""

import collections
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ARCTIC_RECIPE_CONF
from vawgan.config import load_config
from vawgan.corpus import (discover, non_parallel_train, read_manifest, shared_train_sentences, split_by_ranges,
                           write_manifests)
from vawgan.errors import VawganError


def _discover_with(conf_name: str, root: Path):
    c = load_config(ARCTIC_RECIPE_CONF / conf_name).corpus
    return c, discover(root, c.layout, c.speakers, c.dev_fraction, c.eval_fraction, c.split_ranges,
                       c.speaker_split_ranges)


def test_embedded_corpus_is_small_natural_flac_with_its_licence(embedded_arctic):
    files = sorted(embedded_arctic.glob("*/*.flac"))
    counts = collections.Counter(p.parent.name for p in files)
    assert counts == {"bdl": 90, "slt": 90, "clb": 30}
    assert sum(p.stat().st_size for p in embedded_arctic.rglob("*") if p.is_file()) <= 15 * 2 ** 20
    licence = (embedded_arctic / "COPYING").read_text()
    assert "Carnegie Mellon University" in licence and "modifications must be clearly marked" in licence
    readme = (embedded_arctic / "README.md").read_text()
    assert "Kominek" in readme and "Black" in readme and "FLAC" in readme
    info = sf.info(files[0])
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")


def test_embedded_flac_holds_the_shared_recordings_sample_for_sample(embedded_arctic, shared_arctic):
    for speaker, utt in (("bdl", "arctic_a0001"), ("clb", "arctic_a0030"), ("slt", "arctic_a0563")):
        flac, _ = sf.read(embedded_arctic / speaker / f"{utt}.flac", dtype="int16")
        wav, _ = sf.read(shared_arctic / speaker / f"{utt}.wav", dtype="int16")
        np.testing.assert_array_equal(flac, wav)


def test_recipe_splits_on_the_embedded_corpus(embedded_arctic):
    _, utts = _discover_with("parallel.yaml", embedded_arctic)
    by = collections.Counter((u.speaker, u.split) for u in utts)
    assert by == {("bdl", "train"): 54, ("bdl", "dev"): 10, ("bdl", "eval"): 26,
                  ("slt", "train"): 54, ("slt", "dev"): 10, ("slt", "eval"): 26,
                  ("clb", "train"): 24, ("clb", "eval"): 6}
    assert all(u.path.suffix == ".flac" for u in utts)
    # clb's eval sentences are held out for everybody: no speaker trains on them
    clb_eval = {u.utt_id for u in utts if u.speaker == "clb" and u.split == "eval"}
    assert clb_eval == {f"arctic_a{n:04d}" for n in range(25, 31)}
    assert not any(u.utt_id in clb_eval and u.split != "eval" for u in utts)


def test_shared_corpus_in_both_arctic_layouts(shared_arctic, tmp_path):
    _, flat = _discover_with("parallel.yaml", shared_arctic)
    assert collections.Counter(u.speaker for u in flat) == {"bdl": 593, "slt": 593, "clb": 30}
    split_counts = collections.Counter((u.speaker, u.split) for u in flat)
    assert split_counts[("bdl", "train")] == 487 and split_counts[("bdl", "dev")] == 50
    assert split_counts[("bdl", "eval")] == 56 and split_counts[("clb", "eval")] == 6
    official = tmp_path / "official"
    for speaker in ("bdl", "clb"):  # the official release's cmu_us_<spk>_arctic/wav layout, as links
        wav_dir = official / f"cmu_us_{speaker}_arctic" / "wav"
        wav_dir.mkdir(parents=True)
        for path in sorted((shared_arctic / speaker).glob("*.wav"))[:40]:
            os.symlink(path, wav_dir / path.name)
    _, linked = _discover_with("parallel.yaml", official)
    assert {u.speaker for u in linked} == {"bdl", "clb"}
    assert [(u.speaker, u.utt_id, u.split) for u in linked] == [
        (u.speaker, u.utt_id, u.split) for u in flat if u.speaker in ("bdl", "clb") and u.utt_id <= "arctic_a0040"]


def test_split_ranges_rules():
    ranges = {"train": [["a03", "a09"]], "eval": [["a05", "a05"]], "dev": [["a10", "a12"]]}
    assert [split_by_ranges(i, ranges) for i in ("a01", "a03", "a05", "a09", "a11", "a13")] == [
        None, "train", "eval", "train", "dev", None]


def test_bad_split_ranges_are_one_line_errors(embedded_arctic):
    with pytest.raises(VawganError, match="unknown split 'test'"):
        discover(embedded_arctic, split_ranges={"test": [["a", "b"]]})
    with pytest.raises(VawganError, match="not a \\[first, last\\] id range"):
        discover(embedded_arctic, split_ranges={"train": [["arctic_a0009", "arctic_a0001"]]})


def test_a_recording_in_two_formats_is_refused(tmp_path):
    for suffix in (".wav", ".flac"):
        path = tmp_path / "spk" / f"u1{suffix}"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(VawganError, match="two formats"):
        discover(tmp_path)


@pytest.mark.parametrize("corpus_fixture", ["embedded_arctic", "shared_arctic"])
def test_non_parallel_protocol_shares_no_sentence(corpus_fixture, request, tmp_path):
    root = request.getfixturevalue(corpus_fixture)
    corpus, utts = _discover_with("nonparallel.yaml", root)
    assert corpus.protocol == "non_parallel"
    manifests = write_manifests(utts, tmp_path, corpus.protocol)
    train = read_manifest(tmp_path / "train.tsv")
    parallel = read_manifest(tmp_path / "train_parallel.tsv")
    assert shared_train_sentences(train) == []
    assert {(u.speaker, u.utt_id) for u in train} < {(u.speaker, u.utt_id) for u in parallel}
    assert [u.utt_id for u in parallel] == [u.utt_id for u in utts if u.split == "train"]
    counts = collections.Counter(u.speaker for u in train)
    assert max(counts.values()) - min(counts.values()) <= 1 or counts["clb"] == 24  # equal shares, or clb keeps all
    if corpus_fixture == "shared_arctic":
        assert counts == {"clb": 24, "bdl": 232, "slt": 231}
    # dev and eval stay parallel, so every eval sentence can be scored against its target
    assert read_manifest(tmp_path / "eval.tsv") == manifests["eval"] and shared_train_sentences(manifests["eval"])
    # the parallel protocol writes no train_parallel.tsv (and removes a stale one)
    write_manifests(utts, tmp_path, "parallel")
    assert not (tmp_path / "train_parallel.tsv").exists()
    assert len(read_manifest(tmp_path / "train.tsv")) == len(parallel)


def test_non_parallel_train_on_a_toy_corpus():
    from vawgan.corpus import Utterance

    utts = [Utterance(s, f"u{i:02d}", Path(f"{s}/u{i:02d}.wav")) for s in ("a", "b") for i in range(10)]
    utts += [Utterance("c", f"u{i:02d}", Path(f"c/u{i:02d}.wav")) for i in range(2)]
    kept = non_parallel_train(utts)
    ids = {s: [u.utt_id for u in kept if u.speaker == s] for s in ("a", "b", "c")}
    assert ids == {"c": ["u00", "u01"], "a": ["u02", "u03", "u04", "u05"], "b": ["u06", "u07", "u08", "u09"]}


def test_training_refuses_parallel_data_under_the_non_parallel_protocol(embedded_arctic, tmp_path):
    from vawgan.training import check_protocol

    corpus, utts = _discover_with("parallel.yaml", embedded_arctic)
    write_manifests(utts, tmp_path, "parallel")
    config = load_config(ARCTIC_RECIPE_CONF / "nonparallel.yaml")
    with pytest.raises(VawganError, match="read by more than one speaker"):
        check_protocol(config, tmp_path / "train.tsv")
    write_manifests(utts, tmp_path, "non_parallel")
    check_protocol(config, tmp_path / "train.tsv")
    with pytest.raises(VawganError, match="non_parallel protocol forbids"):
        check_protocol(load_config(ARCTIC_RECIPE_CONF / "nonparallel.yaml", {"train.parallel_weight": 1.0}),
                       tmp_path / "train.tsv")


def test_the_any_to_many_config_is_the_parallel_one_with_two_speakers():
    parallel = load_config(ARCTIC_RECIPE_CONF / "parallel.yaml").to_dict()
    two = load_config(ARCTIC_RECIPE_CONF / "parallel_bdl_slt.yaml").to_dict()
    assert two["corpus"].pop("speakers") == ["bdl", "slt"] and parallel["corpus"].pop("speakers") is None
    assert two == parallel
