"""Training: real-data runs through `vawgan train`, the decoder-only adversarial
gradient, resume equality and the NaN guard."""

import numpy as np
import pytest
import torch

from vawgan.cli import main
from vawgan.config import Config
from vawgan.corpus import write_manifest
from vawgan.data import FrameSet, load_frames, load_pairs
from vawgan.errors import VawganError
from vawgan.model_dir import load_model
from vawgan.runlog import read_scalars
from vawgan.stats import Statistics
from vawgan.training import Trainer, TrainingDiverged

TAGS = ("vae/nll", "vae/kl", "critic/gradient_penalty", "critic/wasserstein", "critic/d_real", "critic/d_fake",
        "generator/adversarial", "generator/alpha")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_config(**train) -> Config:
    config = Config()
    config.train.batch_size = 64
    config.train.vae_epochs, config.train.critic_epochs, config.train.adversarial_epochs = 2, 1, 2
    config.train.tensorboard = False
    config.train.num_threads = 1
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def _real_frames(root) -> FrameSet:
    return load_frames(root / "features", root / "train.tsv", Statistics.load(root / "stats.npz"))


def _cli(root, model_dir, phase, *extra):
    return main(["train", "--phase", phase, "--features", str(root / "features"), "--manifest",
                 str(root / "train.tsv"), "--stats", str(root / "stats.npz"), "--model-dir", str(model_dir),
                 "--device", "cpu", "--no-progress", "--set", "train.batch_size=32", "--set", "train.num_threads=1",
                 "--set", "train.tensorboard=false", *extra])


@pytest.mark.slow
def test_cli_trains_phase_by_phase_on_real_features(real_features, tmp_path, capsys):
    model_dir = tmp_path / "model"
    schedule = ["--set", "train.vae_epochs=20", "--set", "train.critic_epochs=1", "--set",
                "train.adversarial_epochs=2"]
    assert _cli(real_features, model_dir, "vae", "--set", "train.batch_size=100000") == 2
    assert "fewer than train.batch_size=100000" in capsys.readouterr().err
    assert not model_dir.exists()  # settings are checked before anything is written
    assert _cli(real_features, model_dir, "adversarial", *schedule) == 2
    assert "needs the vae phase first" in capsys.readouterr().err

    assert _cli(real_features, model_dir, "vae", *schedule) == 0
    curves = read_scalars(model_dir / "metrics.csv")
    steps, vae_loss = curves["vae/loss"]
    assert steps == list(range(1, 21))
    # The VAE learns the real mel-cepstra: it leaves the collapsed start (output = the mean, KL ≈ 0).
    print("VAE loss per epoch:", [round(v, 2) for v in vae_loss])
    assert vae_loss[-1] < vae_loss[0] - 1.0, vae_loss
    assert curves["vae/nll"][1][-1] < curves["vae/nll"][1][0] - 1.5
    vae = load_model(model_dir, which="vae")
    assert vae.speakers == ["awb", "rms", "slt"]
    # the decoder's variance is trained: below the unit variance of the normalized frames it reconstructs
    assert vae.decoder.log_variance.mean().item() < -0.1, vae.decoder.log_variance
    with pytest.raises(VawganError, match="vawgan.pt: not found"):
        load_model(model_dir, which="vawgan")

    assert _cli(real_features, model_dir, "critic", *schedule) == 0
    assert _cli(real_features, model_dir, "adversarial", *schedule) == 0
    curves = read_scalars(model_dir / "metrics.csv")
    assert set(TAGS) <= set(curves)
    assert curves["critic/d_real"][0] == list(range(21, 24))  # epochs continue across phases
    assert curves["vae/loss"][0] == list(range(1, 21)) + [22, 23]
    assert all(np.isfinite(v).all() for _, v in curves.values())

    rows = (model_dir / "metrics.csv").read_text()
    assert _cli(real_features, model_dir, "all", *schedule) == 0  # everything done: nothing is trained again
    assert (model_dir / "metrics.csv").read_text() == rows
    vae, vawgan = load_model(model_dir, which="vae"), load_model(model_dir, which="vawgan")
    x = torch.from_numpy(_real_frames(real_features).frames[:50])
    with torch.no_grad():
        assert not torch.equal(vae.decoder(vae.encoder(x)[0], torch.zeros(50, dtype=torch.long)),
                               vawgan.decoder(vawgan.encoder(x)[0], torch.zeros(50, dtype=torch.long)))


