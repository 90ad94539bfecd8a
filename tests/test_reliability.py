"""What vawgan does with hostile or broken input: one line, a non-zero exit, nothing written, nothing run.

Model directories come from strangers, recordings are irreplaceable,
settings are typed by hand, and runs get killed or meet a full disk. The
module plays 54 such cases, one per test id (``pytest --collect-only``, a
parametrized test counted once per parameter set), almost all through the
command line, on the real recordings of the shared corpus and the packaged
models; one more test checks that the packaged models are data whose hashes
match.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from vawgan.pretrained import PRETRAINED_ROOT

REPO = Path(__file__).resolve().parents[1]


ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def vawgan(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``vawgan`` command in a fresh interpreter (the way a user runs it)."""
    return subprocess.run([sys.executable, "-m", "vawgan", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a failed command, checked to hold ``fragments`` and no traceback."""
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


class RunsCode:
    """An object whose unpickling writes ``marker``: what a malicious ``.pt`` would hold."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def write_malicious_weights(path: Path, marker: Path) -> None:
    """A ``.pt`` holding :class:`RunsCode`, with the folder's ``weights.sha256`` updated to match it.

    An attacker who hands out a model directory controls its hash file too:
    the hash guards against damage, the loader itself has to refuse code.
    """
    import torch

    torch.save({"encoder": RunsCode(marker), "decoder": {}, "speakers": ["rms", "slt"], "step": 0}, path)
    hashes = path.parent / "weights.sha256"
    lines = [line for line in hashes.read_text().splitlines() if not line.endswith(f"  {path.name}")]
    lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    hashes.write_text("\n".join(lines) + "\n")


@pytest.fixture
def malicious_model(tmp_path) -> tuple[Path, Path]:
    """``(model_dir, marker)``: a copy of the packaged quick model whose ``vawgan.pt`` runs code when unpickled."""
    model = tmp_path / "downloaded"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    marker = tmp_path / "marker"
    write_malicious_weights(model / "vawgan.pt", marker)
    # The payload is live: unpickled the ordinary way, it runs.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(RunsCode(probe)))
    assert probe.read_text() == "code ran"
    return model, marker


def test_convert_refuses_a_model_file_that_would_run_code(malicious_model, shared_corpus, tmp_path):
    model, marker = malicious_model
    out = tmp_path / "out.wav"
    done = vawgan("convert", shared_corpus / "rms" / "fb010.wav", "--model", model, "--target", "slt", "-o", out)
    one_line_error(done, "vawgan.pt: refused", "could run code")
    assert not marker.exists() and not out.exists()


def test_info_refuses_a_model_file_that_would_run_code(malicious_model):
    model, marker = malicious_model
    one_line_error(vawgan("info", "--model", model), "vawgan.pt: refused")
    assert not marker.exists()


def test_a_packaged_name_is_not_shadowed_by_a_folder_of_that_name(malicious_model, tmp_path):
    model, marker = malicious_model
    model.rename(tmp_path / "quick")
    done = vawgan("info", "--model", "quick", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"model directory: {PRETRAINED_ROOT / 'quick'}" in done.stdout
    one_line_error(vawgan("info", "--model", "./quick", cwd=tmp_path), "vawgan.pt: refused")
    assert not marker.exists()


def test_weights_that_differ_from_their_recorded_hash_are_refused(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    with open(model / "vae.pt", "ab") as weights:
        weights.write(b"\0")
    one_line_error(vawgan("info", "--model", model), "vae.pt: its SHA-256 differs from the one",
                   "weights.sha256 records")


def test_packaged_models_load_as_data_and_match_their_hashes():
    import torch

    from vawgan.checkpoint import check_hash

    files = sorted(PRETRAINED_ROOT.rglob("*.pt")) + sorted(PRETRAINED_ROOT.rglob("v*.npz"))
    # arctic, arctic-nonparallel, quick: vae and vawgan as .pt and .npz; parallel the same plus 7 members' .npz
    assert len(files) == 4 + 4 + 4 + 4 + 7
    for path in files:
        check_hash(path)
        if path.suffix == ".pt":
            assert {"encoder", "decoder", "speakers", "step"} <= set(torch.load(path, weights_only=True))


def test_train_resume_refuses_a_checkpoint_that_would_run_code(real_features, tmp_path):
    from vawgan.config import Config, save_config
    from vawgan.corpus import read_manifest
    from vawgan.model_dir import write_speakers

    model = tmp_path / "model"
    model.mkdir()
    save_config(Config(), model / "config.yaml")
    shutil.copy(real_features / "stats.npz", model / "stats.npz")
    write_speakers(model / "speakers.txt", sorted({u.speaker for u in read_manifest(real_features / "train.tsv")}))
    (model / "weights.sha256").write_text("")
    marker = tmp_path / "marker"
    write_malicious_weights(model / "checkpoint.pt", marker)
    done = vawgan("train", "--resume", "--no-progress", "--features", real_features / "features",
                  "--manifest", real_features / "train.tsv", "--stats", real_features / "stats.npz",
                  "--model-dir", model, "--set", "train.tensorboard=false")
    one_line_error(done, "checkpoint.pt: refused")
    assert not marker.exists()
    assert not (model / "vae.pt").exists()


# ---------------------------------------------------------------- never write over an input


def cli(capsys, *args) -> tuple[int, str]:
    """Run ``vawgan ARGS`` in this process: (exit status, stderr)."""
    from vawgan.cli import main

    status = main([str(a) for a in args])
    return status, capsys.readouterr().err.strip()


def assert_one_line(status: int, err: str, *fragments: str) -> None:
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (status, err)
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def recording(shared_corpus, tmp_path) -> tuple[Path, bytes]:
    """A copy of a real recording in a folder of its own, and its bytes."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    path = folder / "fb010.wav"
    shutil.copy(shared_corpus / "rms" / "fb010.wav", path)
    return path, path.read_bytes()


@pytest.mark.parametrize("verb", ["convert", "resynth"])
@pytest.mark.parametrize("link", ["same path", "hard link", "symbolic link"])
def test_an_output_that_is_the_input_is_refused(recording, tmp_path, capsys, verb, link):
    path, original = recording
    out = {"same path": path, "hard link": tmp_path / "hard.wav", "symbolic link": tmp_path / "soft.wav"}[link]
    if link == "hard link":
        os.link(path, out)
    elif link == "symbolic link":
        out.symlink_to(path)
    args = ["--target", "slt"] if verb == "convert" else []
    status, err = cli(capsys, verb, path, *args, "-o", out)
    assert_one_line(status, err, f"{out}: this output is the input {path}", "would destroy the recording")
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == ["fb010.wav"]


def test_a_symbolic_link_input_is_not_written_through_its_target(recording, tmp_path, capsys):
    path, original = recording
    (tmp_path / "link.wav").symlink_to(path)
    status, err = cli(capsys, "convert", tmp_path / "link.wav", "--target", "slt", "-o", path)
    assert_one_line(status, err, "this output is the input")
    assert path.read_bytes() == original


@pytest.mark.parametrize("where", ["the input folder", "a folder holding it"])
def test_a_batch_output_folder_overlapping_an_input_folder_is_refused(recording, capsys, where):
    path, original = recording
    shutil.copy(path, path.parent / "second.wav")
    out = path.parent if where == "the input folder" else path.parent.parent
    status, err = cli(capsys, "convert", path.parent, "--target", "slt", "-o", out, "--overwrite")
    assert_one_line(status, err, f"{out}: the output folder overlaps the input folder {path.parent}")
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == ["fb010.wav", "second.wav"]


def test_a_listed_input_in_the_output_folder_is_refused(recording, tmp_path, capsys):
    path, original = recording
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{path}\n")
    status, err = cli(capsys, "convert", listing, "--target", "slt", "-o", path.parent, "--overwrite")
    assert_one_line(status, err, f"{path}: this output is the input {path}")
    assert path.read_bytes() == original


def test_resynth_of_a_manifest_into_its_own_corpus_is_refused(recording, tmp_path, capsys):
    from vawgan.corpus import Utterance, write_manifest

    path, original = recording
    write_manifest([Utterance("recordings", "fb010", path)], tmp_path / "all.tsv")
    status, err = cli(capsys, "resynth", "--manifest", tmp_path / "all.tsv", "--out-dir", tmp_path)
    assert_one_line(status, err, "this output is the input")
    assert path.read_bytes() == original


@pytest.mark.parametrize("out, message", [("folder.wav", "output is a folder"),
                                          ("/proc/out.wav", "cannot write into /proc")])
def test_resynth_to_a_folder_or_an_unwritable_place_is_one_line(recording, tmp_path, capsys, out, message):
    path, _ = recording
    target = tmp_path / out if out == "folder.wav" else Path(out)
    if out == "folder.wav":
        target.mkdir()
    status, err = cli(capsys, "resynth", path, "-o", target)
    assert_one_line(status, err, message)


# ---------------------------------------------------------------- typed settings


def test_a_number_in_exponent_notation_is_a_number():
    import argparse

    from vawgan.cli.common import config_from_args

    args = argparse.Namespace(config=None, overrides=["train.learning_rate=1e-4", "features.f0_floor=70"])
    config = config_from_args(args)
    assert config.train.learning_rate == 1e-4 and isinstance(config.train.learning_rate, float)
    assert config.features.f0_floor == 70.0 and isinstance(config.features.f0_floor, float)


@pytest.mark.parametrize("setting, message", [
    ("train.vae_epochs=abc", "--set train.vae_epochs='abc' must be an integer"),
    ("train.vae_epochs=2.5", "--set train.vae_epochs=2.5 must be an integer"),
    ("train.batch_size=0", "--set train.batch_size=0 must be at least 1"),
    ("train.adversarial_epochs=-1", "--set train.adversarial_epochs=-1 must not be negative"),
    ("train.learning_rate=0", "--set train.learning_rate=0 must be greater than 0"),
    ("train.learning_rate=.nan", "--set train.learning_rate=nan must be a finite number"),
    ("train.adam_betas=[0.9]", "--set train.adam_betas=[0.9] must be two numbers"),
    ("train.tensorboard=maybe", "--set train.tensorboard='maybe' must be true or false"),
    ("model.encoder_hidden=[256,0]", "--set model.encoder_hidden=[256, 0] must be layer sizes of at least 1"),
    ("features.f0_method=crepe", "--set features.f0_method='crepe' is not one of harvest, dio"),
    ("features.f0_floor=600", "--set features.f0_floor=600 must be below features.f0_ceil=500"),
])
def test_a_bad_setting_is_one_line_before_anything_is_written(tmp_path, capsys, setting, message):
    model = tmp_path / "model"
    status, err = cli(capsys, "train", "--model-dir", model, "--features", tmp_path / "features",
                      "--set", setting)
    assert_one_line(status, err, message)
    assert not model.exists()


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, capsys):
    (tmp_path / "conf.yaml").write_text("corpus:\n  dev_fraction: 1.5\n")
    status, err = cli(capsys, "prepare", "--config", tmp_path / "conf.yaml", "--out", tmp_path / "data")
    assert_one_line(status, err, f"{tmp_path / 'conf.yaml'}: corpus.dev_fraction=1.5 must be at least 0 and below 1")
    assert not (tmp_path / "data").exists()


def test_a_bad_value_in_a_model_directory_config_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    config = model / "config.yaml"
    config.write_text(config.read_text().replace("latent_dim: 64", "latent_dim: sixty-four"))
    status, err = cli(capsys, "info", "--model", model)
    assert_one_line(status, err, f"{config}: model.latent_dim='sixty-four' must be an integer")


# ---------------------------------------------------------------- NaN and infinity


def put_nan(npz: Path, key: str) -> None:
    """Damage one array of an ``.npz`` file on disk: its first value becomes NaN."""
    import numpy as np

    with np.load(npz) as data:
        arrays = dict(data)
    arrays[key] = arrays[key].astype(np.float64)
    arrays[key].flat[0] = np.nan
    np.savez(npz, **arrays)


@pytest.fixture
def one_feature_folder(shared_corpus, tmp_path, capsys) -> tuple[Path, Path]:
    """``(manifest, feature folder)``: DIO features of two real recordings, extracted by the command line."""
    from vawgan.corpus import Utterance, write_manifest

    manifest = tmp_path / "train.tsv"
    write_manifest([Utterance(spk, "fb010", shared_corpus / spk / "fb010.wav") for spk in ("rms", "slt")], manifest)
    features = tmp_path / "features"
    assert cli(capsys, "extract", "--manifest", manifest, "--out", features, "--no-progress",
               "--set", "features.f0_method=dio") == (0, "")
    return manifest, features


def test_extract_redoes_a_feature_file_holding_nan(one_feature_folder, capsys):
    import numpy as np

    from vawgan.features.store import load_features

    manifest, features = one_feature_folder
    put_nan(features / "rms" / "fb010.npz", "mcep")
    from vawgan.cli import main

    assert main(["extract", "--manifest", str(manifest), "--out", str(features), "--no-progress",
                 "--set", "features.f0_method=dio"]) == 0
    assert "extracted 1, already done 1" in capsys.readouterr().out
    assert np.isfinite(load_features(features / "rms" / "fb010.npz").mcep).all()


def test_stats_names_a_feature_file_holding_nan(one_feature_folder, tmp_path, capsys):
    manifest, features = one_feature_folder
    put_nan(features / "slt" / "fb010.npz", "f0")
    status, err = cli(capsys, "stats", "--manifest", manifest, "--features", features, "--out", tmp_path / "s.npz")
    assert_one_line(status, err, f"{features / 'slt' / 'fb010.npz'}: non-finite values (NaN or infinity) in f0")
    assert not (tmp_path / "s.npz").exists()


def test_info_and_convert_name_non_finite_statistics(shared_corpus, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    put_nan(model / "stats.npz", "spk/slt/mcep_std")
    message = f"{model / 'stats.npz'}: the statistics spk/slt/mcep_std are not finite"
    assert_one_line(*cli(capsys, "info", "--model", model), message)
    out = tmp_path / "out.wav"
    assert_one_line(*cli(capsys, "convert", shared_corpus / "rms" / "fb010.wav", "--model", model, "--target", "slt",
                         "-o", out), message)
    assert not out.exists()


def test_convert_names_an_input_with_nan_samples(recording, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    path, _ = recording
    samples, rate = sf.read(path)
    samples[1000] = np.nan
    damaged = tmp_path / "damaged.wav"
    sf.write(damaged, samples, rate, subtype="FLOAT")
    out = tmp_path / "out.wav"
    status, err = cli(capsys, "convert", damaged, "--target", "slt", "-o", out)
    assert_one_line(status, err, f"{damaged}: audio contains NaN or infinite samples")
    assert not out.exists()


def test_convert_names_non_finite_weights(shared_corpus, tmp_path, capsys):
    from vawgan.checkpoint import load_checkpoint, save_checkpoint

    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    state = load_checkpoint(model / "vawgan.pt")
    state["decoder"]["net.0.bias"][0] = float("inf")
    save_checkpoint(model / "vawgan.pt", state)
    out = tmp_path / "out.wav"
    status, err = cli(capsys, "convert", shared_corpus / "rms" / "fb010.wav", "--model", model, "--target", "slt",
                      "-o", out)
    assert_one_line(status, err, f"{model / 'vawgan.pt'}: the weights decoder/net.0.bias are not finite")
    assert not out.exists()


# ---------------------------------------------------------------- one writer per folder

HOLDER = """
import sys
from vawgan.lock import folder_lock
with folder_lock(sys.argv[1], "vawgan extract"):
    print("locked", flush=True)
    sys.stdin.read()  # until the test closes stdin or kills this process
"""


@pytest.fixture
def held_folder(tmp_path):
    """``(folder, process)``: a folder whose lock another process holds."""
    folder = tmp_path / "busy"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "locked"
    yield folder, holder
    holder.kill()
    holder.wait()


def test_a_second_writer_is_refused_naming_the_holder(held_folder, one_feature_folder, shared_corpus, capsys):
    import socket

    folder, holder = held_folder
    manifest, _ = one_feature_folder
    holder_line = f"{folder}: another vawgan run is writing here (pid {holder.pid} on {socket.gethostname()}, started "
    for args in (["extract", "--manifest", manifest, "--out", folder, "--set", "features.f0_method=dio"],
                 ["train", "--model-dir", folder, "--manifest", manifest],
                 ["convert", shared_corpus / "rms", "--target", "slt", "-o", folder]):
        assert_one_line(*cli(capsys, *args), holder_line, ": vawgan extract); wait for it to finish")
    assert sorted(p.name for p in folder.iterdir()) == [".vawgan.lock"]


def test_the_lock_of_a_killed_run_is_taken_over(held_folder, one_feature_folder, capsys):
    folder, holder = held_folder
    manifest, _ = one_feature_folder
    holder.kill()
    holder.wait()
    assert (folder / ".vawgan.lock").is_file()  # left behind by the killed run
    status, err = cli(capsys, "extract", "--manifest", manifest, "--out", folder, "--no-progress",
                      "--set", "features.f0_method=dio")
    assert status == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["features.yaml", "rms", "slt"]  # and the lock released


# ---------------------------------------------------------------- the smaller cases


@pytest.mark.parametrize("column", ["speaker", "utt_id"])
def test_manifest_ids_that_would_leave_the_output_folder_are_refused(shared_corpus, tmp_path, capsys, column):
    from vawgan.corpus import Utterance, write_manifest

    ids = {"speaker": "rms", "utt_id": "fb010", column: "../escaped"}
    write_manifest([Utterance(ids["speaker"], ids["utt_id"], shared_corpus / "rms" / "fb010.wav")],
                   tmp_path / "all.tsv")
    out = tmp_path / "work" / "out"
    for args in (["extract", "--manifest", tmp_path / "all.tsv", "--out", out],
                 ["convert", tmp_path / "all.tsv", "--target", "slt", "-o", out]):
        assert_one_line(*cli(capsys, *args), f"line 2: {column} '../escaped' is not a plain name")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("args, message", [
    (["extract", "--manifest", "{wav}", "--out", "{tmp}/features"], "{wav}: not a vawgan manifest"),
    (["stats", "--manifest", "{tsv}", "--features", "{tmp}/features", "--out", "{tmp}"],
     "{tmp}: is a folder; give the name of the file to write"),
    (["train", "--model-dir", "{wav}"], "{wav}: is a file, not a folder"),
])
def test_paths_of_the_wrong_kind_are_one_line(one_feature_folder, shared_corpus, tmp_path, capsys, args, message):
    manifest, features = one_feature_folder
    names = {"wav": shared_corpus / "rms" / "fb010.wav", "tsv": manifest, "tmp": tmp_path}
    names["features"] = features
    status, err = cli(capsys, *[a.format(**names) for a in args])
    assert_one_line(status, err, message.format(**names))


@pytest.mark.parametrize("damage, message", [
    (lambda text: text.replace("features:", "other_features:").split("other_features:")[0],
     "no features, model, train section(s)"),
    (lambda text: text[: len(text) // 2], "section(s); `vawgan train` writes them all, so the file is truncated"),
])
def test_an_incomplete_model_config_is_named_not_blamed_on_the_weights(shared_corpus, tmp_path, capsys, damage,
                                                                       message):
    model = tmp_path / "model"
    shutil.copytree(PRETRAINED_ROOT / "quick", model)
    config = model / "config.yaml"
    config.write_text(damage(config.read_text()))
    out = tmp_path / "out.wav"
    for args in (["info", "--model", model],
                 ["convert", shared_corpus / "rms" / "fb010.wav", "--model", model, "--target", "slt", "-o", out]):
        assert_one_line(*cli(capsys, *args), f"{config}: no ", message)
    assert not out.exists()


def test_a_batch_run_removes_the_temporary_file_of_a_killed_one(recording, tmp_path, capsys):
    path, _ = recording
    out = tmp_path / "converted"
    out.mkdir()
    stale = out / ".fb010.k2j3h4a9.wav"  # what atomic_path leaves when the process is killed while writing
    stale.write_bytes(b"RIFF half a file")
    status, err = cli(capsys, "convert", path.parent, "--target", "slt", "-o", out)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["fb010.wav", "system.yaml"]


WRITER = """
import sys
from vawgan.utils import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"RIFF half a file")
    print(tmp.name, flush=True)
    sys.stdin.read()  # until the test kills this process
"""


def start_writer(out: Path) -> tuple[subprocess.Popen, Path]:
    """``(process, temporary file)``: another process in the middle of writing ``out``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    return writer, out.parent / writer.stdout.readline().strip()


@pytest.mark.parametrize("verb", ["convert", "resynth"])
def test_a_single_file_run_removes_the_temporary_of_a_killed_one_not_of_a_live_one(recording, tmp_path, capsys,
                                                                                   verb):
    path, _ = recording
    out = tmp_path / "out" / "converted.wav"
    live, in_flight = start_writer(out)
    try:
        killed, left_behind = start_writer(out)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert left_behind.is_file() and in_flight.is_file() and left_behind != in_flight
        args = ["--target", "slt"] if verb == "convert" else []
        status, err = cli(capsys, verb, path, *args, "-o", out)
        assert status == 0, err
        assert sorted(p.name for p in out.parent.iterdir()) == sorted([in_flight.name, out.name])
    finally:
        live.kill()
        live.wait()


@contextlib.contextmanager
def small_disk(mount: Path, free_kib: int) -> Iterator[Path]:
    """A 1 MiB file system mounted at ``mount`` with about ``free_kib`` KiB left.

    The test is skipped, with the reason, where mounting is not allowed.
    """
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        with open(mount / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
            while shutil.disk_usage(mount).free > free_kib * 1024:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def full_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB file system that is full."""
    with small_disk(tmp_path / "full", 0) as mount:
        assert shutil.disk_usage(mount).free == 0
        yield mount


def test_a_full_disk_is_one_line_and_leaves_no_file(recording, one_feature_folder, full_disk, capsys):
    path, _ = recording
    manifest, features = one_feature_folder
    out = full_disk / "out.wav"
    assert_one_line(*cli(capsys, "convert", path, "--target", "slt", "-o", out),
                    f"{out}: no space left on the device; nothing was written")
    assert_one_line(*cli(capsys, "resynth", path, "-o", out), f"{out}: no space left on the device")
    stats = full_disk / "stats.npz"
    assert_one_line(*cli(capsys, "stats", "--manifest", manifest, "--features", features, "--out", stats),
                    f"{stats}: no space left on the device")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("free_kib", [0, 160], ids=["full disk", "disk full after the first file"])
def test_a_full_disk_stops_extract_train_and_batch_convert_with_one_line(one_feature_folder, shared_corpus, tmp_path,
                                                                         capsys, free_kib):
    from vawgan.features.store import is_complete_feature_file

    manifest, features = one_feature_folder
    stats = tmp_path / "stats.npz"
    assert cli(capsys, "stats", "--manifest", manifest, "--features", features, "--out", stats)[0] == 0
    capsys.readouterr()
    with small_disk(tmp_path / "small", free_kib) as disk:
        status, err = cli(capsys, "extract", "--manifest", manifest, "--out", disk / "features", "--no-progress",
                          "--set", "features.f0_method=dio")
        assert_one_line(status, err, "no space left on the device; nothing was written")
        # Stopped at the first full write (no "skipped:" line per later file); what is there is whole.
        assert all(is_complete_feature_file(npz) for npz in (disk / "features").rglob("*.npz"))
        shutil.rmtree(disk / "features", ignore_errors=True)
        status, err = cli(capsys, "convert", shared_corpus / "rms", "--target", "slt", "-o", disk / "converted")
        assert_one_line(status, err, "no space left on the device; nothing was written")
        shutil.rmtree(disk / "converted", ignore_errors=True)
        status, err = cli(capsys, "train", "--no-progress", "--features", features, "--manifest", manifest,
                          "--stats", stats, "--model-dir", disk / "model", "--set", "train.vae_epochs=1",
                          "--set", "train.adversarial_epochs=1", "--set", "train.tensorboard=false")
        failed = disk / "model" if free_kib == 0 else disk / "model" / "checkpoint.pt"
        assert_one_line(status, err, f"{failed}: no space left on the device; nothing was written")
        left = sorted(p.relative_to(disk).as_posix() for p in disk.rglob("*") if p.is_file())
        assert all(not Path(name).name.startswith(".") for name in left), left  # no temporary, no lock
        assert "model/checkpoint.pt" not in left


def test_the_training_log_keeps_no_half_row_when_the_disk_fills(tmp_path):
    from vawgan.errors import DiskFullError
    from vawgan.runlog import RunLogger, read_scalars

    with small_disk(tmp_path / "small", 8) as disk:
        logged = 0
        with RunLogger(disk, tensorboard=False) as log, pytest.raises(DiskFullError, match="metrics.csv: no space"):
            while True:
                log.log(logged, {"vae/nll": 1.25, "vae/kl": 0.5})
                logged += 1
        text = (disk / "metrics.csv").read_bytes()
        assert text.endswith(b"\r\n")
        steps, _ = read_scalars(disk / "metrics.csv")["vae/kl"]
        assert list(steps) == list(range(logged))


def files_below(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) by its relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_killed_batch_conversion_run_again_gives_the_outputs_of_one_clean_run(shared_corpus, tmp_path):
    from vawgan.corpus import Utterance, write_manifest

    manifest = tmp_path / "data.tsv"
    write_manifest([Utterance(spk, f"fb00{i}", shared_corpus / spk / f"fb00{i}.wav")
                    for spk in ("rms", "slt") for i in range(1, 7)], manifest)
    args = ["convert", manifest, "--model", "quick", "--target", "all", "--jobs", "2"]
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert vawgan(*args, "-o", reference).returncode == 0
    expected = files_below(reference)
    run = subprocess.Popen([sys.executable, "-m", "vawgan", *map(str, args), "-o", str(out)], env=ENV,
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/[!.]*.wav")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # the whole run: parent and workers
    run.wait()
    written = list(out.glob("*/[!.]*.wav"))
    assert 0 < len(written) < sum(name.endswith(".wav") for name in expected), "the kill should land mid-run"
    done = vawgan(*args, "-o", out)
    assert done.returncode == 0, done.stderr
    assert files_below(out) == expected  # byte-identical wavs, no temporary and no lock left
