"""Training on a GPU: CUDA graphs against eager CUDA, resume and the NaN guard through replayed graphs,
bf16, torch.compile, TF32, and weights that move between devices.

Skipped where no CUDA device is visible (CI has none); run on a GPU machine. The frames are real:
the recipe's extracted features when ``recipes/flite/dump`` exists (``bash recipes/flite/run.sh
--stop-stage 2``), else the session's feature fixture (shared corpus + pyworld).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from vawgan.cli import main
from vawgan.config import Config
from vawgan.data import FrameSet, load_frames
from vawgan.model_dir import load_model
from vawgan.stats import Statistics
from vawgan.training import Trainer, TrainingDiverged

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "flite"
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def feature_paths(request, tmp_path_factory):
    """``(feature_dir, manifest, stats_path)`` of real extracted features."""
    if (RECIPE / "dump" / "features").is_dir() and (RECIPE / "data" / "train.tsv").is_file():
        return RECIPE / "dump" / "features", RECIPE / "data" / "train.tsv", RECIPE / "dump" / "stats.npz"
    from vawgan.corpus import write_manifest
    from vawgan.stats import compute_corpus_statistics

    feature_dir, utterances, _ = request.getfixturevalue("flite_features")
    root = tmp_path_factory.mktemp("cuda_features")
    write_manifest(utterances, root / "train.tsv")
    stats, _ = compute_corpus_statistics(utterances, feature_dir)
    stats.save(root / "stats.npz")
    return feature_dir, root / "train.tsv", root / "stats.npz"


@pytest.fixture(scope="module")
def frames(feature_paths) -> FrameSet:
    """At most 64 x 40 real frames (every speaker's first ones), enough for 40 steps of 64 per epoch."""
    feature_dir, manifest, stats = feature_paths
    full = load_frames(feature_dir, manifest, Statistics.load(stats))
    keep = np.concatenate([np.arange(o, o + min(c, 64 * 40 // len(full.speakers)))
                           for o, c in zip(full.offsets, full.counts)])
    return FrameSet(full.frames[keep], full.speaker_ids[keep], full.speakers)


def _config(**train) -> Config:
    config = Config()
    config.train.batch_size = 64
    config.train.vae_epochs, config.train.critic_epochs, config.train.adversarial_epochs = 2, 1, 2
    config.train.kl_warmup_epochs = 1.5  # the warm-up weight reaches captured steps through a device tensor
    config.train.n_critic = 2
    config.train.tensorboard = False
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def _weights(trainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v for name in ("encoder", "decoder", "critic")
            for k, v in getattr(trainer, name).state_dict().items()}


def _assert_same_weights(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(((a[k] - b[k]).abs().max().item(), k) for k in a)
    print(f"largest weight difference: {worst[0]:.3g} ({worst[1]})")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


@pytest.fixture(scope="module")
def pairs(feature_paths, frames):
    """Aligned parallel frames of the same manifest (for ``train.parallel_weight``)."""
    from vawgan.data import load_pairs

    feature_dir, manifest, stats = feature_paths
    return load_pairs(feature_dir, manifest, Statistics.load(stats), frames.speakers)


@pytest.mark.parametrize("parallel_weight", [0.0, 1.0])
def test_cuda_graph_replays_train_like_eager_cuda(frames, tmp_path, request, parallel_weight):
    """The same seed gives the same run with and without graphs: replays draw the same random numbers."""
    runs = {}
    pairs = request.getfixturevalue("pairs") if parallel_weight else None
    for graphs in (False, True):
        trainer = Trainer(_config(cuda_graphs=graphs, parallel_weight=parallel_weight), frames,
                          tmp_path / str(graphs), CUDA, progress=False, pairs=pairs)
        assert trainer.graphs == graphs
        runs[graphs] = (trainer.run(), _weights(trainer), trainer.global_step)
    assert runs[True][2] == runs[False][2] == (2 + 1 + 2) * (len(frames.frames) // 64)
    _assert_same_weights(runs[True][1], runs[False][1], rtol=1e-4, atol=1e-5)
    for phase, scalars in runs[False][0].items():
        for tag, value in scalars.items():
            assert runs[True][0][phase][tag] == pytest.approx(value, rel=1e-4, abs=1e-5), (phase, tag)


def test_cuda_graph_replays_gather_context_windows_like_eager_cuda(feature_paths, tmp_path):
    """With encoder context (``model.context_frames``) the captured steps gather each batch's windows on the device."""
    from vawgan.data import load_pairs

    feature_dir, manifest, stats_path = feature_paths
    stats = Statistics.load(stats_path)
    frames = load_frames(feature_dir, manifest, stats, context=2)
    pairs = load_pairs(feature_dir, manifest, stats, frames.speakers, context=2)
    runs = {}
    for graphs in (False, True):
        config = _config(cuda_graphs=graphs, parallel_weight=1.0, vae_epochs=1, adversarial_epochs=1)
        config.model.context_frames = 2
        trainer = Trainer(config, frames, tmp_path / str(graphs), CUDA, progress=False, pairs=pairs)
        assert trainer.graphs == graphs and trainer.steps.encoder.net[0].in_features == 5 * 39
        runs[graphs] = (trainer.run(), _weights(trainer))
    _assert_same_weights(runs[True][1], runs[False][1], rtol=1e-4, atol=1e-5)


def _die_after_checkpoint(trainer, phase: str) -> None:
    """Make ``trainer`` stop (KeyboardInterrupt, a killed run) just after its first mid-epoch checkpoint
    in ``phase`` past step 10 of an epoch."""
    original_save = trainer._save_checkpoint

    def save_then_die():
        original_save()
        if trainer.phase == phase and trainer.step > 10:
            raise KeyboardInterrupt

    trainer._save_checkpoint = save_then_die


def test_interrupted_and_resumed_cuda_graph_run_ends_with_the_same_weights(frames, tmp_path):
    """Killed in the KL warm-up of pretraining and again mid-epoch in the adversarial phase; each restart
    warms up and captures its graphs afresh, and the run ends where an uninterrupted one does."""
    config = _config(checkpoint_every=7)
    reference = Trainer(config, frames, tmp_path / "a", CUDA, progress=False)
    reference.run()
    model_dir = tmp_path / "b"
    for phase in ("vae", "adversarial"):
        trainer = Trainer(config, frames, model_dir, CUDA, progress=False)
        _die_after_checkpoint(trainer, phase)
        with pytest.raises(KeyboardInterrupt):
            trainer.run(resume=True)
    last = Trainer(config, frames, model_dir, CUDA, progress=False)
    last.run(resume=True)
    assert last.global_step == reference.global_step
    _assert_same_weights(_weights(last), _weights(reference), rtol=1e-4, atol=1e-5)


def test_nan_guard_catches_a_weight_that_goes_bad_under_graph_replays(frames, tmp_path):
    trainer = Trainer(_config(checkpoint_every=5), frames, tmp_path, CUDA, progress=False)
    original_save = trainer._save_checkpoint

    def save_then_poison():
        original_save()
        if trainer.global_step == 10:  # replays read the weight tensor in place
            with torch.no_grad():
                trainer.steps.decoder.net[0].weight[0, 0] = float("nan")

    trainer._save_checkpoint = save_then_poison
    with pytest.raises(TrainingDiverged, match=r"non-finite loss or weights at step 11 .*\(step 10\)"):
        trainer.run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["global_step"] == 10
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())


def test_bf16_cuda_graph_replays_train_like_eager_bf16(frames, tmp_path):
    """Autocast (without its cast cache) inside a captured step: the same run as eager bf16."""
    runs = {}
    for graphs in (False, True):
        trainer = Trainer(_config(amp=True, cuda_graphs=graphs), frames, tmp_path / str(graphs), CUDA,
                          progress=False)
        trainer.run()
        runs[graphs] = _weights(trainer)
        assert all(p.dtype == torch.float32 for p in trainer.steps.decoder.parameters())
    _assert_same_weights(runs[True], runs[False], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("setting", [{"amp": True}, {"compile": True}, {"tf32": True}])
def test_bf16_compiled_and_tf32_cuda_runs_stay_near_float32_eager(frames, tmp_path, setting):
    """Same losses within a few percent: bf16 rounds every product (an H100 run of this test: 4 % apart
    after five epochs), TF32 rounds the products' inputs to 10-bit mantissas, torch.compile reorders
    float32 arithmetic."""
    runs = {}
    for name, extra in (("plain", {"cuda_graphs": False, "tf32": False}), ("variant", {"tf32": False, **setting})):
        runs[name] = Trainer(_config(**extra), frames, tmp_path / name, CUDA, progress=False).run()
    print({phase: (runs["plain"][phase]["vae/nll"], runs["variant"][phase]["vae/nll"])
           for phase in ("vae", "adversarial")})
    for phase in ("vae", "adversarial"):
        assert runs["variant"][phase]["vae/nll"] == pytest.approx(runs["plain"][phase]["vae/nll"], rel=0.06)


@pytest.mark.parametrize("tf32", [True, False])
def test_tf32_products_are_on_only_while_training(frames, tmp_path, tf32):
    """``train.tf32`` switches TF32 on for the trainer's steps and back to what it was after."""
    trainer = Trainer(_config(tf32=tf32), frames, tmp_path, CUDA, progress=False)
    seen = set()
    step = trainer.steps.vae_step

    def recording_step(batch):
        seen.add(torch.get_float32_matmul_precision())
        return step(batch)

    trainer.steps.vae_step = recording_step
    assert torch.get_float32_matmul_precision() == "highest"
    trainer.run()
    assert seen == {"high" if tf32 else "highest"}
    assert torch.get_float32_matmul_precision() == "highest"


def test_cli_trains_on_cuda_and_the_weights_load_on_the_cpu(feature_paths, tmp_path):
    feature_dir, manifest, stats = feature_paths
    model_dir = tmp_path / "model"
    assert main(["train", "--phase", "all", "--features", str(feature_dir), "--manifest", str(manifest),
                 "--stats", str(stats), "--model-dir", str(model_dir), "--device", "cuda", "--no-progress",
                 "--set", "train.vae_epochs=1", "--set", "train.critic_epochs=1",
                 "--set", "train.adversarial_epochs=1", "--set", "train.tensorboard=false"]) == 0
    on_gpu, on_cpu = load_model(model_dir, "vawgan", device="cuda"), load_model(model_dir, "vawgan", device="cpu")
    x = torch.randn(256, on_cpu.config.model.input_dim)
    speakers = torch.arange(256) % len(on_cpu.speakers)
    with torch.no_grad():
        mu_gpu, _ = on_gpu.encoder(x.to("cuda"))
        y_gpu = on_gpu.decoder(mu_gpu, speakers.to("cuda")).cpu()
        mu_cpu, _ = on_cpu.encoder(x)
        y_cpu = on_cpu.decoder(mu_cpu, speakers)
    torch.testing.assert_close(y_gpu, y_cpu, rtol=1e-3, atol=1e-3)
