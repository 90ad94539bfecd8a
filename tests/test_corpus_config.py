"""Corpus discovery, splits, manifests and the config loader."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vawgan.config import Config, load_config, save_config
from vawgan.corpus import discover, parallel_pairs, read_manifest, split_of, write_manifest
from vawgan.errors import VawganError


def _touch_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)


def test_shared_corpus_is_found_with_parallel_eval_split(shared_corpus):
    utts = discover(shared_corpus)
    assert {u.speaker for u in utts} == {"awb", "rms", "slt"}
    assert len(utts) == 3 * 99
    eval_ids = {spk: {u.utt_id for u in utts if u.speaker == spk and u.split == "eval"} for spk in ("awb", "rms", "slt")}
    assert eval_ids["awb"] == eval_ids["rms"] == eval_ids["slt"] and len(eval_ids["slt"]) >= 5
    pairs = parallel_pairs(utts, "slt", "rms")
    assert len(pairs) == len(eval_ids["slt"])
    assert all(s.utt_id == t.utt_id and s.speaker == "slt" and t.speaker == "rms" for s, t in pairs)


def _arctic_archive(path: Path, recording: Path) -> Path:
    """A CMU ARCTIC release archive in miniature: cmu_us_tst_arctic/wav/arctic_a0001.wav (a real recording)."""
    import tarfile

    with tarfile.open(path, "w:bz2") as tar:
        tar.add(recording, arcname="cmu_us_tst_arctic/wav/arctic_a0001.wav")
    return path


def test_download_arctic_unpacks_resumes_and_fails_cleanly(tmp_path, arctic_wav, monkeypatch):
    import shutil
    import urllib.request

    from vawgan.corpus import download_arctic

    release = _arctic_archive(tmp_path / "release.tar.bz2", arctic_wav)
    fetched = []

    def fake_urlretrieve(url, filename):  # stands in for festvox.org: nothing leaves the machine
        fetched.append(url)
        Path(filename).write_bytes(release.read_bytes())

    monkeypatch.setattr(urllib.request, "urlretrieve", fake_urlretrieve)
    dest = tmp_path / "corpus"
    (dest / "cmu_us_tst_arctic").mkdir(parents=True)  # what an interrupted unpacking leaves
    assert download_arctic("tst", dest) == dest
    assert fetched == ["http://festvox.org/cmu_arctic/cmu_arctic/packed/cmu_us_tst_arctic-0.95-release.tar.bz2"]
    assert [(u.speaker, u.utt_id) for u in discover(dest)] == [("tst", "arctic_a0001")]
    assert (dest / "cmu_us_tst_arctic" / "wav" / "arctic_a0001.wav").read_bytes() == arctic_wav.read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["cmu_us_tst_arctic", "cmu_us_tst_arctic.tar.bz2"]

    # Unpacked already: nothing is fetched. Archive there but not unpacked: it is not fetched again.
    download_arctic("tst", dest)
    shutil.rmtree(dest / "cmu_us_tst_arctic")
    download_arctic("tst", dest)
    assert len(fetched) == 1 and discover(dest)

    def offline(url, filename):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(VawganError, match="could not download .*cmu_us_xyz_arctic.*network unreachable"):
        download_arctic("xyz", dest)
    assert not list(dest.glob("*xyz*")) and not list(dest.glob(".*"))  # no partial archive left
    (dest / "cmu_us_bad_arctic.tar.bz2").write_bytes(b"not an archive")
    with pytest.raises(VawganError, match="not a readable CMU ARCTIC archive"):
        download_arctic("bad", dest)
    assert not (dest / "cmu_us_bad_arctic").exists() and not list(dest.glob(".*"))


def test_split_is_deterministic_and_roughly_proportional():
    ids = [f"utt{i:04d}" for i in range(2000)]
    splits = [split_of(i, 0.1, 0.2) for i in ids]
    assert splits == [split_of(i, 0.1, 0.2) for i in ids]
    assert 0.15 < splits.count("eval") / len(ids) < 0.25
    assert 0.06 < splits.count("dev") / len(ids) < 0.14


def test_arctic_and_vcc_layouts(tmp_path):
    _touch_wav(tmp_path / "arctic" / "cmu_us_bdl_arctic" / "wav" / "arctic_a0001.wav")
    _touch_wav(tmp_path / "arctic" / "cmu_us_slt_arctic" / "wav" / "arctic_a0001.wav")
    utts = discover(tmp_path / "arctic")
    assert [(u.speaker, u.utt_id) for u in utts] == [("bdl", "arctic_a0001"), ("slt", "arctic_a0001")]
    _touch_wav(tmp_path / "vcc" / "SF1" / "100001.wav")
    _touch_wav(tmp_path / "vcc" / "TM1" / "100001.wav")
    utts = discover(tmp_path / "vcc", layout="vcc")
    assert [(u.speaker, u.utt_id) for u in utts] == [("SF1", "100001"), ("TM1", "100001")]


def test_unknown_speaker_and_empty_corpus_are_clear_errors(tmp_path, shared_corpus):
    with pytest.raises(VawganError, match="not in .*found: awb, rms, slt"):
        discover(shared_corpus, speakers=["nobody"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(VawganError, match="no .wav or .flac files"):
        discover(tmp_path / "empty")
    with pytest.raises(VawganError, match="corpus folder not found"):
        discover(tmp_path / "nowhere")


def test_manifest_round_trip(tmp_path, shared_corpus):
    utts = discover(shared_corpus)
    write_manifest(utts, tmp_path / "all.tsv")
    assert read_manifest(tmp_path / "all.tsv") == utts
    assert read_manifest(tmp_path / "all.tsv", split="eval") == [u for u in utts if u.split == "eval"]


def test_config_round_trip_overrides_and_typos(tmp_path):
    config = load_config(None, {"train.vae_epochs": 2, "features.f0_method": "dio"})
    assert config.train.vae_epochs == 2 and config.features.f0_method == "dio"
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    with pytest.raises(VawganError, match="unknown key.*vae_epoch"):
        load_config(None, {"train.vae_epoch": 2})
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(VawganError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    assert Config().features.f0_range("slt") == (60.0, 500.0)


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os

    from vawgan.utils import save_npz_atomic

    save_npz_atomic(tmp_path / "a.npz", x=np.zeros(3))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


@pytest.mark.parametrize("loader, what", [
    ("vawgan.stats:Statistics.load", "statistics file"),
    ("vawgan.features.store:load_features", "feature file"),
    ("vawgan.baselines.gmm:JointGMM.load", "GMM baseline model"),
])
def test_missing_or_damaged_npz_files_are_one_line_errors(tmp_path, loader, what):
    import importlib

    module, _, attr = loader.partition(":")
    load = importlib.import_module(module)
    for part in attr.split("."):
        load = getattr(load, part)
    with pytest.raises(VawganError, match=f"{what} not found"):
        load(tmp_path / "missing.npz")
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(VawganError, match=f"{what} is damaged"):
        load(tmp_path / "garbage.npz")
    np.savez(tmp_path / "wrong_keys.npz", something=np.zeros(2))
    with pytest.raises(VawganError, match=f"{what} is damaged"):
        load(tmp_path / "wrong_keys.npz")


@pytest.mark.parametrize("config_file", sorted(Path(__file__).resolve().parents[1].glob("recipes/*/conf/*.yaml")),
                         ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_every_recipe_config_loads(config_file):
    """Each recipe's YAML names only keys its config type has (a typo would fail the recipe, not be ignored)."""
    import yaml

    from vawgan.gans.config import BeganConfig, Grid2DConfig, ImageGanConfig

    config_cls = {"arctic": Config, "flite": Config, "gan2d": Grid2DConfig, "mnist": ImageGanConfig, "began": BeganConfig}
    config = load_config(config_file, config_cls=config_cls[config_file.parts[-3]])
    for section, values in yaml.safe_load(config_file.read_text()).items():
        for key, value in values.items():
            assert getattr(getattr(config, section), key) == value, f"{section}.{key}"


