"""Data-parallel training: joining the ``torchrun`` process group, wrapping the networks, averaging scalars.

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



def wrap_for_training(modules, device: torch.device, distributed: bool, compile_: bool) -> tuple:
    """The callables the training forwards of ``modules`` go through.

    In a process group, DistributedDataParallel wrappers (their backward
    all-reduces the gradients); with ``compile_``, ``torch.compile`` on top.
    Otherwise the modules themselves.
    """
    wrapped = tuple(modules)
    if distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        wrapped = tuple(DDP(m, device_ids=ids) for m in wrapped)
    if compile_:
        wrapped = tuple(torch.compile(m) for m in wrapped)
    return wrapped


def reduce_mean(t: torch.Tensor, distributed: bool, world: int) -> torch.Tensor:
    """Average ``t`` over the ``world`` processes (``t`` itself outside a process group)."""
    if distributed:
        import torch.distributed as dist

        t = t.clone()
        dist.all_reduce(t)
        t /= world
    return t
