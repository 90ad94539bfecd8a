"""Data-parallel training (DistributedDataParallel, gloo): two processes on the
CPU end with the same weights as one process on the same global batches."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vawgan.config import Config
from vawgan.data import ContextTable, FrameSet, PairSet
from vawgan.features.context import context_windows
from vawgan.training import Trainer

# Each test starts two worker processes that import torch and train: about 15 s apiece.
pytestmark = pytest.mark.slow


def _windows(frames: np.ndarray, context: int) -> ContextTable | None:
    """Encoder windows of ``frames`` read as one utterance (None without context)."""
    return ContextTable(frames, context_windows(len(frames), context)) if context else None


def _frames(context: int = 0) -> FrameSet:
    """3 speakers of correlated 39-dim frames (a random low-rank mixture, like mel-cepstra)."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 39))
    frames = (rng.normal(size=(1200, 6)) @ mixing + 0.3 * rng.normal(size=(1200, 39))).astype(np.float32)
    return FrameSet(frames, rng.integers(0, 3, 1200), ["a", "b", "c"], _windows(frames, context))


def _pairs(context: int = 0) -> PairSet:
    """Synthetic "aligned" pairs for the frames' speakers: a target frame is a fixed linear map of its source."""
    frames = _frames()
    rng = np.random.default_rng(1)
    source = frames.frames[:600]
    target = (source @ (0.5 * np.eye(39) + 0.05 * rng.normal(size=(39, 39)))).astype(np.float32)
    return PairSet(source, target, rng.integers(0, 3, 600), frames.speakers, sentences=1,
                   context=_windows(source, context))


def _config(parallel_weight: float = 0.0, context: int = 0) -> Config:
    config = Config()
    config.model.context_frames = context
    config.train.parallel_weight = parallel_weight
    config.model.critic_conditional = True
    config.train.batch_size = 64
    config.train.vae_epochs, config.train.critic_epochs, config.train.adversarial_epochs = 1, 1, 1
    config.train.n_critic = 2
    config.train.tensorboard = False
    config.train.num_threads = 1
    return config


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, m in zip(("encoder", "decoder", "critic"), trainer.steps.modules())
            for k, v in m.state_dict().items()}


def _worker(rank: int, world: int, init_file: str, model_dir: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = Trainer(_config(), _frames(), model_dir, torch.device("cpu"), progress=False)
        trainer.run()
        if rank == 0:
            torch.save({"weights": _weights(trainer), "local_batch": trainer.steps.local_batch,
                        "final": trainer.final_scalars}, out_file)
        dist.barrier()  # tear the group down only once both processes are done with it
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_torch_thread")
def test_two_gloo_processes_match_one_process(tmp_path):
    single = Trainer(_config(), _frames(), tmp_path / "single", torch.device("cpu"), progress=False)
    single.run()
    out_file = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), str(out_file)), nprocs=2, join=True)
    ddp = torch.load(out_file, weights_only=True)
    assert ddp["local_batch"] == 32  # each process really saw half of every batch
    expected = _weights(single)
    assert expected.keys() == ddp["weights"].keys()
    # Summation order differs between one all-reduced pair of half batches and
    # one full batch (~1e-7); Adam turns a near-zero gradient's rounding noise
    # into up to lr-sized steps, so a few weights differ by ~3e-5 here. Every
    # trained weight moved by ~1e-2 on average (the critic's output bias cannot
    # move: the WGAN-GP loss does not depend on it), so 1e-4 still catches a wrong split.
    for key, value in expected.items():
        torch.testing.assert_close(ddp["weights"][key], value, rtol=0, atol=1e-4, msg=key)
    for phase, scalars in single.final_scalars.items():  # epoch means are averaged over processes
        for tag, value in scalars.items():
            assert ddp["final"][phase][tag] == pytest.approx(value, rel=1e-4, abs=1e-5), (phase, tag)


def _parallel_step_gradients(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Encoder and decoder gradients of one VAE step and one adversarial step (optimizers held still)."""
    for optimizer in (trainer.steps.opt_encoder, trainer.steps.opt_decoder, trainer.steps.opt_critic):
        optimizer.step = lambda: None
    gradients = {}
    for name, step in (("vae", trainer.steps.vae_step), ("adversarial", trainer.steps.adversarial_step)):
        step(torch.arange(64)[trainer.steps.local])
        gradients.update({f"{name}.{module}.{key}": p.grad.clone()
                          for module, m in (("encoder", trainer.steps.encoder), ("decoder", trainer.steps.decoder))
                          for key, p in m.named_parameters()})
    return gradients


def _parallel_worker(rank: int, world: int, init_file: str, model_dir: str, out_file: str, context: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = Trainer(_config(parallel_weight=1.0, context=context), _frames(context), model_dir,
                          torch.device("cpu"), progress=False, pairs=_pairs(context))
        gradients = _parallel_step_gradients(trainer)
        if rank == 0:
            torch.save(gradients, out_file)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("context", [0, 2])
def test_two_gloo_processes_compute_the_parallel_steps_of_one_process(tmp_path, context):
    """With train.parallel_weight the pairs ride along in the DDP-wrapped passes: the same gradients per step,
    also when each process gathers its share of the batch's encoder windows (``model.context_frames``).

    (Whole runs are compared for the plain steps above; with the pairs the
    one-process and two-process runs drift apart over tens of Adam steps from
    float32 summation-order differences of ~1e-7, so the steps are compared
    where that drift cannot hide a wrong split: gradient for gradient.)
    """
    single = Trainer(_config(parallel_weight=1.0, context=context), _frames(context), tmp_path / "single",
                     torch.device("cpu"), progress=False, pairs=_pairs(context))
    assert single.steps.encoder.net[0].in_features == (2 * context + 1) * 39
    expected = _parallel_step_gradients(single)
    out_file = tmp_path / "ddp.pt"
    mp.spawn(_parallel_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp"), str(out_file), context),
             nprocs=2, join=True)
    got = torch.load(out_file)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5 * float(value.abs().max()), msg=key)
