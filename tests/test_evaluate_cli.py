"""`vawgan evaluate` end to end on real recordings laid out like recipe stage 6, and its errors."""

from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pytest

from vawgan.cli import main
from vawgan.corpus import Utterance, write_manifest
from vawgan.errors import VawganError


@pytest.fixture()
def layout(shared_corpus, tmp_path):
    """A 2-speaker, 1-sentence manifest and a converted tree whose answers are known.

    ``gmm`` holds the target's own recording (a perfect conversion: MCD 0);
    ``vawgan`` holds the source recording (no conversion: the same as ``copy``).
    """
    utts = [Utterance(spk, "fb001", shared_corpus / spk / "fb001.wav", "eval") for spk in ("rms", "slt")]
    write_manifest(utts, tmp_path / "eval.tsv")
    for system, speaker in (("gmm", "rms"), ("vawgan", "slt")):
        out = tmp_path / "converted" / system / "slt-rms"
        out.mkdir(parents=True)
        shutil.copy(shared_corpus / speaker / "fb001.wav", out / "fb001.wav")
    return tmp_path


def _evaluate(layout, *extra):
    return main(["evaluate", "--manifest", str(layout / "eval.tsv"), "--converted", str(layout / "converted"),
                 "--out", str(layout / "eval"), "--no-progress", "--set", "features.f0_method=dio", *extra])


def test_evaluate_writes_the_table_with_known_answers(layout, capsys):
    assert _evaluate(layout, "--systems", "copy,gmm,vawgan,anasyn") == 0
    printed = capsys.readouterr().out
    assert "| copy |" in printed and "results.md" in printed
    rows = {r["system"]: r for r in csv.DictReader(open(layout / "eval" / "results.csv"))}
    assert list(rows) == ["copy", "gmm", "vawgan", "anasyn"]  # the requested order
    assert float(rows["gmm"]["mcd"]) == 0.0 and float(rows["gmm"]["gv_ratio"]) == pytest.approx(1.0)
    assert float(rows["vawgan"]["mcd"]) == pytest.approx(float(rows["copy"]["mcd"]))
    assert float(rows["copy"]["mcd"]) > 5.0  # a woman's voice is far from a man's
    assert 0.0 < float(rows["anasyn"]["mcd"]) < float(rows["copy"]["mcd"])  # the vocoder ceiling
    assert (layout / "eval" / "anasyn" / "rms" / "fb001.wav").is_file()
    assert "Convention" in (layout / "eval" / "results.md").read_text()
    per_utt = list(csv.DictReader(open(layout / "eval" / "per_utterance.csv")))
    assert len(per_utt) == 4


def test_system_names_of_model_conversions():
    from vawgan.evaluate.report import model_system
    from vawgan.systems import SystemSettings

    assert model_system("vae") == ("vae", 0.0) and model_system("vawgan_gv1") == ("vawgan", 1.0)
    assert model_system("vae_gv0.5") == ("vae", 0.5)
    assert model_system("gmm") is None and model_system("vae_gv") is None and model_system("copy") is None
    def describe(name: str) -> str:
        return SystemSettings.from_name(name).description()

    assert describe("vawgan_gv0.5") == "VAW-GAN (after adversarial training) + GV postfilter α 0.5"
    assert describe("vae") == "VAE (after pretraining)" and describe("mine") == "mine"
    # Vocoder-compensated systems: the plain system's features, so no model system of their own.
    assert describe("vawgan_vc") == "VAW-GAN (after adversarial training) + vocoder compensation"
    assert describe("anasyn_vc") == "analysis-synthesis of the target (ceiling) + vocoder compensation"
    assert model_system("vawgan_vc") is None and model_system("gmm_vc") is None


def test_a_folder_is_described_by_its_system_file_or_else_by_its_name(tmp_path):
    from vawgan.evaluate.report import system_settings
    from vawgan.systems import SystemSettings

    (tmp_path / "mine").mkdir()
    SystemSettings("vae", gv_postfilter=0.5, model="/models/x").save(tmp_path / "mine")
    settings = system_settings(tmp_path, ("mine", "vawgan_vc", "copy"))
    assert settings["mine"] == SystemSettings("vae", 0.5, False, "/models/x")
    assert settings["mine"].description() == "VAE (after pretraining) + GV postfilter α 0.5"
    assert settings["mine"].model_weights() == ("vae", 0.5)
    assert settings["vawgan_vc"] == SystemSettings("vawgan", 0.0, True) and settings["vawgan_vc"].model_weights() is None
    assert settings["copy"].description() == "source unchanged (no conversion)"
    (tmp_path / "mine" / "system.yaml").write_text("- not a mapping\n")
    with pytest.raises(VawganError, match="system.yaml: not a readable description"):
        system_settings(tmp_path, ("mine",))