def test_adversarial_term_updates_the_decoder_only(real_features):
    frames = _real_frames(real_features)

    def grads_after_one_step(alpha, model_dir):
        trainer = Trainer(_tiny_config(alpha_mode="fixed", alpha_value=alpha), frames, model_dir,
                          torch.device("cpu"), progress=False)
        trainer.steps.adversarial_step(torch.arange(64))
        return ({n: p.grad.clone() for n, p in trainer.steps.encoder.named_parameters()},
                {n: p.grad.clone() for n, p in trainer.steps.decoder.named_parameters()})

    enc_without, dec_without = grads_after_one_step(0.0, real_features / "m0")
    enc_with, dec_with = grads_after_one_step(1000.0, real_features / "m1")
    for name in enc_without:  # the encoder's gradient is that of the VAE loss alone
        assert torch.allclose(enc_with[name], enc_without[name], rtol=1e-5, atol=1e-7), name
    assert any(not torch.allclose(dec_with[n], dec_without[n]) for n in dec_without)  # the decoder's is not


def test_kl_weight_scales_the_kl_term_of_the_vae_loss(real_features):
    frames = _real_frames(real_features)
    trainer = Trainer(_tiny_config(kl_weight=0.25), frames, real_features / "kl", torch.device("cpu"),
                      progress=False)
    nll, kl, loss = trainer.steps.vae_step(torch.arange(64)).tolist()
    assert kl > 0 and loss == pytest.approx(nll + 0.25 * kl, rel=1e-6)

    # the warm-up ramps the weight linearly over the first kl_warmup_epochs of VAE pretraining
    trainer = Trainer(_tiny_config(kl_weight=0.5, kl_warmup_epochs=2), frames, real_features / "warm",
                      torch.device("cpu"), progress=False)
    per_epoch = trainer.steps_per_epoch
    weights = []
    for epoch, step in [(0, 0), (0, per_epoch - 1), (1, per_epoch - 1), (3, 0)]:
        trainer.epoch, trainer.step = epoch, step
        weights.append(trainer._kl_weight())
    assert weights == pytest.approx([0.5 / (2 * per_epoch), 0.5 * 0.5, 0.5, 0.5])


def _real_pairs(root, frames):
    return load_pairs(root / "features", root / "train.tsv", Statistics.load(root / "stats.npz"), frames.speakers)