def test_command_line_basics(shared_corpus, tmp_path, capsys, monkeypatch):
    """No verb: usage and status 2; a malformed --set: one line; Ctrl-C: one line, status 130, no manifest."""
    import vawgan.corpus
    from vawgan.cli import main

    assert main([]) == 2
    assert "usage: vawgan" in capsys.readouterr().out
    assert main(["prepare", "--corpus", str(shared_corpus), "--out", str(tmp_path / "data"),
                 "--set", "corpus.layout"]) == 2
    assert capsys.readouterr().err.strip() == \
        "vawgan prepare: error: --set 'corpus.layout': expected SECTION.KEY=VALUE"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vawgan.corpus, "discover", interrupted)
    assert main(["prepare", "--corpus", str(shared_corpus), "--out", str(tmp_path / "data")]) == 130
    assert capsys.readouterr().err.strip() == "vawgan prepare: interrupted"
    assert not (tmp_path / "data").exists()


def test_the_parallel_recipe_config_is_the_quick_one_plus_parallel_data():
    """conf/parallel.yaml shares stages 0-2 with conf/quick.yaml: only the parallel-data settings, the
    encoder's context, the decoder's width and the ensemble's size may differ."""
    conf = Path(__file__).resolve().parents[1] / "recipes" / "flite" / "conf"
    quick, parallel = load_config(conf / "quick.yaml").to_dict(), load_config(conf / "parallel.yaml").to_dict()
    assert quick["train"].pop("parallel_weight") == 0.0 and parallel["train"].pop("parallel_weight") > 0
    assert quick["model"].pop("context_frames") == 0 and parallel["model"].pop("context_frames") > 0
    assert quick["train"].pop("realign_epochs") == 0 and parallel["train"].pop("realign_epochs") > 0
    assert quick["model"].pop("decoder_hidden") == [128, 256] and parallel["model"].pop("decoder_hidden") == [512, 1024]
    assert quick["train"].pop("members") == 1 and parallel["train"].pop("members") == 8
    assert parallel == quick