def test_the_report_states_results_without_verdicts():
    """The Markdown report holds the measured rows and their convention, and no verdicts on targets."""
    from vawgan.evaluate.report import format_markdown
    from vawgan.systems import SystemSettings

    def row(system, mcd, gv):
        return {"system": system, "description": SystemSettings.from_name(system).description(), "utterances": 2,
                "mcd": mcd, "mcd_std": 0.1, "mcd_with_c0": mcd + 1.0, "f0_rmse_cents": 50.0, "f0_corr": 0.9,
                "vuv_error": 5.0, "gv_ratio": gv, "ms_distance": 3.0}

    rows = [row("gmm", 4.8, 0.7), row("vae", 6.9, 0.8), row("vawgan", 7.0, 1.0), row("vawgan_vc", 4.4, 1.0),
            row("gmm_vc", 4.6, 0.7)]
    text = format_markdown(rows, [])
    assert "| vawgan | VAW-GAN (after adversarial training) | 7.00 ± 0.10 | 8.00 | 50 | 0.900 | 5.0 | 1.000 | 3.00 | 2 |" \
        in text.splitlines()
    assert "Convention:" in text
    assert not re.search(r"\b(goals?|issue|met)\b", text, re.IGNORECASE), text


def test_evaluate_errors_are_one_line(layout, tmp_path, capsys):
    assert main(["evaluate", "--manifest", str(layout / "eval.tsv"), "--converted", str(tmp_path / "none"),
                 "--systems", "vae", "--out", str(tmp_path / "eval")]) == 2
    assert "no converted wavs found" in capsys.readouterr().err
    (layout / "converted" / "vae" / "slt_to_rms").mkdir(parents=True)
    assert _evaluate(layout, "--systems", "vae") == 2
    err = capsys.readouterr().err
    assert "expected <source>-<target>" in err and len(err.strip().splitlines()) == 1
    assert not (layout / "eval" / "results.md").exists()


def test_feature_level_scores_the_packaged_model_before_the_vocoder(layout, shared_corpus, capsys):
    """--model adds a table of the models' own features; conversion must move towards the target speaker."""
    from vawgan.config import load_config
    from vawgan.convert import pretrained_model_dir
    from vawgan.features.store import feature_path, save_features
    from vawgan.features.world import analyze_file

    config = load_config(pretrained_model_dir() / "config.yaml")
    for spk in ("rms", "slt"):
        feats = analyze_file(shared_corpus / spk / "fb001.wav", config.features, speaker=spk)
        save_features(feature_path(layout / "features", spk, "fb001"), feats)
    assert _evaluate(layout, "--systems", "copy,vae,vae_gv1,vawgan", "--model", "quick",  # the packaged model
                     "--features", str(layout / "features")) == 0
    assert "before the vocoder" in capsys.readouterr().out
    rows = {r["system"]: r for r in csv.DictReader(open(layout / "eval" / "results_features.csv"))}
    assert list(rows) == ["copy", "vae", "vae_gv1", "vawgan"]
    # vae_gv1: the VAE's conversion with the full GV postfilter, the target speaker's variance restored
    assert rows["vae_gv1"]["description"] == "VAE (after pretraining) + GV postfilter α 1"
    assert float(rows["vae"]["gv_ratio"]) < 0.6 < float(rows["vae_gv1"]["gv_ratio"])
    assert rows["copy"]["utterances"] == "2"  # slt→rms and rms→slt
    for system in ("vae", "vawgan"):
        assert float(rows[system]["mcd"]) < float(rows["copy"]["mcd"])


