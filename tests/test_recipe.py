"""The recipe script itself, stages 0–7, on a small corpus at 22.05 kHz made from the shared recordings.

``recipes/flite/run.sh`` is the README's first command; the other tests call
the library and the CLI verbs one by one, this one runs the shell script the
way a user with their own corpus would: ``VAWGAN_CORPUS`` pointing at a
VCC-style folder (``<SPK>/<utt>.wav``) recorded at 22.05 kHz — the SPEC's
other common rate, where a frame (5 ms) is not a whole number of samples —
and a config of their own. Twelve sentences per speaker (ten train, the two
eval sentences of the shared corpus' split), a schedule of a few epochs and a
two-component GMM keep it to about two minutes on a 2-core VM, most of it
the start-up of the `vawgan` calls and stage 7's alignments and analyses.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from vawgan.corpus import split_of

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RATE = 22050
# Shared-corpus speaker → the VCC-style name it gets in the test corpus.
SPEAKERS = {"awb": "SM1", "rms": "SM2", "slt": "SF1"}
TRAIN_SENTENCES = 10
EVAL_IDS = ("fb010", "fb012")  # in the eval split by the default fractions
CONFIG = {
    "features": {"sample_rate": RATE, "f0_method": "dio",
                 "f0_ranges": {"SM1": [85.0, 215.0], "SM2": [65.0, 170.0], "SF1": [120.0, 275.0]}},
    "train": {"vae_epochs": 4, "critic_epochs": 1, "adversarial_epochs": 2, "alpha_mode": "fixed",
              "alpha_value": 1.0, "kl_weight": 0.75, "tensorboard": False},
}
SYSTEMS = ("copy", "gmm", "gmm_vc", "vae", "vae_gv0.5", "vawgan", "vawgan_vc", "anasyn", "anasyn_vc")


def _run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VAWGAN_CORPUS": str(recipe.parent / "corpus"), "GMM_COMPONENTS": "2",
           # The `vawgan` the recipe calls is the one installed beside this Python.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "run.sh", "--conf", "conf/mine.yaml", "--jobs", "2", *args], cwd=recipe,
                          env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def recipe(shared_corpus, tmp_path_factory) -> Path:
    """A recipe folder (``run.sh``, ``conf/mine.yaml``) beside its corpus, after stages 0–7 ran."""
    import librosa

    if not (Path(sys.executable).parent / "vawgan").is_file():
        pytest.skip(f"the vawgan command is not installed beside {sys.executable} (pip install -e .)")
    work = tmp_path_factory.mktemp("recipe_22k")
    for speaker, name in SPEAKERS.items():
        (work / "corpus" / name).mkdir(parents=True)
        paths = sorted((shared_corpus / speaker).glob("*.wav"))
        chosen = [p for p in paths if split_of(p.stem) == "train"][:TRAIN_SENTENCES]
        chosen += [p for p in paths if p.stem in EVAL_IDS]
        for path in chosen:
            x, fs = sf.read(path)
            sf.write(work / "corpus" / name / path.name, librosa.resample(x, orig_sr=fs, target_sr=RATE), RATE,
                     subtype="PCM_16")
    recipe = work / "recipe"
    (recipe / "conf").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "flite" / "run.sh", recipe / "run.sh")
    (recipe / "conf" / "mine.yaml").write_text(yaml.safe_dump(CONFIG))
    done = _run(recipe)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in range(8):
        assert f"=== stage {stage}:" in done.stdout
    return recipe


def test_stages_0_to_2_prepare_features_at_the_corpus_rate(recipe):
    with open(recipe / "data" / "all.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert {r["speaker"] for r in rows} == set(SPEAKERS.values())
    assert {r["utt_id"] for r in rows if r["split"] == "eval"} == set(EVAL_IDS)
    features = np.load(recipe / "dump" / "features" / "SF1" / f"{EVAL_IDS[0]}.npz")
    assert int(features["fs"]) == RATE
    assert (recipe / "dump" / "stats.npz").is_file()


def test_stages_3_to_5_leave_a_self_contained_model_directory(recipe):
    model = recipe / "exp" / "model"
    for name in ("config.yaml", "stats.npz", "speakers.txt", "vae.pt", "vawgan.pt", "checkpoint.pt", "metrics.csv"):
        assert (model / name).is_file(), name
    assert yaml.safe_load((model / "config.yaml").read_text())["features"]["sample_rate"] == RATE


def test_stage_6_converts_every_ordered_pair_at_the_corpus_rate(recipe):
    converted = sorted((recipe / "exp" / "converted" / "vawgan").rglob("*.wav"))
    assert len(converted) == len(SPEAKERS) * (len(SPEAKERS) - 1) * len(EVAL_IDS)
    for path in converted:
        source = path.parent.name.split("-")[0]
        original = sf.info(recipe.parent / "corpus" / source / path.name)
        info = sf.info(path)
        assert info.samplerate == RATE
        assert abs(info.frames - original.frames) < 0.01 * RATE  # the same length, give or take a frame


def test_stage_7_scores_every_system_sensibly_and_draws_the_figures(recipe):
    with open(recipe / "exp" / "eval" / "results.csv", newline="") as f:
        mcd = {row["system"]: float(row["mcd"]) for row in csv.DictReader(f)}
    assert set(SYSTEMS) <= set(mcd)
    # The ceiling below every conversion, and every conversion well below leaving the voice unchanged.
    for system in ("gmm", "gmm_vc", "vae", "vawgan", "vawgan_vc"):
        assert mcd["anasyn"] < mcd[system] < mcd["copy"] - 1.0, mcd
    # Vocoder compensation: the ceiling and the GMM's conversions re-analyse closer to the targets.
    assert mcd["anasyn_vc"] < mcd["anasyn"] and mcd["gmm_vc"] < mcd["gmm"], mcd
    plots = recipe / "exp" / "eval" / "plots"
    for pattern in ("training_curves.png", "scatter_*.png", "gv_*.png", "spectrogram_*.png"):
        found = list(plots.glob(pattern))
        assert found and all(p.stat().st_size > 10_000 for p in found), pattern


def test_rerunning_finished_stages_redoes_nothing(recipe):
    features = sorted((recipe / "dump" / "features").rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in features]
    again = _run(recipe, "--stage", "1", "--stop-stage", "6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in features] == stamps
    assert "already done" in again.stdout + again.stderr
    assert "already up to date" in again.stdout
