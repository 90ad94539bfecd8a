"""End-to-end conversion on the shared Flite recordings with a tiny model trained here.

The model (two speakers, rms → slt, a dozen training sentences each, a few
epochs) is trained once per module in seconds. Conversion is judged like the
evaluation does: the converted wav is re-analysed and compared, after DTW,
with the natural target utterance of the same (held-out) sentence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vawgan.audio import load_audio
from vawgan.cli import main as vawgan_main
from vawgan.config import Config
from vawgan.convert import Converter
from vawgan.corpus import discover, write_manifest
from vawgan.errors import VawganError
from vawgan.evaluate.metrics import score_pair
from vawgan.features.extract import extract_corpus
from vawgan.features.store import load_features
from vawgan.features.world import analyze, analyze_file
from vawgan.model_dir import ModelDir
from vawgan.systems import SystemSettings
from vawgan.stats import compute_statistics
from vawgan.training import train_model
from vawgan.weights import NumpyModel, export_numpy_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEAKERS = ("rms", "slt")
TRAIN_SENTENCES = 12
EVAL_IDS = ("fb010", "fb012")  # in the corpus's eval split: never seen in training


def tiny_config() -> Config:
    """DIO features and a short schedule (about 1.5k steps), one CPU thread.

    The adversarial weight is fixed at 1: this module tests conversion, not
    the choice of α, and a tiny critic makes the scale-matched α erratic.
    """
    config = Config()
    config.features.f0_method = "dio"
    config.train.vae_epochs = 12
    config.train.critic_epochs = 1
    config.train.adversarial_epochs = 2
    config.train.alpha_mode = "fixed"
    config.train.alpha_value = 1.0
    config.train.device = "cpu"
    config.train.tensorboard = False
    config.train.num_threads = 1
    return config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, shared_corpus) -> Path:
    """A model directory trained on 12 training sentences of rms and slt (DIO features)."""
    work = tmp_path_factory.mktemp("tiny")
    config = tiny_config()
    utterances = discover(shared_corpus, speakers=list(SPEAKERS))
    train = [u for spk in SPEAKERS for u in [u for u in utterances if u.speaker == spk and u.split == "train"]
             [:TRAIN_SENTENCES]]
    write_manifest(train, work / "train.tsv")
    extract_corpus(train, work / "features", config.features, progress=False)
    feats = [(u.speaker, load_features(work / "features" / u.speaker / f"{u.utt_id}.npz")) for u in train]
    compute_statistics((spk, f.mcep, f.f0, f.speech) for spk, f in feats).save(work / "stats.npz")
    train_model(config, work / "features", work / "train.tsv", work / "stats.npz", work / "model",
                device="cpu", progress=False)
    return work / "model"


@pytest.fixture(scope="module")
def converter(tiny_model) -> Converter:
    return Converter(tiny_model, device="cpu")


def wav(corpus: Path, speaker: str, utt_id: str) -> Path:
    return corpus / speaker / f"{utt_id}.wav"


def scores_against(path: Path, reference: Path, config: Config, speaker: str):
    """DTW scores of the audio at ``path`` against the natural utterance ``reference``."""
    out = analyze_file(path, config.features, speaker=speaker)
    ref = analyze_file(reference, config.features, speaker=speaker)
    return score_pair(ref.mcep, ref.f0, ref.speech, out.mcep, out.f0, out.speech)


def voiced_median(path: Path, config: Config) -> float:
    f0 = analyze_file(path, config.features).f0
    return float(np.median(f0[f0 > 0]))


@pytest.mark.parametrize("utt_id", EVAL_IDS)
@pytest.mark.slow
def test_conversion_moves_towards_the_target_speaker(tiny_model, converter, shared_corpus, tmp_path, utt_id):
    config = converter.model.config
    source, target = wav(shared_corpus, "rms", utt_id), wav(shared_corpus, "slt", utt_id)
    out = converter.convert_file(source, tmp_path / "conv.wav", "slt", source="rms")
    converted = scores_against(out, target, config, "slt")
    unconverted = scores_against(source, target, config, "slt")
    # Spectrally closer to the target than the source itself is, by a clear margin.
    assert converted.mcd < unconverted.mcd - 0.5, (converted.mcd, unconverted.mcd)
    # F0 of the converted speech sits near slt's, far from rms's (about 170 vs 100 Hz).
    stats = converter.model.stats
    target_hz, source_hz = np.exp(stats.lf0_mean["slt"]), np.exp(stats.lf0_mean["rms"])
    median = voiced_median(out, config)
    assert abs(np.log(median / target_hz)) < np.log(1.12), (median, target_hz)
    assert abs(np.log(median / source_hz)) > np.log(1.4)


@pytest.mark.slow
def test_reconstruction_stays_closer_to_the_source_than_conversion(converter, shared_corpus, tmp_path):
    config = converter.model.config
    source = wav(shared_corpus, "rms", EVAL_IDS[0])
    same = converter.convert_file(source, tmp_path / "same.wav", "rms", source="rms")
    other = converter.convert_file(source, tmp_path / "other.wav", "slt", source="rms")
    assert scores_against(same, source, config, "rms").mcd < scores_against(other, source, config, "rms").mcd - 1.0
    assert voiced_median(same, config) == pytest.approx(voiced_median(source, config), rel=0.05)


@pytest.mark.slow
def test_unknown_source_uses_the_inputs_own_mean_and_f0(converter, shared_corpus, tmp_path):
    config = converter.model.config
    source, target = wav(shared_corpus, "rms", EVAL_IDS[1]), wav(shared_corpus, "slt", EVAL_IDS[1])
    out = converter.convert_file(source, tmp_path / "anon.wav", "slt")
    assert scores_against(out, target, config, "slt").mcd < scores_against(source, target, config, "slt").mcd
    median = voiced_median(out, config)
    assert abs(np.log(median / np.exp(converter.model.stats.lf0_mean["slt"]))) < np.log(1.15)


@pytest.mark.slow
def test_convert_features_is_deterministic_and_keeps_source_c0_and_aperiodicity(converter, shared_corpus):
    feats = converter.analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), "rms")
    a = converter.convert_features(feats, "rms", "slt")
    b = converter.convert_features(feats, "rms", "slt")
    np.testing.assert_array_equal(a.mcep, b.mcep)
    np.testing.assert_array_equal(a.mcep[:, 0], np.asarray(feats.mcep[:, 0], dtype=np.float64))
    np.testing.assert_array_equal(a.coded_ap, feats.coded_ap)
    assert np.array_equal(a.f0 > 0, feats.f0 > 0)  # voicing is the source's
    sampled = converter.convert_features(feats, "rms", "slt", sample=True)
    assert not np.allclose(sampled.mcep[:, 1:], a.mcep[:, 1:])


@pytest.mark.slow
def test_gv_postfilter_moves_the_variance_to_the_target_speakers(tiny_model, converter, shared_corpus):
    feats = converter.analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), "rms")
    speech = feats.speech
    plain = converter.convert_features(feats, "rms", "slt").mcep
    target_gv = converter.model.stats.gv("slt")
    variance = {}
    for alpha in (0.5, 1.0):
        out = Converter(tiny_model, gv_postfilter=alpha).convert_features(feats, "rms", "slt")
        np.testing.assert_array_equal(out.mcep[:, 0], plain[:, 0])  # c0 (energy) stays the source's
        np.testing.assert_allclose(out.mcep[speech, 1:].mean(axis=0), plain[speech, 1:].mean(axis=0), atol=1e-5)
        variance[alpha] = out.mcep[speech, 1:].var(axis=0)
    np.testing.assert_allclose(variance[1.0], target_gv, rtol=1e-4)  # fully: the target's GV (float32 features)
    halfway = np.sqrt(plain[speech, 1:].var(axis=0) * target_gv)  # half-way in the log domain
    np.testing.assert_allclose(variance[0.5], halfway, rtol=1e-4)
    assert np.mean(plain[speech, 1:].var(axis=0) / target_gv) < 0.9  # there was over-smoothing to undo
    with pytest.raises(VawganError, match="within 0..2"):
        Converter(tiny_model, gv_postfilter=-1)


@pytest.mark.slow
def test_gv_postfilter_needs_statistics_with_the_gv(tiny_model, tmp_path, capsys):
    from vawgan.stats import Statistics

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    stats = Statistics.load(model / "stats.npz")
    stats.speaker_gv.clear()  # statistics of an older vawgan
    stats.save(model / "stats.npz")
    Converter(model)  # fine without the postfilter
    with pytest.raises(VawganError, match="no global variance for 'rms'"):
        Converter(model, gv_postfilter=1.0)


@pytest.mark.slow
def test_vae_weights_convert_too(tiny_model, shared_corpus, tmp_path):
    vae = Converter(tiny_model, which="vae", device="cpu")
    out = vae.convert_file(wav(shared_corpus, "rms", EVAL_IDS[0]), tmp_path / "vae.wav", "slt", source="rms")
    assert sf.info(str(out)).samplerate == 16000


# --- the command line -----------------------------------------------------------------------------------------


def run_cli(*args) -> int:
    return vawgan_main(["convert", *map(str, args)])


@pytest.mark.slow
def test_cli_single_file(tiny_model, shared_corpus, tmp_path, capsys):
    out = tmp_path / "sub" / "out.wav"
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", tiny_model, "--target", "slt",
                   "--source", "rms", "--which", "vae", "--f0-method", "dio", "-o", out) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x, fs = sf.read(out)
    assert fs == 16000 and x.size > 16000 and np.max(np.abs(x)) < 1.0


@pytest.mark.slow
def test_cli_threads_give_the_one_thread_conversion_up_to_dither_and_pulse_phase(tiny_model, shared_corpus,
                                                                                tmp_path, capsys):
    """Two threads analyse in blocks (WORLD's dither differs) and synthesize in two pieces cut at an unvoiced
    frame (the pulse train and the noise restart there): the same samples up to the cut, and as close to the
    target speaker's recording of the sentence."""
    source = wav(shared_corpus, "rms", EVAL_IDS[0])
    outputs = {}
    for threads in (1, 2):
        outputs[threads] = tmp_path / f"threads{threads}.wav"
        assert run_cli(source, "--model", tiny_model, "--target", "slt", "--source", "rms", "--threads", threads,
                       "-o", outputs[threads]) == 0
    one, two = (sf.read(outputs[t])[0] for t in (1, 2))
    assert one.shape == two.shape
    quarter = len(one) // 4  # the cut lies within a sixth of the middle
    assert np.abs(one[:quarter] - two[:quarter]).max() < 1e-2 * np.abs(one).max()
    assert not np.allclose(one[quarter:], two[quarter:], atol=1e-2 * np.abs(one).max())  # really two pieces
    config, natural = tiny_config(), wav(shared_corpus, "slt", EVAL_IDS[0])
    mcd = {t: scores_against(outputs[t], natural, config, "slt").mcd for t in (1, 2)}
    assert abs(mcd[2] - mcd[1]) < 0.3, mcd
    assert run_cli(source, "--model", tiny_model, "--target", "slt", "--threads", 0, "-o", tmp_path / "x.wav") == 2
    assert "threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.slow
def test_cli_aperiodicity_step_changes_only_the_aperiodicity(tiny_model, shared_corpus, tmp_path, capsys):
    """--aperiodicity-step 4 (D4C on 1 frame in 4) converts as every frame does, but for the aperiodicity."""
    source = wav(shared_corpus, "rms", EVAL_IDS[0])
    exact = Converter(tiny_model, device="cpu", threads=1)
    fast = Converter(tiny_model, device="cpu", threads=1, aperiodicity_step=4)
    assert fast.feature_config.aperiodicity_step == 4 and exact.feature_config.aperiodicity_step == 1
    x = load_audio(source, exact.sample_rate)
    every_frame = analyze(x, exact.sample_rate, exact.feature_config, speaker="rms")
    one_in_four = analyze(x, fast.sample_rate, fast.feature_config, speaker="rms")
    np.testing.assert_array_equal(one_in_four.mcep, every_frame.mcep)
    assert 0.0 < np.abs(one_in_four.coded_ap - every_frame.coded_ap).mean() < 2.0  # dB
    out = tmp_path / "fast.wav"
    assert run_cli(source, "--model", tiny_model, "--target", "slt", "--source", "rms", "--aperiodicity-step", 4,
                   "-o", out) == 0
    assert sf.info(str(out)).frames > 16000
    assert run_cli(source, "--model", tiny_model, "--target", "slt", "--aperiodicity-step", 0,
                   "-o", tmp_path / "x.wav") == 2
    err = capsys.readouterr().err
    assert "--aperiodicity-step 0: must be at least 1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.slow
def test_cli_unknown_target_lists_speakers_and_writes_nothing(tiny_model, shared_corpus, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", tiny_model, "--target", "bdl",
                   "-o", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'bdl'" in err and "rms, slt" in err
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", tiny_model, "--target", "slt",
                   "--source", "bdl", "-o", out) == 2
    assert "'bdl'" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_unwritable_output_fails_before_loading_anything(shared_corpus, tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    # --model points nowhere: the output check must come first, before the model would be loaded.
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", tmp_path / "no-model", "--target", "slt",
                   "-o", tmp_path / "afile" / "out.wav") == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_model_directory_errors(tiny_model, shared_corpus, tmp_path, capsys):
    broken = tmp_path / "model"
    shutil.copytree(tiny_model, broken)
    src = wav(shared_corpus, "rms", EVAL_IDS[0])
    (broken / "vawgan.pt").write_bytes((broken / "vawgan.pt").read_bytes()[:1000])
    assert run_cli(src, "--model", broken, "--target", "slt", "-o", tmp_path / "a.wav") == 2
    assert "vawgan.pt" in capsys.readouterr().err
    (broken / "stats.npz").unlink()
    assert run_cli(src, "--model", broken, "--which", "vae", "--target", "slt", "-o", tmp_path / "b.wav") == 2
    assert "stats.npz" in capsys.readouterr().err
    assert run_cli(src, "--model", tmp_path / "nowhere", "--target", "slt", "-o", tmp_path / "c.wav") == 2
    assert "model directory not found" in capsys.readouterr().err
    assert list(tmp_path.glob("*.wav")) == []


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "speakers.txt").unlink(), "speakers.txt: speaker list not found"),
    (lambda d: (d / "speakers.txt").write_text("\n"), "speakers.txt: speaker list is empty"),
    (lambda d: (d / "speakers.txt").write_text("rms\nslt\nawb\n"), "trained for speakers ['rms', 'slt']"),
    (lambda d: (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("latent_dim: 64",
                                                                                      "latent_dim: 32")),
     "vawgan.pt"),
])
@pytest.mark.slow
def test_cli_inconsistent_model_directory_is_one_line(tiny_model, shared_corpus, tmp_path, capsys, damage, message):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model, ignore=shutil.ignore_patterns("vae.npz", "vawgan.npz"))  # PyTorch loads it
    damage(model)
    out = tmp_path / "out.wav"
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", model, "--target", "slt", "-o", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def snapshot(folder: Path) -> dict:
    """Every file and folder under ``folder`` with its modification time."""
    return {path.relative_to(folder): path.stat().st_mtime_ns for path in sorted([folder, *folder.rglob("*")])}


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444))