def test_parallel_pairs_are_aligned_frames_of_the_same_sentence_both_ways(real_features, tmp_path):
    from vawgan.alignment import align_speakers
    from vawgan.corpus import read_manifest
    from vawgan.features.store import load_features

    stats = Statistics.load(real_features / "stats.npz")
    pairs = load_pairs(real_features / "features", real_features / "train.tsv", stats, ["awb", "rms", "slt"])
    assert pairs.sentences == 3 * 2 * 2  # speaker pairs x sentences x directions
    assert pairs.source.shape == pairs.target.shape and pairs.source.shape[1] == 39
    assert pairs.target_ids.shape == (pairs.num_pairs,)

    def speech(speaker, utt_id):
        feats = load_features(real_features / "features" / speaker / f"{utt_id}.npz")
        return feats.mcep[feats.speech, 1:].astype(np.float64)

    # The first rows are awb's fb001 -> rms: awb's speech frames along the DTW path, rms's frames they match.
    awb, rms = speech("awb", "fb001"), speech("rms", "fb001")
    index_awb, index_rms = align_speakers(awb, rms)
    n = len(index_awb)
    np.testing.assert_allclose(pairs.source[:n], stats.normalize(awb[index_awb], "awb"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pairs.target[:n], stats.normalize(rms[index_rms], "rms"), rtol=1e-5, atol=1e-5)
    assert (pairs.target_ids[:n] == 1).all()
    # ... then the same path read the other way: rms -> awb.
    np.testing.assert_array_equal(pairs.source[n:2 * n], pairs.target[:n])
    np.testing.assert_array_equal(pairs.target[n:2 * n], pairs.source[:n])
    assert (pairs.target_ids[n:2 * n] == 0).all()
    assert set(pairs.target_ids.tolist()) == {0, 1, 2}

    # A corpus without parallel sentences cannot give pairs, and training with the weight on says so.
    utterances = read_manifest(real_features / "train.tsv")
    distinct = [u for u in utterances if (u.speaker, u.utt_id) in {("awb", "fb001"), ("rms", "fb002")}]
    write_manifest(distinct, tmp_path / "distinct.tsv")
    with pytest.raises(VawganError, match="no parallel sentences.*set it to 0"):
        load_pairs(real_features / "features", tmp_path / "distinct.tsv", stats, ["awb", "rms"])
    with pytest.raises(VawganError, match="parallel_weight=1.0 needs aligned parallel sentences"):
        Trainer(_tiny_config(parallel_weight=1.0), _real_frames(real_features), tmp_path / "m", torch.device("cpu"),
                progress=False)


@pytest.mark.slow
def test_parallel_weight_trains_the_conversion_on_aligned_pairs(real_features, tmp_path):
    """With the pairs in the loss, decoding a source frame's μ with the target's code fits the target's frame."""
    from vawgan.losses import gaussian_nll

    frames = _real_frames(real_features)
    pairs = _real_pairs(real_features, frames)

    def conversion_nll(trainer):
        with torch.no_grad():
            mu, _ = trainer.steps.encoder(torch.from_numpy(pairs.source))
            converted = trainer.steps.decoder(mu, torch.from_numpy(pairs.target_ids))
            return float(gaussian_nll(torch.from_numpy(pairs.target), converted, trainer.steps.decoder.log_variance))

    scores = {}
    for weight in (0.0, 1.0):
        config = _tiny_config(parallel_weight=weight, vae_epochs=6)
        trainer = Trainer(config, frames, tmp_path / f"w{weight}", torch.device("cpu"), progress=False, pairs=pairs)
        trainer.run(["vae"])
        scores[weight] = conversion_nll(trainer)
        if weight:
            nll, kl, objective, parallel_nll = trainer.steps.vae_step(torch.arange(64)).tolist()
            assert objective == pytest.approx(nll + kl, rel=1e-6) and parallel_nll > 0
            curves = read_scalars(tmp_path / f"w{weight}" / "metrics.csv")
            assert len(curves["parallel/nll"][1]) == 6
    print("conversion NLL of the aligned pairs (nats/frame), without / with parallel training:", scores)
    assert scores[1.0] < scores[0.0] - 2.0, scores



def test_realigned_pairs_follow_the_provisional_models_conversion(real_features, tmp_path):
    """train.realign_epochs: a provisional VAE in <model_dir>/alignment converts each parallel sentence, and the
    model is trained on the DTW path between that conversion and the target; later calls reuse it."""
    from vawgan.alignment import align
    from vawgan.convert import Converter
    from vawgan.features.store import load_features
    from vawgan.training import train_model

    config = _tiny_config(parallel_weight=1.0, realign_epochs=1)
    model_dir = tmp_path / "model"
    args = (real_features / "features", real_features / "train.tsv", real_features / "stats.npz", model_dir)
    provisional = model_dir / "alignment"
    provisional.mkdir(parents=True)  # what a run killed during the provisional training leaves
    (provisional / "checkpoint.pt").write_bytes(b"half-written")
    trainer = train_model(config, *args, phases=["vae"], device="cpu", progress=False)
    assert (provisional / "vae.pt").is_file() and (provisional / "config.yaml").is_file()
    assert read_scalars(provisional / "metrics.csv")["vae/nll"][0] == [1]  # one epoch, its own log

    converter = Converter(provisional, which="vae", device="cpu")
    stats = Statistics.load(real_features / "stats.npz")
    refined = load_pairs(real_features / "features", real_features / "train.tsv", stats, trainer.speakers,
                         convert=lambda feats, a, b: converter.convert_features(feats, a, b).mcep[:, 1:])
    np.testing.assert_array_equal(trainer.steps.pair_target.numpy(), refined.target)
    np.testing.assert_array_equal(trainer.steps.pair_source.numpy(), refined.source)
    direct = _real_pairs(real_features, _real_frames(real_features))
    assert refined.num_pairs != direct.num_pairs or not np.array_equal(refined.source, direct.source)

    # The first pairs are awb's fb001 along the path between its conversion to rms and rms's recording.
    awb, rms = (load_features(real_features / "features" / spk / "fb001.npz") for spk in ("awb", "rms"))
    converted = converter.convert_features(awb, "awb", "rms").mcep[:, 1:]
    index_awb, index_rms = align(converted[awb.speech], rms.mcep[rms.speech, 1:])
    n = len(index_awb)
    np.testing.assert_allclose(refined.target[:n], stats.normalize(rms.mcep[rms.speech, 1:][index_rms], "rms"),
                               rtol=1e-5, atol=1e-5)

    # A later phase in the same model directory keeps the provisional model and so the pairs.
    before = (provisional / "vae.pt").stat().st_mtime_ns
    later = train_model(config, *args, phases=["critic"], device="cpu", progress=False)
    assert (provisional / "vae.pt").stat().st_mtime_ns == before
    np.testing.assert_array_equal(later.steps.pair_target.numpy(), refined.target)
    with pytest.raises(VawganError, match="realign_epochs=1: re-aligning needs parallel data"):
        Trainer(_tiny_config(realign_epochs=1), _real_frames(real_features), tmp_path / "m", torch.device("cpu"),
                progress=False)

def _interrupt_at(trainer, phase, call):
    """Make the ``call``-th step of ``phase`` raise KeyboardInterrupt (a killed run)."""
    name = {"vae": "vae_step", "critic": "critic_step", "adversarial": "adversarial_step"}[phase]
    original, calls = getattr(trainer.steps, name), [0]

    def step(batch):
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return original(batch)

    setattr(trainer.steps, name, step)


def _state(trainer):
    return {**{f"encoder.{k}": v for k, v in trainer.steps.encoder.state_dict().items()},
            **{f"decoder.{k}": v for k, v in trainer.steps.decoder.state_dict().items()},
            **{f"critic.{k}": v for k, v in trainer.steps.critic.state_dict().items()}}


@pytest.mark.parametrize("parallel_weight, context", [(0.0, 0), (1.0, 0), (1.0, 2)])
@pytest.mark.slow
def test_interrupted_and_resumed_run_ends_with_the_same_weights(real_features, tmp_path, parallel_weight, context):
    stats = Statistics.load(real_features / "stats.npz")
    frames = load_frames(real_features / "features", real_features / "train.tsv", stats, context=context)
    pairs = load_pairs(real_features / "features", real_features / "train.tsv", stats, frames.speakers,
                       context=context) if parallel_weight else None
    config = _tiny_config(checkpoint_every=7, n_critic=2, parallel_weight=parallel_weight)
    config.model.context_frames = context

    def trainer(model_dir):
        return Trainer(config, frames, model_dir, torch.device("cpu"), progress=False, pairs=pairs)

    reference = trainer(tmp_path / "a")
    reference.run()

    model_dir = tmp_path / "b"
    first = trainer(model_dir)
    _interrupt_at(first, "vae", 60)  # mid-epoch, some steps after the checkpoint at step 56
    with pytest.raises(KeyboardInterrupt):
        first.run()
    with pytest.raises(VawganError, match="vae phase stopped at step 56.*add --resume"):
        trainer(model_dir).run()
    second = trainer(model_dir)
    _interrupt_at(second, "adversarial", 40)
    with pytest.raises(KeyboardInterrupt):
        second.run(resume=True)
    third = trainer(model_dir)
    third.run(resume=True)

    expected, got = _state(reference), _state(third)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert reference.global_step == third.global_step
    assert (reference.steps.opt_decoder.state_dict()["state"][0]["step"]
            == third.steps.opt_decoder.state_dict()["state"][0]["step"])
    # ... down to the bytes of the weight files (a retrained model can be checked with sha256sum).
    for weights in ("vae.pt", "vawgan.pt"):
        assert (tmp_path / "a" / weights).read_bytes() == (model_dir / weights).read_bytes(), weights


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(real_features, tmp_path):
    frames = _real_frames(real_features)
    trainer = Trainer(_tiny_config(checkpoint_every=5), frames, tmp_path, torch.device("cpu"), progress=False)
    original, calls = trainer.steps.vae_step, [0]

    def poisoned_step(batch):
        calls[0] += 1
        if calls[0] == 8:  # a weight goes bad; the loss of step 8 is the first non-finite one
            with torch.no_grad():
                trainer.steps.decoder.net[0].weight[0, 0] = float("nan")
        return original(batch)

    trainer.steps.vae_step = poisoned_step
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    message = str(info.value)
    assert "step 8 " in message and f"{tmp_path / 'checkpoint.pt'} (step 5)" in message
    assert "\n" not in message
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["global_step"] == 5
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())
    assert not (tmp_path / "vae.pt").exists()