@pytest.mark.slow
def test_gmm_and_plot_commands_end_to_end(shared_corpus, tmp_path, capsys, monkeypatch):
    """Recipe stage 7 by hand on three real sentences: gmm-train, gmm-convert, then every `vawgan plot` figure."""
    from vawgan.config import load_config
    from vawgan.convert import pretrained_model_dir
    from vawgan.evaluate import plots
    from vawgan.features.store import feature_path, save_features
    from vawgan.features.world import analyze_file

    config = load_config(pretrained_model_dir("quick") / "config.yaml")
    utts = [Utterance(spk, utt_id, shared_corpus / spk / f"{utt_id}.wav", split)
            for spk in ("rms", "slt") for utt_id, split in (("fb002", "train"), ("fb003", "train"), ("fb001", "eval"))]
    write_manifest(utts, tmp_path / "all.tsv")
    for u in utts:
        save_features(feature_path(tmp_path / "features", u.speaker, u.utt_id),
                      analyze_file(u.path, config.features, speaker=u.speaker))
    common = ["--manifest", str(tmp_path / "all.tsv"), "--features", str(tmp_path / "features")]

    gmm_train = ["gmm-train", *common, "--out", str(tmp_path / "gmm"), "--pair", "slt-rms", "--components", "2",
                 "--max-iter", "10", "--max-frames", "2000"]
    assert main(gmm_train) == 0
    assert (tmp_path / "gmm" / "slt-rms.npz").is_file() and not (tmp_path / "gmm" / "rms-slt.npz").exists()
    assert main(gmm_train) == 0
    assert "exists, skipped" in capsys.readouterr().out  # a re-run is cheap
    # Two pairs in two worker processes give the models one process trains, pair for pair.
    both = ["gmm-train", *common, "--components", "2", "--max-iter", "10", "--max-frames", "2000", "--realign", "0"]
    assert main([*both, "--out", str(tmp_path / "gmm1")]) == 0
    assert main([*both, "--out", str(tmp_path / "gmm2"), "--jobs", "2"]) == 0
    for pair in ("rms-slt", "slt-rms"):
        one, two = (np.load(tmp_path / d / f"{pair}.npz") for d in ("gmm1", "gmm2"))
        np.testing.assert_array_equal(one["means"], two["means"])
    assert "2 full-covariance components, 0 re-alignment pass(es)" in capsys.readouterr().out
    # EM stopped by the iteration limit is said once for all pairs, not once per pair.
    assert main([*both, "--max-iter", "1", "--out", str(tmp_path / "gmm3")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "limit" in line] == [
        "EM reached the 1-iteration limit before converging for 2 of 2 pair(s) (rms-slt, slt-rms); "
        "--max-iter raises the limit"]

    stats = str(pretrained_model_dir("quick") / "stats.npz")
    assert main(["gmm-convert", "--gmm", str(tmp_path / "gmm"), *common, "--stats", stats,
                 "--out", str(tmp_path / "converted" / "gmm"), "--no-progress"]) == 0
    converted = sorted(p.name for p in (tmp_path / "converted" / "gmm" / "slt-rms").iterdir())
    assert converted == ["fb001.wav", "fb002.wav", "fb003.wav"]
    assert "wrote 3 wavs" in capsys.readouterr().out

    plot = ["plot", *common, "--model", "quick", "--converted", str(tmp_path / "converted"),
            "--gmm", str(tmp_path / "gmm"), "--source", "slt", "--target", "rms", "--utt", "fb001",
            "--out-dir", str(tmp_path / "plots")]
    titles = {}
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (titles.update({path.name: fig.get_suptitle()}),
                                                           save(fig, path))[1])
    assert main(plot) == 0
    for name, title in titles.items():  # every sentence figure names the pair, the split and the level
        if name != "training_curves.png":
            assert "slt → rms, eval+train split" in title, (name, title)
            assert ("wav level" if name.startswith("spectrogram") else "feature level") in title, (name, title)
    printed = capsys.readouterr().out.split()
    expected = {"training_curves.png", "scatter_slt-rms.png", "gv_slt-rms.png", "modspec_slt-rms.png",
                "trajectory_slt-rms_fb001_c1.png", "f0_slt-rms_fb001.png", "f0hist_slt-rms.png",
                "spectrogram_slt-rms_fb001.png"}
    assert {p.split("/")[-1] for p in printed} == expected
    for name in expected:
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name

    # Every ordered pair: one set of files per pair, named after it; the training curves once.
    assert main(["plot", *common, "--model", "quick", "--gmm", str(tmp_path / "gmm"), "--pairs-all",
                 "--kind", "gv", "--kind", "f0hist", "--kind", "curves", "--out-dir", str(tmp_path / "all")]) == 0
    assert sorted(p.split("/")[-1] for p in capsys.readouterr().out.split()) == [
        "f0hist_rms-slt.png", "f0hist_slt-rms.png", "gv_rms-slt.png", "gv_slt-rms.png", "training_curves.png"]
    assert main(["plot", *common, "--model", "quick", "--pair", "rms-slt", "--kind", "gv",
                 "--out-dir", str(tmp_path / "one")]) == 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["gv_rms-slt.png"]

    assert main([*plot[:-2], "--out-dir", str(tmp_path / "bad"), "--source", "bdl"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'bdl'" in err and "rms, slt" in err
    assert main([*plot[:-2], "--out-dir", str(tmp_path / "bad"), "--converted", str(tmp_path / "none")]) == 2
    assert "no converted wav of fb001" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # errors come before any figure is drawn
