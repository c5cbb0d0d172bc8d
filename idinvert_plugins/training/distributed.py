"""The little distributed training needs: set up from torchrun's environment, average gradients, agree.

Gradients are averaged by hand (:func:`all_reduce_grads`) instead of wrapping models in
``DistributedDataParallel``: GAN training runs several backward passes per step on different subsets of
the parameters (D main, lazy R1, G main, path length), some with double backward, which DDP's hooks
handle poorly (unused-parameter errors, no double backward). Averaging explicitly after each backward pass,
on every rank in the same order, is simple and always correct.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and device of this process (rank 0 / world 1 / its device when not distributed)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA.

    ``device``: None picks ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        import_before_group()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, device=device)


def import_before_group() -> None:
    """Import ``torch._dynamo`` now, before the process group exists.

    ``torch.optim`` imports ``torch._dynamo`` lazily, when the first optimiser is built. Imported while a
    process group exists, it leaves that group referenced (measured with torch 2.13 and gloo: after
    ``destroy_process_group()`` and ``gc.collect()`` the ``gloo_tcp_loop`` and ``pt_gloo_runloop`` threads are
    still running; imported before the group, they are gone). The group is then torn down only during
    interpreter shutdown, with its threads still running, which can end the process with "terminate called
    without an active exception" (SIGABRT) instead of exit code 0, depending on timing. Importing it first
    lets :func:`cleanup` really free the group.
    """
    import torch._dynamo  # noqa: F401


def cleanup() -> None:
    """Leave and free the process group (every rank calls it, after its last collective)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_grads(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over ranks in one flat all-reduce (missing grads count as 0)."""
    if not info.enabled:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    flat /= info.world_size
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad = g.view_as(p).clone()


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``t`` over ranks (returns ``t`` itself when not distributed)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / info.world_size


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


@torch.no_grad()
def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, so every rank holds the same
    network. (Each rank normalises with its own batch's statistics: not synchronised BatchNorm.)"""
    if not info.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            b.copy_(all_reduce_mean(b, info))


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is True on any rank (so all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj``, in rank order (a one-element list when not distributed)."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