def test_training_writes_the_numpy_copies_with_their_hashes(tiny_model):
    from vawgan.checkpoint import read_hashes

    assert {"vae.pt", "vae.npz", "vawgan.pt", "vawgan.npz"} <= set(read_hashes(tiny_model))
    for which in ("vae", "vawgan"):
        assert isinstance(Converter(tiny_model, which=which).model, NumpyModel), which


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_converting_never_writes_into_the_model_directory(tiny_model, shared_corpus, tmp_path, read_only):
    """With its NumPy copies or without them (PyTorch then runs the networks), a model directory is only read."""
    for copies in (True, False):
        model = tmp_path / f"model-{'numpy' if copies else 'torch'}"
        numpy_copies = shutil.ignore_patterns("vae.npz", "vawgan.npz")
        shutil.copytree(tiny_model, model, ignore=None if copies else numpy_copies)
        set_writable(model, not read_only)
        before = snapshot(model)
        try:
            out = tmp_path / f"{model.name}.wav"
            assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--model", model, "--source", "rms",
                           "--target", "slt", "-o", out) == 0
            assert out.is_file()
            for which in ("vae", "vawgan"):
                assert isinstance(Converter(model, which=which).model, NumpyModel) == copies
            assert vawgan_main(["info", "--model", str(model)]) == 0
            assert snapshot(model) == before
        finally:
            set_writable(model, True)


