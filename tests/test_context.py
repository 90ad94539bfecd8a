"""Encoder context (``model.context_frames``): windows of neighbouring frames, the same in training and conversion."""

import dataclasses

import numpy as np
import pytest
import torch

from vawgan.config import Config
from vawgan.convert import Converter
from vawgan.data import ContextTable, FrameSet, load_frames, load_pairs
from vawgan.errors import VawganError
from vawgan.features.context import context_windows, stack_context
from vawgan.features.store import load_features
from vawgan.model_dir import load_model_config, prepare_model_dir
from vawgan.runlog import read_scalars
from vawgan.stats import Statistics
from vawgan.training import Trainer
from vawgan.weights import NumpyModel, export_numpy_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CONTEXT = 3


def _config(context: int, **train) -> Config:
    config = Config()
    config.model.context_frames = context
    config.train.batch_size = 64
    config.train.vae_epochs, config.train.critic_epochs, config.train.adversarial_epochs = 6, 1, 1
    config.train.tensorboard = False
    config.train.num_threads = 1
    config.train.parallel_weight = 1.0
    config.train.alpha_mode = "fixed"  # as the recipes
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def _load(root, context):
    stats = Statistics.load(root / "stats.npz")
    frames = load_frames(root / "features", root / "train.tsv", stats, context=context)
    return frames, load_pairs(root / "features", root / "train.tsv", stats, frames.speakers, context=context)


