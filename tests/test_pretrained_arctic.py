"""The packaged natural-speech models: the default converts human voices it never heard into each target.

Every recording used here is one the packaged models never trained on: the
eval sentences of the ARCTIC recipe's split (a0025–a0030 are held out for all
three speakers, a0544 onwards for bdl and slt), taken from the repository's
``data/arctic``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ARCTIC_RECIPE_CONF
from vawgan.cli import main as vawgan_main
from vawgan.config import load_config
from vawgan.convert import Converter, pretrained_model_dir
from vawgan.evaluate.metrics import score_pair
from vawgan.features.world import analyze_file
from vawgan.model_dir import ModelDir
from vawgan.pretrained import DEFAULT_PRETRAINED
from vawgan.weights import NumpyModel

# (source speaker, sentence) → targets with a natural recording of that sentence.
HELD_OUT = {("bdl", "arctic_a0544"): ("slt",), ("slt", "arctic_a0545"): ("bdl",),
            ("bdl", "arctic_a0026"): ("slt", "clb"), ("slt", "arctic_a0027"): ("bdl", "clb")}


def _scores(path: Path, reference: Path, features, speaker: str):
    out = analyze_file(path, features, speaker=speaker)
    ref = analyze_file(reference, features, speaker=speaker)
    return score_pair(ref.mcep, ref.f0, ref.speech, out.mcep, out.f0, out.speech)


def test_the_default_model_is_natural_speech():
    assert DEFAULT_PRETRAINED == "arctic"
    assert Converter().speakers == ["bdl", "clb", "slt"]


@pytest.mark.parametrize("name,conf", [("arctic", "parallel.yaml"), ("arctic-nonparallel", "nonparallel.yaml")])
def test_each_natural_model_is_its_recipe_config_with_a_card(name, conf):
    model = pretrained_model_dir(name)
    assert load_config(model / "config.yaml").to_dict() == load_config(ARCTIC_RECIPE_CONF / conf).to_dict()
    for which in ("vae", "vawgan"):
        assert isinstance(ModelDir(model).networks(which), NumpyModel)
    assert (model / "card.yaml").is_file()


@pytest.mark.parametrize("source,utt_id", sorted(HELD_OUT))
def test_a_held_out_natural_recording_converts_closer_to_each_target(embedded_arctic, tmp_path, source, utt_id):
    converter = Converter()
    features = converter.model.config.features
    recording = embedded_arctic / source / f"{utt_id}.flac"
    for target in HELD_OUT[source, utt_id]:
        out = converter.convert_file(recording, tmp_path / f"{target}.wav", target, source=source)
        x, fs = sf.read(out)
        assert fs == 16000 and abs(len(x) - sf.info(recording).frames) < 0.01 * fs
        reference = embedded_arctic / target / f"{utt_id}.flac"
        converted, unconverted = _scores(out, reference, features, target), _scores(recording, reference,
                                                                                   features, target)
        assert converted.mcd < unconverted.mcd - 1.0, (target, converted.mcd, unconverted.mcd)
        stats = converter.model.stats
        if abs(stats.lf0_mean[source] - stats.lf0_mean[target]) > np.log(1.2):  # male to female or back
            assert converted.f0_rmse_cents < unconverted.f0_rmse_cents - 50  # the F0 moved to the target's range


def test_an_unknown_natural_voice_converts_into_each_target(embedded_arctic, tmp_path, arctic_wav):
    """pysptk's recording (clb, a sentence the model trained on) stands for any voice: no --source given."""
    for target in ("bdl", "slt", "clb"):
        out = tmp_path / f"{target}.wav"
        assert vawgan_main(["convert", str(arctic_wav), "--target", target, "-o", str(out)]) == 0
        x, fs = sf.read(out)
        assert fs == 16000 and np.isfinite(x).all() and 0.01 < np.max(np.abs(x)) < 1.0


def test_info_says_what_the_default_model_was_trained_on(capsys):
    assert vawgan_main(["info"]) == 0
    text = capsys.readouterr().out
    assert "trained on: CMU ARCTIC" in text and "(parallel protocol)" in text
    assert "vawgan: MCD" in text and "gmm: MCD" in text