@pytest.mark.slow
def test_a_critic_that_scores_every_frame_alike_is_reported(real_features, tmp_path, capsys):
    """A critic whose first layer is dead (every ReLU inactive) gives a penalty of exactly 1 and no gradient."""
    trainer = Trainer(_tiny_config(), _real_frames(real_features), tmp_path, torch.device("cpu"), progress=False)
    with torch.no_grad():
        trainer.steps.critic.net[0].bias.fill_(-1e4)
    trainer.run()
    assert trainer.final_scalars["adversarial"]["critic/gradient_penalty"] == 1.0
    assert len(trainer.warnings) == 1 + 2  # the critic epoch and both adversarial epochs
    err = capsys.readouterr().err
    assert "WARNING: critic epoch 1/1: the critic scores every frame alike" in err
    assert "WARNING: adversarial epoch 2/2: the critic scores every frame alike" in err


@pytest.mark.slow
def test_a_working_critic_is_not_reported(real_features, tmp_path, capsys):
    """Even a barely trained critic is far from the report's thresholds (here: penalty 0.36, estimate 0.13)."""
    trainer = Trainer(_tiny_config(), _real_frames(real_features), tmp_path, torch.device("cpu"), progress=False)
    trainer.run()
    assert trainer.final_scalars["critic"]["critic/gradient_penalty"] < 0.9
    assert abs(trainer.final_scalars["critic"]["critic/wasserstein"]) > 1e-2
    assert trainer.warnings == [] and "WARNING" not in capsys.readouterr().err