def test_windows_repeat_the_edge_frames_and_lay_frames_side_by_side():
    np.testing.assert_array_equal(context_windows(4, 2), [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3],
                                                          [1, 2, 3, 3, 3]])
    np.testing.assert_array_equal(context_windows(3, 0), [[0], [1], [2]])
    assert context_windows(1, 2).tolist() == [[0, 0, 0, 0, 0]]
    frames = np.arange(12.0).reshape(4, 3)  # frame t holds 3t, 3t + 1, 3t + 2
    stacked = stack_context(frames, 1)
    assert stacked.shape == (4, 9)
    np.testing.assert_array_equal(stacked[0], [0, 1, 2, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(stacked[2], [3, 4, 5, 6, 7, 8, 9, 10, 11])
    np.testing.assert_array_equal(stack_context(frames, 1, slice(1, 3)), stacked[1:3])  # some rows only
    assert np.shares_memory(stack_context(frames, 0), frames)  # no context: the frames themselves, not a copy
    with pytest.raises(ValueError, match="must not be negative"):
        context_windows(4, -1)


def test_frame_sets_keep_each_frame_with_its_window_when_sorting_by_speaker():
    frames = np.arange(24.0, dtype=np.float32).reshape(6, 4)  # one utterance; frame t holds 4t .. 4t + 3
    table = ContextTable(frames, context_windows(6, 1))
    frame_set = FrameSet(frames, np.array([1, 0, 1, 0, 0, 1]), ["a", "b"], table)
    assert frame_set.speaker_ids.tolist() == [0, 0, 0, 1, 1, 1]
    inputs = frame_set.context.inputs()
    np.testing.assert_array_equal(inputs[:, 4:8], frame_set.frames)  # the centre of each window is its frame
    np.testing.assert_array_equal(inputs[0], np.concatenate([frames[0], frames[1], frames[2]]))  # frame 1's window


@pytest.mark.slow
def test_training_windows_are_whole_utterance_windows_of_the_speech_frames(real_features):
    """Every training row's window is its utterance's frames around it, silence included, never another's."""
    stats = Statistics.load(real_features / "stats.npz")
    plain, _ = _load(real_features, 0)
    frames, pairs = _load(real_features, CONTEXT)
    assert plain.context is None and frames.context.context == CONTEXT
    np.testing.assert_array_equal(frames.frames, plain.frames)  # the frames themselves do not change
    width = 2 * CONTEXT + 1
    inputs = frames.context.inputs()
    assert inputs.shape == (frames.num_frames, width * 39)
    np.testing.assert_array_equal(inputs[:, CONTEXT * 39:(CONTEXT + 1) * 39], frames.frames)  # centre = the frame
    np.testing.assert_array_equal(pairs.context.inputs()[:, CONTEXT * 39:(CONTEXT + 1) * 39], pairs.source)

    # Rows are sorted by speaker and the manifest lists awb's fb001 first: its speech frames open the set.
    feats = load_features(real_features / "features" / "awb" / "fb001.npz")
    normalized = stats.normalize(feats.mcep[:, 1:].astype(np.float64), "awb").astype(np.float32)
    expected = stack_context(normalized, CONTEXT)[feats.speech]
    np.testing.assert_array_equal(inputs[:len(expected)], expected)
    assert not feats.speech[:CONTEXT].all()  # the recording starts in silence, which the windows include


@pytest.mark.slow
def test_context_model_trains_and_converts_with_the_windows_of_training(real_features, tmp_path, shared_corpus):
    """A model with context trains all three phases on frames and pairs, converts the same through NumPy and
    PyTorch, and encodes each frame with its neighbours exactly as in training.

    (Whether context converts better is a question for held-out data and a full corpus:
    ``benchmarks/ablate_model.py`` and docs/evaluation.md.)
    """
    frames, pairs = _load(real_features, CONTEXT)
    model_dir = tmp_path / "model"
    config = _config(CONTEXT)
    prepare_model_dir(model_dir, config, Statistics.load(real_features / "stats.npz"), frames.speakers)
    trainer = Trainer(config, frames, model_dir, torch.device("cpu"), progress=False, pairs=pairs)
    trainer.run()
    epochs, parallel_nll = read_scalars(model_dir / "metrics.csv")["parallel/nll"]
    print("parallel NLL per epoch:", [round(v, 1) for v in parallel_nll])
    assert len(epochs) == 6 + 1 and parallel_nll[5] < parallel_nll[0] - 3, parallel_nll

    # The trainer gathers exactly the windows the data layer built.
    batch = torch.arange(100)
    np.testing.assert_array_equal(trainer.steps.encoder_input(batch, trainer.steps.x[batch]).numpy(),
                                  frames.context.inputs(slice(0, 100)))
    assert trainer.steps.encoder.net[0].in_features == (2 * CONTEXT + 1) * 39
    assert load_model_config(model_dir).model.context_frames == CONTEXT

    # Conversion: NumPy and PyTorch agree, and each output frame depends on its window only.
    reference = Converter(model_dir, device="auto")
    assert not isinstance(reference.model, NumpyModel)
    export_numpy_weights(model_dir, "vawgan")
    fast = Converter(model_dir, device="cpu")
    assert isinstance(fast.model, NumpyModel)
    feats = fast.analyze_file(shared_corpus / "rms" / "fb010.wav", "rms")
    out = fast.convert_features(feats, "rms", "slt").mcep
    np.testing.assert_allclose(out, reference.convert_features(feats, "rms", "slt").mcep, atol=1e-4)
    t = len(feats.mcep) // 2
    nudged = feats.mcep.copy()
    nudged[t, 1:] += 0.5
    moved = fast.convert_features(dataclasses.replace(feats, mcep=nudged), "rms", "slt").mcep
    changed = np.flatnonzero(np.abs(moved - out).max(axis=1) > 0)
    assert changed.min() == t - CONTEXT and changed.max() == t + CONTEXT, changed


def test_context_settings_must_match_the_loaded_data_and_the_checkpoint(real_features, tmp_path):
    frames, pairs = _load(real_features, 0)
    with pytest.raises(VawganError, match="training frames were loaded with 0 context frames but "
                                          "model.context_frames is 3"):
        Trainer(_config(CONTEXT), frames, tmp_path / "m", torch.device("cpu"), progress=False, pairs=pairs)
    framed, _ = _load(real_features, CONTEXT)
    with pytest.raises(VawganError, match="parallel pairs were loaded with 0 context frames"):
        Trainer(_config(CONTEXT), framed, tmp_path / "m", torch.device("cpu"), progress=False, pairs=pairs)
    bad = _config(-1, parallel_weight=0.0)
    with pytest.raises(VawganError, match="model.context_frames=-1 must not be negative"):
        Trainer(bad, frames, tmp_path / "m", torch.device("cpu"), progress=False)

    # A checkpoint of a run with context cannot be continued without it.
    model_dir = tmp_path / "resume"
    trainer = Trainer(_config(CONTEXT, parallel_weight=0.0, vae_epochs=1), framed, model_dir, torch.device("cpu"),
                      progress=False)
    trainer.run(["vae"])
    plain = Trainer(_config(0, parallel_weight=0.0, vae_epochs=1), frames, model_dir, torch.device("cpu"),
                    progress=False)
    with pytest.raises(VawganError, match="written with context_frames=3 but this run has 0"):
        plain.run(["critic"])
