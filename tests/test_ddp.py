"""Data-parallel training (DistributedDataParallel, gloo): two processes on the
CPU end with the same weights as one process on the same global batches."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vawgan.config import Config
from vawgan.data import FrameSet
from vawgan.train import Trainer


def _frames() -> FrameSet:
    """3 speakers of correlated 39-dim frames (a random low-rank mixture, like mel-cepstra)."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 39))
    frames = rng.normal(size=(1200, 6)) @ mixing + 0.3 * rng.normal(size=(1200, 39))
    return FrameSet(frames.astype(np.float32), rng.integers(0, 3, 1200), ["a", "b", "c"])


def _config() -> Config:
    config = Config()
    config.model.critic_conditional = True
    config.train.batch_size = 64
    config.train.vae_epochs, config.train.critic_epochs, config.train.adversarial_epochs = 1, 1, 1
    config.train.n_critic = 2
    config.train.tensorboard = False
    config.train.num_threads = 1
    return config


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, m in (("encoder", trainer.encoder), ("decoder", trainer.decoder),
                                                      ("critic", trainer.critic)) for k, v in m.state_dict().items()}


def _worker(rank: int, world: int, init_file: str, model_dir: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        trainer = Trainer(_config(), _frames(), model_dir, torch.device("cpu"), progress=False)
        trainer.run()
        if rank == 0:
            torch.save({"weights": _weights(trainer), "local_batch": trainer.local_batch,
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
    ddp = torch.load(out_file, weights_only=False)
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
