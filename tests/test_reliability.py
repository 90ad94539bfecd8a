"""What vawgan does with hostile or broken input: one line, a non-zero exit, nothing written, nothing run.

Model directories come from strangers, recordings are irreplaceable and
settings are typed by hand; each test here plays one such case through the
command line, on the real recordings of the shared corpus and the packaged
models.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vawgan.pretrained import PRETRAINED_ROOT

REPO = Path(__file__).resolve().parents[1]


def vawgan(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``vawgan`` command in a fresh interpreter (the way a user runs it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vawgan", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


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
    assert len(files) == 4 + 4 + 7
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