@pytest.mark.slow
def test_bf16_autocast_trains_with_float32_weights(real_features, tmp_path):
    frames = _real_frames(real_features)
    runs = {}
    for amp in (False, True):
        trainer = Trainer(_tiny_config(amp=amp, vae_epochs=1, adversarial_epochs=1), frames, tmp_path / str(amp),
                          torch.device("cpu"), progress=False)
        runs[amp] = trainer.run()
        assert all(p.dtype == torch.float32 for p in trainer.steps.decoder.parameters())
    assert all(np.isfinite(v) for scalars in runs[True].values() for v in scalars.values())
    # bf16 products change the numbers a little (so autocast is on), not the outcome
    nll32, nll16 = runs[False]["vae"]["vae/nll"], runs[True]["vae"]["vae/nll"]
    assert nll16 != nll32 and nll16 == pytest.approx(nll32, rel=0.01)


def test_bf16_autocast_forwards_read_the_weights_the_optimizer_just_updated(real_features, tmp_path):
    """Autocast's cast cache would keep the first step's bf16 weights for the whole epoch; each step's
    bf16 loss must instead track the float32 run step by step (stale weights drift ~1 % away)."""
    frames = _real_frames(real_features)
    nll = {}
    for amp in (False, True):
        trainer = Trainer(_tiny_config(amp=amp, vae_epochs=1, learning_rate=3e-3), frames, tmp_path / str(amp),
                          torch.device("cpu"), progress=False)
        rows, vae_step = [], trainer.steps.vae_step
        trainer.steps.vae_step = lambda batch: rows.append(vae_step(batch)) or rows[-1]
        trainer.run(["vae"])
        nll[amp] = torch.stack(rows)[:, 0].numpy()
    assert len(nll[True]) >= 15
    assert nll[False][-5:].mean() < 0.99 * nll[False][:5].mean()  # the weights moved within the epoch
    np.testing.assert_allclose(nll[True], nll[False], rtol=2e-3)


