"""The natural-speech recipe, ``recipes/arctic/run.sh``, stages 0–7 on a few natural sentences.

A tiny CMU ARCTIC corpus in the official layout (``cmu_us_<spk>_arctic/wav``)
is made from the repository's ``data/arctic`` (FLAC, as shipped): bdl and slt
read 8 train sentences and 3 eval sentences, clb 6 and 2. The recipe runs with
``conf/nonparallel.yaml``'s splits and protocol and a schedule of short epochs,
the way a user with their own corpus would (``--corpus``, a config of theirs):
the manifests must share no training sentence, stage 6 must convert into clb
only the sentences clb recorded, and stage 7 must score every system.
"""

from __future__ import annotations

import collections
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ARCTIC_RECIPE_CONF

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SENTENCES = {
    "bdl": [f"arctic_a{n:04d}" for n in (*range(1, 9), 25, 26, 544)],
    "slt": [f"arctic_a{n:04d}" for n in (*range(1, 9), 25, 26, 544)],
    "clb": [f"arctic_a{n:04d}" for n in (*range(1, 7), 25, 26)],
}
SYSTEMS = ("copy", "gmm", "vae", "vae_gv0.5", "vawgan", "vawgan_vc", "anasyn", "anasyn_vc")


def _run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GMM_COMPONENTS": "2",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VAWGAN_CORPUS", None)
    return subprocess.run(["bash", "run.sh", "--conf", "conf/mine.yaml", "--corpus", str(recipe.parent / "corpus"),
                           "--jobs", "2", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def recipe(embedded_arctic, tmp_path_factory) -> Path:
    """A copy of the recipe (``run.sh``, ``conf/mine.yaml``) beside its tiny corpus, after stages 0–7 ran."""
    if not (Path(sys.executable).parent / "vawgan").is_file():
        pytest.skip(f"the vawgan command is not installed beside {sys.executable} (pip install -e .)")
    work = tmp_path_factory.mktemp("recipe_arctic")
    for speaker, ids in SENTENCES.items():
        wav_dir = work / "corpus" / f"cmu_us_{speaker}_arctic" / "wav"
        wav_dir.mkdir(parents=True)
        for utt_id in ids:
            shutil.copy(embedded_arctic / speaker / f"{utt_id}.flac", wav_dir)
    recipe = work / "recipe"
    (recipe / "conf").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "arctic" / "run.sh", recipe / "run.sh")
    config = yaml.safe_load((ARCTIC_RECIPE_CONF / "nonparallel.yaml").read_text())
    # About 1,000 speech frames per speaker: many short epochs (30 steps each) instead of the recipe's few long ones.
    config["train"].update(vae_epochs=25, critic_epochs=2, adversarial_epochs=6, tensorboard=False)
    (recipe / "conf" / "mine.yaml").write_text(yaml.safe_dump(config))
    done = _run(recipe)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for stage in range(8):
        assert f"=== stage {stage}:" in done.stdout
    return recipe


def _manifest(recipe: Path, name: str) -> list[dict]:
    with open(recipe / "data" / "mine" / f"{name}.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_stage_0_writes_non_parallel_manifests_from_the_official_layout(recipe):
    train = _manifest(recipe, "train")
    speakers_of = collections.defaultdict(set)
    for row in train:
        speakers_of[row["utt_id"]].add(row["speaker"])
    assert {row["speaker"] for row in train} == {"bdl", "slt", "clb"}
    assert all(len(s) == 1 for s in speakers_of.values())  # no sentence shared in training
    assert len(_manifest(recipe, "train_parallel")) == 8 + 8 + 6
    evaluation = _manifest(recipe, "eval")
    assert collections.Counter(r["speaker"] for r in evaluation) == {"bdl": 3, "slt": 3, "clb": 2}
    assert all(r["path"].endswith(".flac") for r in evaluation)


def test_stage_6_converts_only_sentences_the_target_recorded(recipe):
    converted = recipe / "exp" / "mine" / "converted" / "vawgan"
    counts = {pair.name: len(list(pair.glob("*.wav"))) for pair in converted.iterdir() if pair.is_dir()}
    assert counts == {"bdl-slt": 3, "slt-bdl": 3, "bdl-clb": 2, "slt-clb": 2, "clb-bdl": 2, "clb-slt": 2}


def test_stage_7_scores_every_system_against_natural_targets(recipe):
    with open(recipe / "exp" / "mine" / "eval" / "results.csv", newline="") as f:
        rows = {row["system"]: row for row in csv.DictReader(f)}
    assert set(SYSTEMS) <= set(rows)
    mcd = {system: float(row["mcd"]) for system, row in rows.items()}
    for system in ("gmm", "vae", "vawgan"):
        assert mcd["anasyn"] < mcd[system] < mcd["copy"], mcd
    assert all(float(rows[s]["ms_distance"]) > 0 for s in ("vae", "vawgan", "gmm"))
    assert (recipe / "exp" / "gmm").is_dir()  # the GMM of the parallel pairs, shared by the confs
    assert list((recipe / "exp" / "mine" / "eval" / "plots").glob("scatter_*.png"))