def test_a_model_directory_is_read_once_and_passed_on(tiny_model, shared_corpus, tmp_path):
    from vawgan.model_info import describe_model

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    opened = ModelDir(model)
    assert opened.speakers == list(SPEAKERS) and opened.config.features.f0_method == "dio"
    assert opened.networks("vawgan") is opened.networks("vawgan")  # the weights are loaded once
    for name in ("config.yaml", "stats.npz", "speakers.txt"):
        (model / name).unlink()  # nothing below reads them again
    converter = Converter(opened)
    assert converter.model is opened.networks("vawgan")
    feats = converter.analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), "rms")
    assert converter.convert_features(feats, "rms", "slt").mcep.shape == feats.mcep.shape
    assert "speakers (2):" in describe_model(opened)


def test_the_numpy_and_pytorch_backends_convert_frames_alike(tiny_model):
    from vawgan.weights import LoadedModel

    model = ModelDir(tiny_model)
    on_numpy, on_torch = model.networks("vawgan"), model.networks("vawgan", numpy=False)
    assert isinstance(on_numpy, NumpyModel) and isinstance(on_torch, LoadedModel)
    assert on_numpy.step == on_torch.step > 0
    frames = np.random.default_rng(0).standard_normal((300, 39))
    target = on_numpy.speaker_index("slt")
    np.testing.assert_allclose(on_numpy.convert_frames(frames, target), on_torch.convert_frames(frames, target),
                               atol=1e-4)