@pytest.mark.slow
def test_compiled_networks_train_like_eager_ones(real_features, tmp_path):
    """train.compile: torch.compile of encoder, decoder and critic gives the eager run's losses."""
    import shutil

    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("torch.compile on the CPU needs a C compiler, none found")
    frames = _real_frames(real_features)
    runs = {}
    for compiled in (False, True):
        trainer = Trainer(_tiny_config(compile=compiled, vae_epochs=1, critic_epochs=1, adversarial_epochs=1),
                          frames, tmp_path / str(compiled), torch.device("cpu"), progress=False)
        runs[compiled] = trainer.run()
        # the training forwards go through torch.compile's wrapper (the plain modules stay for saving)
        assert all(hasattr(m, "_orig_mod") == compiled
                   for m in (trainer.steps.train_encoder, trainer.steps.train_decoder, trainer.steps.train_critic))
    for phase, tags in runs[False].items():
        for tag, value in tags.items():
            if tag.startswith(("vae/", "critic/", "generator/")):
                assert runs[True][phase][tag] == pytest.approx(value, rel=1e-3, abs=1e-3), (phase, tag)


def test_critic_targets_conversion_and_reconstruction(real_features, tmp_path):
    frames = _real_frames(real_features)
    batch = torch.linspace(0, frames.num_frames - 1, 64).long()  # frames of every speaker
    conversion = Trainer(_tiny_config(), frames, tmp_path / "c", torch.device("cpu"), progress=False)
    x, sources = conversion.steps.x[batch], conversion.steps.speaker_ids[batch]
    targets, real = conversion.steps.targets(sources, x)
    assert (targets != sources).all()  # always another speaker
    assert len(set(targets.tolist())) == 3
    # each real frame is a frame of its target speaker
    rows = (real[:, None, :] == conversion.steps.x[None, :, :]).all(dim=2).float().argmax(dim=1)
    assert torch.equal(conversion.steps.speaker_ids[rows], targets)

    reconstruction = Trainer(_tiny_config(adversarial_target="reconstruction"), frames, tmp_path / "r",
                             torch.device("cpu"), progress=False)
    targets, real = reconstruction.steps.targets(sources, x)
    assert torch.equal(targets, sources) and torch.equal(real, x)
    single = FrameSet(frames.frames, np.zeros(frames.num_frames, dtype=np.int64), ["one"])
    only = Trainer(_tiny_config(), single, tmp_path / "s", torch.device("cpu"), progress=False)
    assert only.steps.decoder.embedding is None and not only.steps.conversion  # one speaker: the plain VAE of the blog


@pytest.mark.parametrize("setting, message", [
    ("train.alpha_mode=bogus", "train.alpha_mode='bogus' is not one of scale, fixed"),
    ("train.adversarial_target=frames", "train.adversarial_target='frames' is not one of conversion"),
    ("train.n_critic=0", "must be at least 1"),
    ("train.kl_weight=-1", "must not be negative"),
    ("model.input_dim=20", "frames have 39 dimensions but model.input_dim is 20"),
    ("model.decoder_variance=bogus", "model.decoder_variance='bogus' is not one of learned, unit"),
])
def test_cli_bad_training_settings_are_one_line_and_write_nothing(real_features, tmp_path, capsys, setting, message):
    model_dir = tmp_path / "model"
    assert _cli(real_features, model_dir, "vae", "--set", setting) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not model_dir.exists()


