"""Corpus extraction: warn-and-skip bad recordings, resume after a kill, refuse mixed settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import yaml

from vawgan.cli import main
from vawgan.config import FeatureConfig
from vawgan.corpus import read_manifest, write_manifest
from vawgan.errors import VawganError
from vawgan.features.extract import extract_corpus
from vawgan.features.store import feature_path, load_features

FS = 16000


@pytest.fixture(scope="module")
def messy_corpus(tmp_path_factory, arctic_wav):
    """A corpus of one speaker whose recordings are good, odd but usable, or unusable."""
    root = tmp_path_factory.mktemp("messy")
    spk = root / "clb"
    spk.mkdir()
    x, fs = sf.read(arctic_wav, dtype="float64")
    x = x[: int(1.5 * fs)]
    sf.write(spk / "good.wav", x, fs, subtype="PCM_16")
    sf.write(spk / "stereo.wav", np.stack([x, x], axis=1), fs, subtype="PCM_16")
    sf.write(spk / "rate8k.wav", x[::2], 8000, subtype="PCM_16")
    sf.write(spk / "clipped.wav", np.clip(5 * x, -1, 1), fs, subtype="PCM_16")
    (spk / "empty.wav").write_bytes(b"")
    sf.write(spk / "silent.wav", np.zeros(fs), fs, subtype="PCM_16")
    sf.write(spk / "short.wav", x[4000:4500], fs, subtype="PCM_16")
    (spk / "text.wav").write_text("this is not audio\n" * 50)
    (spk / "truncated.wav").write_bytes((spk / "good.wav").read_bytes()[:30])
    return root


USABLE = {"good", "stereo", "rate8k", "clipped"}
UNUSABLE = {"empty": "empty file", "silent": "silent", "short": "shorter than one analysis window",
            "text": "not a readable audio file", "truncated": "damaged or truncated WAV header"}


def test_corpus_run_warns_and_skips(messy_corpus, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "features"
    assert main(["prepare", "--corpus", str(messy_corpus), "--out", str(data)]) == 0
    assert main(["extract", "--manifest", str(data / "all.tsv"), "--out", str(out), "--no-progress",
                 "--set", "features.f0_method=dio"]) == 0
    captured = capsys.readouterr()
    assert f"extracted {len(USABLE)}, already done 0, skipped {len(UNUSABLE)} unusable" in captured.out
    lines = captured.err.strip().splitlines()
    for name, problem in UNUSABLE.items():
        assert any(line.startswith("skipped:") and f"{name}.wav" in line and problem in line for line in lines), name
    for name, warning in {"stereo": "2 channels", "rate8k": "8000 Hz", "clipped": "clipped"}.items():
        assert any(line.startswith("warning:") and f"{name}.wav" in line and warning in line for line in lines), name
    assert "Traceback" not in captured.err
    written = sorted(p.name for p in (out / "clb").iterdir())
    assert written == sorted(f"{n}.npz" for n in USABLE)  # no partial or temporary files
    resampled = load_features(out / "clb" / "rate8k.npz")
    assert resampled.fs == FS and resampled.num_frames == load_features(out / "clb" / "good.npz").num_frames


def test_progress_bar_stays_out_of_redirected_output(messy_corpus, tmp_path, capsys):
    """With the bar on (the default) and stderr not a terminal, as in a log file: no carriage-return updates."""
    data, out = tmp_path / "data", tmp_path / "features"
    assert main(["prepare", "--corpus", str(messy_corpus), "--out", str(data)]) == 0
    assert main(["extract", "--manifest", str(data / "all.tsv"), "--out", str(out),
                 "--set", "features.f0_method=dio"]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "it/s" not in captured.err and "utt/s" not in captured.err
    assert any(line.startswith("warning:") for line in captured.err.splitlines())  # the lines that matter stay


def read_manifest_of(corpus, tmp_path):
    assert main(["prepare", "--corpus", str(corpus), "--out", str(tmp_path / "m")]) == 0
    return read_manifest(tmp_path / "m" / "all.tsv")


def test_all_unusable_is_an_error(messy_corpus, tmp_path, capsys):
    manifest = tmp_path / "bad.tsv"
    bad = [u for u in read_manifest_of(messy_corpus, tmp_path) if u.utt_id in UNUSABLE]
    write_manifest(bad, manifest)
    assert main(["extract", "--manifest", str(manifest), "--out", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "no utterance could be analysed" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_kill_gives_identical_features(flite_features, tmp_path):
    """Kill a 2-process extraction after its first file, damage things, resume: same features as one clean run."""
    reference_dir, utterances, config = flite_features
    manifest, out = tmp_path / "m.tsv", tmp_path / "features"
    write_manifest(utterances, manifest)
    proc = subprocess.Popen([sys.executable, "-m", "vawgan", "extract", "--manifest", str(manifest), "--out", str(out),
                             "--jobs", "2", "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while (not [p for p in out.glob("*/*.npz") if not p.name.startswith(".")]  # not a temporary file
           and time.monotonic() < deadline and proc.poll() is None):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run: parent and workers
    proc.wait()
    done = [u for u in utterances if feature_path(out, u.speaker, u.utt_id).is_file()]
    todo = [u for u in utterances if u not in done]
    assert done and todo, "the kill should land in the middle of the run"
    # A damaged final file (e.g. a copy cut short) and a temporary file of a killed writer.
    # (the kill can land before a speaker's folder exists: make the folders these files go to)
    damaged = feature_path(out, todo[0].speaker, todo[0].utt_id)
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(feature_path(out, done[0].speaker, done[0].utt_id).read_bytes()[:100])
    # It goes in its own utterance's folder: put beside todo[0] with todo[-1]'s id, it stayed there whenever
    # the kill left the two with different speakers (no resumed utterance of that id is written there).
    stale = feature_path(out, todo[-1].speaker, todo[-1].utt_id).parent / f".{todo[-1].utt_id}.abc123.npz"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half")

    summary = extract_corpus(utterances, out, config, jobs=1, progress=False)
    assert summary.already_done == len(done) and summary.extracted == len(todo) and not summary.failed
    assert not stale.exists()
    for utt in utterances:
        resumed = load_features(feature_path(out, utt.speaker, utt.utt_id))
        reference = load_features(feature_path(reference_dir, utt.speaker, utt.utt_id))
        for key in ("f0", "mcep", "coded_ap", "speech"):
            np.testing.assert_array_equal(getattr(resumed, key), getattr(reference, key), err_msg=f"{utt} {key}")
    # A finished run is cheap to repeat: nothing is redone.
    again = extract_corpus(utterances, out, config, jobs=1, progress=False)
    assert again.already_done == len(utterances) and again.extracted == 0


def test_changed_settings_redo_everything(flite_features, tmp_path, caplog):
    _, utterances, config = flite_features
    one = [u for u in utterances if u.speaker == "slt"][:1]
    out = tmp_path / "features"
    extract_corpus(one, out, FeatureConfig(f0_method="dio"), progress=False)
    dio = load_features(feature_path(out, one[0].speaker, one[0].utt_id))
    other = feature_path(out, "rms", "fb001")  # made with the old settings, not in this run
    other.parent.mkdir()
    other.write_bytes(feature_path(out, one[0].speaker, one[0].utt_id).read_bytes())
    with caplog.at_level("WARNING", logger="vawgan"):
        summary = extract_corpus(one, out, FeatureConfig(f0_method="dio", f0_floor=120.0), progress=False)
    assert summary.extracted == 1 and summary.already_done == 0
    assert any("f0_floor: 60.0 → 120.0" in r.getMessage() for r in caplog.records)
    redone = load_features(feature_path(out, one[0].speaker, one[0].utt_id))
    assert not np.array_equal(redone.f0, dio.f0)
    assert not other.exists()  # no old-settings features left to mix with the new ones
    # Feature files without a record of their settings are not trusted either.
    (out / "features.yaml").unlink()
    summary = extract_corpus(one, out, FeatureConfig(f0_method="dio", f0_floor=120.0), progress=False)
    assert summary.extracted == 1
    # A record written before a setting existed stands for that setting's default: nothing is redone.
    record = yaml.safe_load((out / "features.yaml").read_text())
    del record["aperiodicity_step"]
    (out / "features.yaml").write_text(yaml.safe_dump(record))
    summary = extract_corpus(one, out, FeatureConfig(f0_method="dio", f0_floor=120.0), progress=False)
    assert summary.extracted == 0 and summary.already_done == 1
    with pytest.raises(VawganError, match="at least 1"):
        extract_corpus(one, out, config, jobs=0, progress=False)