@pytest.mark.slow
def test_info_summarizes_a_model_directory(tiny_model, capsys):
    from vawgan.model_dir import load_model
    from vawgan.stats import Statistics

    assert vawgan_main(["info", "--model", str(tiny_model)]) == 0
    out = capsys.readouterr().out
    stats = Statistics.load(tiny_model / "stats.npz")
    assert "speakers (2):" in out
    for speaker in SPEAKERS:
        assert (f"  {speaker}: {stats.frames[speaker]:,} speech frames, "
                f"F0 mean {np.exp(stats.lf0_mean[speaker]):.1f} Hz") in out
    assert "F0 by dio" in out and "D4C on every frame" in out
    assert "encoder: 39 → 256 → 128 → μ, log σ² of 64" in out
    assert "schedule: 12 VAE + 1 critic + 2 adversarial epochs" in out
    for which in ("vae", "vawgan"):
        assert f"{which}.pt: step {load_model(tiny_model, which).step:,}" in out
    assert "checkpoint.pt: phases finished: vae, critic, adversarial" in out


@pytest.mark.slow
def test_info_reports_unfinished_training_and_damaged_weights(tiny_model, tmp_path, capsys):
    from vawgan.checkpoint import load_checkpoint, save_checkpoint

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "vawgan.pt").unlink()
    state = load_checkpoint(model / "checkpoint.pt")
    state.update(completed=["vae", "critic"], phase="adversarial", epoch=0, step=5)
    save_checkpoint(model / "checkpoint.pt", state)
    assert vawgan_main(["info", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "vawgan.pt: not written yet (the adversarial phase has not finished)" in out
    assert "adversarial phase interrupted in epoch 1 at step 5" in out

    (model / "vae.pt").write_bytes((model / "vae.pt").read_bytes()[:1000])
    assert vawgan_main(["info", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vae.pt" in err, err
    assert vawgan_main(["info", "--model", str(tmp_path)]) == 2
    assert "not a vawgan model directory" in capsys.readouterr().err


def test_info_on_the_packaged_model(capsys):
    assert vawgan_main(["info", "--model", "quick"]) == 0
    out = capsys.readouterr().out
    assert "speakers (3):" in out and all(f"  {s}: " in out for s in ("awb", "rms", "slt"))
    assert "vawgan.pt: step" in out


@pytest.mark.slow
def test_cli_device_errors(tiny_model, shared_corpus, tmp_path, capsys):
    import torch

    src = wav(shared_corpus, "rms", EVAL_IDS[0])
    assert run_cli(src, "--model", tiny_model, "--target", "slt", "--device", "tpu", "-o", tmp_path / "a.wav") == 2
    assert "--device 'tpu' is not one of auto, cpu, cuda, cuda:N" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert run_cli(src, "--model", tiny_model, "--target", "slt", "--device", "cuda", "-o", tmp_path / "b.wav") == 2
        assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert list(tmp_path.glob("*.wav")) == []


def make_bad_inputs(folder: Path, good: Path) -> dict[str, Path]:
    """Files a user may pass by mistake, each of which must give one line and no output."""
    folder.mkdir()
    x, fs = sf.read(good)
    files = {"empty": folder / "empty.wav", "text": folder / "text.wav", "truncated": folder / "truncated.wav",
             "silent": folder / "silent.wav", "short": folder / "short.wav"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not audio\n")
    files["truncated"].write_bytes(good.read_bytes()[:30])
    sf.write(files["silent"], np.zeros(fs), fs)
    sf.write(files["short"], x[:200], fs)
    return files


@pytest.mark.slow
def test_cli_bad_inputs_give_one_line_and_no_output(tiny_model, shared_corpus, tmp_path, capsys):
    bad = make_bad_inputs(tmp_path / "bad", wav(shared_corpus, "rms", EVAL_IDS[0]))
    out_dir = tmp_path / "out"
    for kind, path in bad.items():
        assert run_cli(path, "--model", tiny_model, "--target", "slt", "-o", out_dir / f"{kind}.wav") == 2, kind
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err, (kind, err)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.mark.slow
def test_cli_resamples_and_mixes_down_other_formats_and_says_so(tiny_model, shared_corpus, tmp_path, caplog):
    import librosa

    x, fs = sf.read(wav(shared_corpus, "rms", EVAL_IDS[0]))
    odd = tmp_path / "stereo22k.wav"
    sf.write(odd, np.stack([librosa.resample(x, orig_sr=fs, target_sr=22050)] * 2, axis=1), 22050)
    out = tmp_path / "out.wav"
    assert run_cli(odd, "--model", tiny_model, "--target", "slt", "--source", "rms", "-o", out) == 0
    # The loader's warnings (the `vawgan` logger; printed on stderr by the command line).
    assert "resampled" in caplog.text and "22050" in caplog.text and "mono" in caplog.text
    assert sf.info(str(out)).samplerate == 16000
    clipped = tmp_path / "clipped.wav"
    sf.write(clipped, np.clip(4.0 * x, -1.0, 1.0), fs)  # usable but distorted: converted, with a warning
    assert run_cli(clipped, "--model", tiny_model, "--target", "slt", "--source", "rms", "-o", out) == 0
    assert "clipped" in caplog.text


@pytest.mark.slow
def test_cli_folder_batch_skips_bad_files_and_reruns_cheaply(tiny_model, shared_corpus, tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    shutil.copy(wav(shared_corpus, "rms", EVAL_IDS[0]), inputs / "a.wav")
    shutil.copy(wav(shared_corpus, "rms", EVAL_IDS[1]), inputs / "nested" / "b.wav")
    (inputs / "broken.wav").write_text("not audio")
    out = tmp_path / "out"
    assert run_cli(inputs, "--model", tiny_model, "--target", "slt", "--source", "rms", "-o", out) == 1
    captured = capsys.readouterr()
    assert "wrote 2 file(s)" in captured.out and "1 not written" in captured.out
    assert "broken.wav" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == ["a.wav", "nested/b.wav"]
    (inputs / "broken.wav").unlink()
    assert run_cli(inputs, "--model", tiny_model, "--target", "slt", "--source", "rms", "-o", out) == 0
    assert "2 already up to date" in capsys.readouterr().out


def test_a_batch_converts_with_one_library_call(tiny_model, shared_corpus, tmp_path):
    from vawgan.batch import convert_batch

    inputs = [wav(shared_corpus, "rms", utt_id) for utt_id in EVAL_IDS]
    out = tmp_path / "out"
    result = convert_batch(inputs, out, "slt", model=tiny_model, source="rms")
    assert (result.written, result.kept, result.failed) == (len(EVAL_IDS), 0, 0)
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(f"{utt_id}.wav" for utt_id in EVAL_IDS)
    again = convert_batch(inputs, out, "slt", model=tiny_model, source="rms")
    assert (again.written, again.kept) == (0, len(EVAL_IDS))
    assert again.summary() == f"vawgan: wrote 0 file(s) into {out}, {len(EVAL_IDS)} already up to date"
    assert SystemSettings.load(out) == SystemSettings("vawgan", 0.0, False, str(tiny_model.resolve()))
    # Other settings into the same folder: every output is made again, and the record follows.
    postfiltered = convert_batch(inputs, out, "slt", model=tiny_model, source="rms", gv_postfilter=0.5)
    assert (postfiltered.written, postfiltered.kept) == (len(EVAL_IDS), 0)
    assert SystemSettings.load(out).gv_postfilter == 0.5
    with pytest.raises(VawganError, match="--which copy writes reference outputs"):
        convert_batch(inputs, out, "slt", model=tiny_model, which="copy")


@pytest.mark.slow
def test_cli_jobs_convert_in_worker_processes_as_one_thread_does(tiny_model, shared_corpus, tmp_path, capsys):
    """--jobs 2: the same files as one process analysing with one thread, bad inputs skipped the same way."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for utt_id in EVAL_IDS:
        shutil.copy(wav(shared_corpus, "rms", utt_id), inputs / f"{utt_id}.wav")
    (inputs / "broken.wav").write_text("not audio")
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    common = ("--model", tiny_model, "--target", "slt", "--source", "rms")
    assert run_cli(inputs, *common, "--threads", 1, "-o", serial) == 1
    capsys.readouterr()
    assert run_cli(inputs, *common, "--jobs", 2, "-o", parallel) == 1
    captured = capsys.readouterr()
    assert f"wrote {len(EVAL_IDS)} file(s)" in captured.out and "1 not written" in captured.out
    assert "broken.wav" in captured.err
    names = sorted(p.name for p in serial.glob("*.wav"))
    assert names == sorted(p.name for p in parallel.glob("*.wav")) and len(names) == len(EVAL_IDS)
    for name in names:  # each worker analyses with one thread, exactly as --threads 1 does
        np.testing.assert_array_equal(sf.read(serial / name)[0], sf.read(parallel / name)[0])
    assert run_cli(inputs, *common, "--jobs", 0, "-o", parallel) == 2
    assert "--jobs 0: must be at least 1" in capsys.readouterr().err
    assert run_cli(inputs, *common, "--jobs", 2, "--device", "cuda", "-o", tmp_path / "gpu") == 2
    assert "--device cpu" in capsys.readouterr().err
    assert not (tmp_path / "gpu").exists()


@pytest.mark.slow
def test_cli_manifest_converts_every_ordered_pair(tiny_model, shared_corpus, tmp_path, capsys):
    utterances = [u for u in discover(shared_corpus, speakers=list(SPEAKERS)) if u.utt_id == EVAL_IDS[0]]
    write_manifest(utterances, tmp_path / "eval.tsv")
    out = tmp_path / "converted"
    assert run_cli(tmp_path / "eval.tsv", "--model", tiny_model, "--target", "all", "-o", out) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == \
        [f"rms-slt/{EVAL_IDS[0]}.wav", f"slt-rms/{EVAL_IDS[0]}.wav"]
    assert run_cli(tmp_path / "eval.tsv", "--model", tiny_model, "--target", "all", "--source", "rms",
                   "-o", out) == 2
    assert "drop --source" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_reference_outputs_for_the_evaluation(tiny_model, shared_corpus, tmp_path, capsys):
    """--which copy writes the source recording unchanged, --which anasyn the target's own recording resynthesized."""
    utterances = [u for u in discover(shared_corpus, speakers=list(SPEAKERS)) if u.utt_id == EVAL_IDS[0]]
    write_manifest(utterances, tmp_path / "eval.tsv")
    for which in ("copy", "anasyn"):
        assert run_cli(tmp_path / "eval.tsv", "--model", tiny_model, "--which", which, "--target", "all",
                       "-o", tmp_path / which) == 0
    copied = tmp_path / "copy" / "rms-slt" / f"{EVAL_IDS[0]}.wav"
    assert copied.read_bytes() == wav(shared_corpus, "rms", EVAL_IDS[0]).read_bytes()
    # anasyn: the target's own recording through WORLD, close to it (the vocoder's ceiling, ~3.8 dB for slt)
    config = tiny_config()
    natural = wav(shared_corpus, "slt", EVAL_IDS[0])
    resynthesized = scores_against(tmp_path / "anasyn" / "rms-slt" / f"{EVAL_IDS[0]}.wav", natural, config, "slt")
    assert resynthesized.mcd < 5.0 < scores_against(copied, natural, config, "slt").mcd
    capsys.readouterr()
    assert run_cli(wav(shared_corpus, "rms", EVAL_IDS[0]), "--which", "copy", "--target", "slt",
                   "-o", tmp_path / "x.wav") == 2
    assert "needs a manifest" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()
    assert run_cli(tmp_path / "eval.tsv", "--which", "anasyn", "--gv-postfilter", 1, "--target", "all",
                   "-o", tmp_path / "gv") == 2
    assert "--gv-postfilter applies to conversions" in capsys.readouterr().err and not (tmp_path / "gv").exists()
    # The ceiling with vocoder compensation re-analyses closer to the natural recording than without.
    assert run_cli(tmp_path / "eval.tsv", "--model", tiny_model, "--which", "anasyn", "--target", "slt",
                   "--vocoder-compensation", "-o", tmp_path / "anasyn_vc") == 0
    compensated = scores_against(tmp_path / "anasyn_vc" / "rms-slt" / f"{EVAL_IDS[0]}.wav", natural, config, "slt")
    assert compensated.mcd < resynthesized.mcd - 0.2, (compensated.mcd, resynthesized.mcd)
    capsys.readouterr()
    assert run_cli(tmp_path / "eval.tsv", "--which", "copy", "--vocoder-compensation", "--target", "all",
                   "-o", tmp_path / "vc") == 2
    assert "not to --which copy" in capsys.readouterr().err and not (tmp_path / "vc").exists()


def test_cli_batch_reports_outputs_scaled_down_to_avoid_clipping_in_one_line(shared_corpus, tmp_path, capsys,
                                                                             caplog):
    """Recordings far above full scale (float WAVs) resynthesize far above it too: each output is scaled
    down, and the batch says so once instead of once per file."""
    from vawgan.corpus import Utterance

    utterances = []
    for speaker in SPEAKERS:
        x, fs = sf.read(wav(shared_corpus, speaker, EVAL_IDS[0]))
        path = tmp_path / "loud" / speaker / f"{EVAL_IDS[0]}.wav"
        path.parent.mkdir(parents=True)
        sf.write(path, 3.0 * x / np.abs(x).max(), fs, subtype="FLOAT")
        utterances.append(Utterance(speaker, EVAL_IDS[0], path, "eval"))
    write_manifest(utterances, tmp_path / "loud.tsv")
    with caplog.at_level("WARNING", logger="vawgan"):
        assert run_cli(tmp_path / "loud.tsv", "--which", "anasyn", "--target", "all", "-o", tmp_path / "out") == 0
    out = capsys.readouterr()
    assert "would clip" not in out.err and not [r for r in caplog.records if "scaled down" in r.getMessage()]
    # one summary, on the line that says what was written
    lines = [line for line in out.out.splitlines() if "scaled down" in line]
    assert len(lines) == 1 and "wrote 2 file(s)" in lines[0] and \
        "(2 of 2 outputs were scaled down to avoid clipping, by at most " in lines[0], lines
    for path in (tmp_path / "out").rglob("*.wav"):
        assert np.abs(sf.read(path)[0]).max() == pytest.approx(0.99, abs=1e-3)


@pytest.mark.slow
def test_cli_list_file_and_its_errors(tiny_model, shared_corpus, tmp_path, capsys):
    shutil.copy(wav(shared_corpus, "rms", EVAL_IDS[0]), tmp_path / "a.wav")
    (tmp_path / "lists").mkdir()
    listed = tmp_path / "lists" / "inputs.txt"
    listed.write_text(f"# inputs\n\n../a.wav\n{wav(shared_corpus, 'rms', EVAL_IDS[1])}\n")
    out = tmp_path / "out"
    assert run_cli(listed, "--model", tiny_model, "--target", "slt", "--source", "rms", "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", f"{EVAL_IDS[1]}.wav", "system.yaml"]
    capsys.readouterr()
    for content, message in (("# nothing\n", "names no audio files"),
                             (f"../a.wav\n{tmp_path / 'a.wav'}\n", "would both be written to")):
        listed.write_text(content)
        assert run_cli(listed, "--model", tiny_model, "--target", "slt", "-o", tmp_path / "out2") == 2
        assert message in capsys.readouterr().err
    assert run_cli(tmp_path / "a.wav", tmp_path / "a.wav", "--model", tiny_model, "--target", "slt",
                   "--split", "eval", "-o", tmp_path / "out2") == 2
    assert "--split only applies to a manifest" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


# --- the pretrained model shipped with the package ---------------------------------------------------------------


def test_pretrained_model_loads_and_converts(shared_corpus, tmp_path):
    converter = Converter("quick", device="cpu")
    assert set(converter.speakers) == {"awb", "rms", "slt"}
    out = converter.convert_file(wav(shared_corpus, "rms", EVAL_IDS[0]), tmp_path / "p.wav", "slt", source="rms")
    config = converter.model.config
    target = wav(shared_corpus, "slt", EVAL_IDS[0])
    assert scores_against(out, target, config, "slt").mcd < \
        scores_against(wav(shared_corpus, "rms", EVAL_IDS[0]), target, config, "slt").mcd - 1.0
    assert abs(np.log(voiced_median(out, config) / np.exp(converter.model.stats.lf0_mean["slt"]))) < np.log(1.12)


@pytest.mark.parametrize("name", ["quick", "parallel"])
def test_each_pretrained_model_is_its_recipe_config(name):
    # Each packaged model's README says it is recipe stages 3-5 with conf/<name>.yaml: a change of the
    # recipe's settings (e.g. its kl_weight) without retraining the packaged model must fail here.
    from vawgan.config import load_config
    from vawgan.convert import pretrained_model_dir

    recipe = load_config(Path(__file__).resolve().parents[1] / "recipes" / "flite" / "conf" / f"{name}.yaml")
    assert load_config(pretrained_model_dir(name) / "config.yaml").to_dict() == recipe.to_dict()
    # Its NumPy weights are current, so converting with it never needs torch.
    for which in ("vae", "vawgan"):
        assert isinstance(ModelDir(pretrained_model_dir(name)).networks(which), NumpyModel)


def test_the_parallel_pretrained_model_converts_closer_to_the_target(shared_corpus):
    """What the parallel sentences buy, on a held-out sentence: a lower MCD to the target than the default model."""
    mcd = {}
    for name in ("quick", "parallel"):
        converter = Converter(name, device="cpu")
        assert set(converter.speakers) == {"awb", "rms", "slt"}
        feats = converter.analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), source="rms")
        target = converter.analyze_file(wav(shared_corpus, "slt", EVAL_IDS[0]), source="slt")
        converted = converter.convert_features(feats, "rms", "slt")
        mcd[name] = score_pair(target.mcep, target.f0, target.speech, converted.mcep, converted.f0, feats.speech).mcd
    assert mcd["parallel"] < mcd["quick"] - 1.5  # feature level, this sentence: 3.95 against 7.61 dB


def test_cli_converts_with_a_packaged_model_by_name(shared_corpus, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert run_cli(wav(shared_corpus, "awb", EVAL_IDS[1]), "--model", "parallel", "--target", "slt",
                   "--source", "awb", "-o", out) == 0
    assert sf.info(str(out)).samplerate == 16000
    assert run_cli(wav(shared_corpus, "awb", EVAL_IDS[1]), "--model", "paralel", "--target", "slt",
                   "-o", tmp_path / "typo.wav") == 2
    assert "paralel: model directory not found (nor a packaged model: arctic, arctic-nonparallel, quick, parallel)" in capsys.readouterr().err
    assert not (tmp_path / "typo.wav").exists()


def test_an_unknown_source_converts_nearly_as_well_as_a_known_one(shared_corpus, monkeypatch):
    """The input's own mean stands in for its speaker's: far closer to the known-speaker conversion than global
    statistics (feature level, eval split: 3.77 / 4.40 / 3.50 dB for own mean / global / known)."""
    converter = Converter("parallel")

    def global_statistics(mcep, speech, stats):  # how an unknown source was normalized before
        return stats.normalize(mcep, None)

    mcd = {"own mean": [], "global": [], "known": []}
    for utt in EVAL_IDS:
        feats = converter.analyze_file(wav(shared_corpus, "slt", utt), source="slt")
        target = converter.analyze_file(wav(shared_corpus, "rms", utt), source="rms")
        converted = {"own mean": converter.convert_features(feats, None, "rms"),
                     "known": converter.convert_features(feats, "slt", "rms")}
        with monkeypatch.context() as patch:
            patch.setattr("vawgan.convert.normalize_unknown_source", global_statistics)
            converted["global"] = converter.convert_features(feats, None, "rms")
        for name, out in converted.items():
            mcd[name].append(score_pair(target.mcep, target.f0, target.speech, out.mcep, feats.f0, feats.speech).mcd)
    mcd = {name: np.mean(values) for name, values in mcd.items()}
    assert mcd["known"] < mcd["own mean"] < mcd["global"] - 0.15, mcd  # 3.56 < 3.64 < 3.97 dB


@pytest.mark.parametrize("name", ["quick", "parallel"])
def test_a_real_recording_of_an_unseen_speaker_goes_to_each_target_voice(name, arctic_wav):
    """pysptk's CMU ARCTIC recording (speaker clb, in no training set), source unknown: for every target the
    converted speech's mean mel-cepstrum is that target's of the three, and its F0 sits at the target's."""
    converter = Converter(name)
    stats = converter.model.stats
    feats = converter.analyze_file(arctic_wav)
    for target in converter.speakers:
        converted = converter.convert_features(feats, None, target)
        mean = converted.mcep[feats.speech, 1:].mean(axis=0)
        distance = {speaker: np.linalg.norm(mean - stats.speaker_mcep_mean[speaker]) for speaker in stats.speakers}
        assert min(distance, key=distance.get) == target, distance
        median_f0 = np.median(converted.f0[converted.f0 > 0])
        assert abs(np.log(median_f0) - stats.lf0_mean[target]) < np.log(1.1)


def test_model_names_and_directories(tmp_path, monkeypatch):
    from vawgan.convert import pretrained_model_dir, resolve_model_dir

    assert resolve_model_dir(None) == pretrained_model_dir("arctic")
    assert resolve_model_dir("parallel") == pretrained_model_dir("parallel") != pretrained_model_dir("quick")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parallel").mkdir()  # a folder of that name does not stand in for the packaged model ...
    assert resolve_model_dir("parallel") == pretrained_model_dir("parallel")
    assert resolve_model_dir("./parallel") == Path("parallel")  # ... unless given as a path
    (tmp_path / "mine").mkdir()
    assert resolve_model_dir("mine") == Path("mine")  # a folder that is no packaged name needs no ./
    with pytest.raises(VawganError, match="model directory not found .*arctic, arctic-nonparallel, quick, parallel"):
        resolve_model_dir("paralel")
    with pytest.raises(VawganError, match="no packaged model named 'big'; packaged models: arctic, arctic-nonparallel, quick, parallel"):
        pretrained_model_dir("big")
    monkeypatch.setattr("vawgan.convert.PRETRAINED_ROOT", tmp_path / "damaged-install")
    with pytest.raises(VawganError, match="the packaged pretrained model 'arctic' is missing; reinstall vawgan"):
        Converter()


def test_the_gan_of_the_pretrained_model_adds_variance(shared_corpus):
    from vawgan.evaluate.metrics import global_variance

    # What the adversarial phase buys: converted frames with more variance than the VAE's, on held-out speech.
    vae, vawgan = Converter("quick", which="vae", device="cpu"), Converter("quick", which="vawgan", device="cpu")
    feats = vae.analyze_file(wav(shared_corpus, "awb", EVAL_IDS[0]), source="awb")
    gv = {name: global_variance(c.convert_features(feats, "awb", "slt").mcep[feats.speech, 1:])
          for name, c in (("vae", vae), ("vawgan", vawgan))}
    assert np.mean(gv["vawgan"] / gv["vae"]) > 1.5  # per-dimension GV ratio; 4.7 for the shipped weights


def test_installed_command_uses_the_pretrained_model_without_importing_torch(shared_corpus, tmp_path):
    """`vawgan convert in.wav --target bdl -o out.wav` as after `pip install`, in a fresh interpreter.

    The packaged model carries current NumPy weights, so the command must not
    pay for importing PyTorch (most of its start-up time otherwise), nor
    SciPy (importing scipy.fft alone took 0.14 s here).
    """
    out = tmp_path / "out.wav"
    code = ("import sys; from vawgan.cli import main; "
            f"status = main(['convert', {str(wav(shared_corpus, 'slt', EVAL_IDS[1]))!r}, '--target', 'bdl', "
            f"'-o', {str(out)!r}]); print('torch imported:', 'torch' in sys.modules); "
            "print('scipy imported:', 'scipy' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout
    assert "scipy imported: False" in done.stdout
    assert sf.info(str(out)).samplerate == 16000


@pytest.mark.slow
def test_numpy_weights_match_torch_and_are_ignored_when_stale(tiny_model, shared_corpus, tmp_path):
    from vawgan.checkpoint import load_checkpoint, save_checkpoint

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model, ignore=shutil.ignore_patterns("vae.npz", "vawgan.npz"))
    reference = Converter(model, device="auto")  # PyTorch
    assert not isinstance(reference.model, NumpyModel)
    first = Converter(model, device="cpu")  # no copy: PyTorch, and nothing written
    assert not isinstance(first.model, NumpyModel) and not (model / "vawgan.npz").exists()
    export_numpy_weights(model, "vawgan")
    fast = Converter(model, device="cpu")
    assert isinstance(fast.model, NumpyModel)
    feats = fast.analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), "rms")
    for source in ("rms", None):
        np.testing.assert_allclose(fast.convert_features(feats, source, "slt").mcep,
                                   reference.convert_features(feats, source, "slt").mcep, atol=1e-4)
    # Retrained weights (here: the VAE's in place of the VAW-GAN's) make the NumPy copy stale.
    save_checkpoint(model / "vawgan.pt", load_checkpoint(model / "vae.pt"))
    stale = Converter(model, device="cpu")
    assert not isinstance(stale.model, NumpyModel)
    np.testing.assert_allclose(stale.convert_features(feats, "rms", "slt").mcep,
                               Converter(model, which="vae").convert_features(feats, "rms", "slt").mcep)


@pytest.mark.slow
def test_damaged_numpy_weights_fall_back_to_pytorch(tiny_model, shared_corpus, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    feats = Converter(model).analyze_file(wav(shared_corpus, "rms", EVAL_IDS[0]), "rms")
    expected = Converter(model, device="auto").convert_features(feats, "rms", "slt").mcep
    (model / "vawgan.npz").write_bytes(b"PK\x03\x04 cut short")  # a zip header, then nothing
    converter = Converter(model, device="cpu")
    assert not isinstance(converter.model, NumpyModel)
    np.testing.assert_allclose(converter.convert_features(feats, "rms", "slt").mcep, expected)


@pytest.mark.slow
def test_convert_audio_is_analysis_conversion_and_synthesis(converter, shared_corpus):
    import dataclasses

    from vawgan.audio import load_audio
    from vawgan.features.synthesis import synthesize
    from vawgan.features.world import analyze

    x = load_audio(wav(shared_corpus, "rms", EVAL_IDS[0]), converter.sample_rate)
    y = converter.convert_audio(x, "slt", source="rms")
    feats = analyze(x, converter.sample_rate, converter.feature_config, speaker="rms", threads=converter.threads)
    converted = converter.convert_features(feats, "rms", "slt")
    np.testing.assert_array_equal(y, synthesize(converted, threads=converter.threads))
    assert abs(len(y) - len(x)) < converter.sample_rate * 0.01 and np.isfinite(y).all()
    with pytest.raises(VawganError, match="shorter than one analysis window"):
        converter.convert_audio(x[:500], "slt", name="clip.wav")
    with pytest.raises(VawganError, match="model expects c0..c39"):
        converter.convert_features(dataclasses.replace(feats, mcep=feats.mcep[:, :25]), "rms", "slt")
    with pytest.raises(VawganError, match="features are at 22050 Hz but the model was trained at 16000 Hz"):
        converter.convert_features(dataclasses.replace(feats, fs=22050), "rms", "slt")


def test_packaged_numpy_weights_are_current():
    """The shipped `.npz` copies were exported from the shipped `.pt` files (else start-up imports torch)."""
    for which in ("vae", "vawgan"):
        assert isinstance(Converter(which=which).model, NumpyModel), which
