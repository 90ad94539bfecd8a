"""Data-parallel training: joining the ``torchrun`` process group.

Every process runs the same :class:`~vawgan.training.trainer.Trainer` on its
share of each global batch; DistributedDataParallel all-reduces the gradients,
so the updates equal those of one process on the whole batch.
"""

from __future__ import annotations

import os

import torch


def init_distributed(device_name: str) -> tuple[int, int, str]:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Returns ``(rank, world_size, device_name)``: NCCL with one GPU per process
    (``cuda:LOCAL_RANK``) on CUDA, gloo on the CPU. A single process returns
    ``(0, 1, device_name)`` unchanged.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device_name
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    else:
        device_name = "cpu"
    return dist.get_rank(), dist.get_world_size(), device_name

