"""The process side of a training run: torchrun's process group, this machine's CPU threads,
what the ranks say to each other, the model under DDP, and the signals that ask a run to stop.

Under torchrun (RANK and WORLD_SIZE set) every process runs the same training; rank 0 alone
loads the images (and sends them), prints and writes files. With one process every helper
here is a no-op or a plain call, so the loop reads the same either way. This is the only
colorcli module that uses torch.distributed.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from colorcli.checkpoint import pick_device
from colorcli.errors import MainProcessFailed
from colorcli.model import Colorizer

__all__ = [
    "Dist",
    "StopFlag",
    "all_sum",
    "any_rank",
    "unwrapped",
    "barrier",
    "broadcast_images",
    "init_distributed",
    "leave",
    "set_cpu_threads",
    "wrapped",
]


@dataclass
class Dist:
    """This process's place in the run: its rank of ``world`` processes, and its GPU's index."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if launched by torchrun (nccl on CUDA, gloo on CPU)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist(), pick_device(device_name)
    d = Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    device = pick_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(d.local_rank)
        device = torch.device("cuda", d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return d, device


def leave(d: Dist) -> None:
    """Leave the process group that init_distributed joined (nothing with one process)."""
    if d.world > 1 and dist.is_initialized():
        # The DDP wrapper sits in reference cycles; collect it while its process group still
        # lives, not at interpreter exit after the group is gone (a suspected cause of a rare
        # "terminate called without an active exception" abort seen in the gloo tests).
        gc.collect()
        dist.destroy_process_group()


def set_cpu_threads(requested: int | None, d: Dist) -> int:
    """Share the machine's cores between the local ranks unless told otherwise; the threads used."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
    n = requested or max(1, (os.cpu_count() or 1) // max(1, local_world))
    torch.set_num_threads(n)
    return n


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """``t`` summed over the ranks, in place (on the training device under nccl)."""
    if d.world > 1:
        dist.all_reduce(t)
    return t


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank if it is True on any."""
    if d.world == 1:
        return flag
    return bool(all_sum(torch.tensor([float(flag)], device=device), d).item())


def barrier(d: Dist) -> None:
    """Wait until every rank gets here."""
    if d.world > 1:
        dist.barrier()


def broadcast_images(load: Callable[[], torch.Tensor], d: Dist, device: torch.device) -> torch.Tensor:
    """``load()``'s images, (N, 3, S, S) uint8, on every rank: rank 0 alone calls it and sends them.

    So every rank trains on the very same images: loading twice could differ if the folder
    changed in between, and ranks that split different data run different numbers of steps
    and hang. A load that fails on rank 0 fails on every rank (MainProcessFailed on the others).
    With one process this is ``load()``; otherwise the images come back where the backend
    sends from (the GPU under nccl, the CPU under gloo).
    """
    if d.world == 1:
        return load()
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")  # where the backend sends from
    shape = torch.zeros(4, dtype=torch.long, device=on)  # (N, 3, S, S)
    if d.main:
        try:
            data = load().to(on)
        except BaseException:
            shape.fill_(-1)  # tell the others, who wait for the images, that none are coming
            dist.broadcast(shape, src=0)
            raise
        shape.copy_(torch.tensor(data.shape))
    dist.broadcast(shape, src=0)
    if shape[0].item() < 0:
        raise MainProcessFailed("the main process (rank 0) could not load the images; its message says why")
    if not d.main:
        data = torch.empty(tuple(shape.tolist()), dtype=torch.uint8, device=on)
    dist.broadcast(data, src=0)
    return data


def wrapped(model: Colorizer, d: Dist, device: torch.device, compiled: bool = False) -> torch.nn.Module:
    """The model as the loop calls it: under DDP with several processes, compiled if asked."""
    net: torch.nn.Module = model
    if d.world > 1:
        if device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if compiled:
        net = torch.compile(net)
    return net


def unwrapped(model: torch.nn.Module) -> Colorizer:
    """The model under DDP / torch.compile wrappers, so saved keys carry no prefixes."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model  # type: ignore[return-value]


class StopFlag:
    """Set by SIGINT/SIGTERM; training finishes the current step, saves and exits."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # asked twice: stop now, the way Python normally would
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