def test_cli_training_on_in_a_model_directory_of_other_data_is_refused(real_features, tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert _cli(real_features, model_dir, "vae", "--set", "train.vae_epochs=1") == 0
    weights = (model_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    # The same directory with another batch size: its checkpoint's data order and steps would not fit.
    assert _cli(real_features, model_dir, "critic", "--set", "train.batch_size=16") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "written with batch_size=32 but this run has 16" in err, err
    assert (model_dir / "checkpoint.pt").read_bytes() == weights


def test_training_frames_errors_name_the_file_and_the_fix(real_features, tmp_path):
    """load_frames refuses what would train a wrong model: missing statistics, a wrong order, NaN features."""
    import dataclasses
    import shutil

    from vawgan.corpus import Utterance, read_manifest
    from vawgan.features.store import load_features, save_features

    stats = Statistics.load(real_features / "stats.npz")
    utterances = read_manifest(real_features / "train.tsv")
    features = tmp_path / "features"
    shutil.copytree(real_features / "features", features)

    with pytest.raises(VawganError, match="no utterances in split 'eval'"):
        load_frames(features, real_features / "train.tsv", stats, split="eval")

    stranger = Utterance("bdl", utterances[0].utt_id, utterances[0].path, "train")
    shutil.copytree(features / utterances[0].speaker, features / "bdl")
    write_manifest([*utterances, stranger], tmp_path / "with_bdl.tsv")
    with pytest.raises(VawganError, match=r"\['bdl'\] .* have no statistics; re-run `vawgan stats`"):
        load_frames(features, tmp_path / "with_bdl.tsv", stats)

    first = features / utterances[0].speaker / f"{utterances[0].utt_id}.npz"
    feats = load_features(first)
    save_features(first, dataclasses.replace(feats, mcep=feats.mcep[:, :25]))
    with pytest.raises(VawganError, match=f"{first.name}: 25 mel-cepstral coefficients per frame"):
        load_frames(features, real_features / "train.tsv", stats)
    broken = feats.mcep.copy()
    broken[feats.speech.nonzero()[0][0], 3] = np.nan
    np.savez(first, **{**vars(feats), "mcep": broken})  # a file damaged on disk: save_features refuses NaN
    with pytest.raises(VawganError, match=f"{first.name}: non-finite values .* in mcep; delete the file"):
        load_frames(features, real_features / "train.tsv", stats)


def test_training_on_with_other_speakers_statistics_or_sizes_is_refused(real_features, tmp_path, capsys):
    """A model directory keeps its speakers, statistics and network: training on with others would corrupt it."""
    from vawgan.corpus import read_manifest

    model_dir = tmp_path / "model"
    assert _cli(real_features, model_dir, "vae", "--set", "train.vae_epochs=1") == 0
    kept = {name: (model_dir / name).read_bytes() for name in ("checkpoint.pt", "stats.npz", "speakers.txt")}

    write_manifest([u for u in read_manifest(real_features / "train.tsv") if u.speaker != "awb"],
                   tmp_path / "two.tsv")
    stats = Statistics.load(real_features / "stats.npz")
    stats.speaker_mcep_mean["awb"] = stats.speaker_mcep_mean["awb"] + 0.1
    stats.save(tmp_path / "other_stats.npz")
    base = ["train", "--phase", "critic", "--features", str(real_features / "features"), "--model-dir",
            str(model_dir), "--device", "cpu", "--no-progress", "--set", "train.batch_size=32",
            "--set", "train.tensorboard=false"]
    for extra, message in (
            (["--manifest", str(tmp_path / "two.tsv"), "--stats", str(real_features / "stats.npz")],
             "holds a model of speakers ['awb', 'rms', 'slt'], but the training data has ['rms', 'slt']"),
            (["--manifest", str(real_features / "train.tsv"), "--stats", str(tmp_path / "other_stats.npz")],
             "other statistics for speaker 'awb'"),
            (["--manifest", str(real_features / "train.tsv"), "--stats", str(real_features / "stats.npz"),
              "--set", "model.latent_dim=32"], "holds a model with other network sizes")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert all((model_dir / name).read_bytes() == data for name, data in kept.items())
