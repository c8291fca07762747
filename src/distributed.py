"""Training on several processes with torch.distributed: one process (rank) per GPU, on one
node or several, started by ``torchrun`` or by ``srun`` (one task per GPU); or a few processes
on a CPU over gloo. One process started plainly is a world of size 1 and runs no collective.

What a run means does not change with the number of processes:

- ``batch_size`` is global: the batch of one optimizer step over all ranks, the original's
  meaning on one GPU. Each rank takes its contiguous share of every batch (a `Shard`), so it
  must split evenly. DistributedDataParallel (DDP) averages the gradients of the equal shares:
  the gradient of the whole batch's mean loss.
- A step's random draws (noise, noise levels, GANO's interpolation weights) are made for the
  whole batch from the step's generator, keyed by (seed, epoch, step), and cut to the rank's
  rows (`Shard.of`): a function gets the same noise whatever the number of ranks, so N ranks
  take the steps of one process with the same batch, up to float rounding.
- The logged losses are the means over ranks (over the whole batch); a stop signal that
  reaches any rank stops every rank after the same step (`World.agreed_signal`).
- Rank 0 alone writes files: checkpoints, results, figures. Every rank reads the checkpoint
  on resumption, which needs nothing of the world size that wrote it.

A `World` is given its rank and size, and `World.start` rank 0's address, as values: src/cli.py
reads them from torchrun's or srun's environment.
"""

import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from src.errors import KnownError


class DistributedError(KnownError, RuntimeError):
    """The process cannot join its world (a missing address, an uneven batch)."""


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of a batch of ``size`` rows: one rank's share of it."""

    start: int
    stop: int
    size: int

    @classmethod
    def whole(cls, size: int) -> "Shard":
        return cls(0, size, size)

    def of(self, drawn: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``drawn``, a draw (or a batch) for all ``size`` rows."""
        return drawn[self.start:self.stop]


class World:
    """The processes of one run and the few collectives training needs; a world of size 1
    runs none of them, so a single process behaves as it did before there were several."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, device: torch.device | None = None):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = torch.device(device) if device is not None else default_device(local_rank)
        self.address, self.port = None, None  # rank 0's, once started
        self.stop_group = None  # a gloo group for the stop flag: a CPU tensor, no device sync

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    def start(self, address: str | None = None, port: int | None = None) -> "World":
        """Join the process group (a world of several only), whose store rank 0 serves at ``address``:``port``."""
        if self.size == 1:
            return self
        if address is None or port is None:
            raise DistributedError(f"rank {self.rank} of {self.size} has no address of rank 0: set MASTER_ADDR "
                                   "and MASTER_PORT")
        self.address, self.port = address, port
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        host = f"[{self.address}]" if ":" in self.address else self.address  # an IPv6 address
        dist.init_process_group(self.backend, init_method=f"tcp://{host}:{self.port}", rank=self.rank,
                                world_size=self.size, device_id=self.device if self.device.type == "cuda" else None)
        self.stop_group = dist.new_group(backend="gloo") if self.backend != "gloo" else dist.group.WORLD
        return self

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def describe(self) -> str:
        if self.size == 1:
            return f"1 process, device {self.device}"
        return (f"{self.size} processes ({self.backend}), this one rank {self.rank} (local rank {self.local_rank}) "
                f"on {self.device}, master {self.address}:{self.port}")

    def shard(self, batch_size: int) -> Shard:
        """This rank's rows of a batch of ``batch_size``; the batch must split evenly."""
        if batch_size % self.size:
            raise DistributedError(f"a batch of {batch_size} does not split evenly over {self.size} processes: "
                                   f"make batch_size (the global batch, over all processes) a multiple of {self.size}")
        share = batch_size // self.size
        return Shard(self.rank * share, (self.rank + 1) * share, batch_size)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` as trained: DDP over the process group, or itself without one (a world of
        1). Checkpoints, the EMA and sampling keep using ``module``, whose parameters DDP shares."""
        if not dist.is_initialized():
            return module
        # No buffer is trained: nothing to sync before each forward.
        return DistributedDataParallel(module, device_ids=[self.device] if self.device.type == "cuda" else None,
                                       forward_sync_buffers=False)

    def mean(self, losses: dict) -> dict:
        """{name: scalar tensor} averaged over ranks (equal shards: the whole batch's mean)."""
        if self.size == 1 or not losses:
            return losses
        names = list(losses)  # the same order on every rank: the same code made them
        stacked = torch.stack([losses[name] for name in names])
        dist.all_reduce(stacked)
        return dict(zip(names, (stacked / self.size).unbind()))

    def agreed_signal(self, received: str | None) -> str | None:
        """The stop signal of any rank (by name), the same answer on every rank."""
        if self.size == 1:
            return received
        flag = torch.tensor([signal.Signals[received].value if received else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.stop_group)
        return signal.Signals(int(flag)).name if int(flag) else None

    def gather(self, item) -> list:
        """Every rank's ``item`` (any picklable object), in rank order, on every rank."""
        if self.size == 1:
            return [item]
        items = [None] * self.size
        dist.all_gather_object(items, item)
        return items

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def default_device(local_rank: int = 0) -> torch.device:
    """The GPU of this local rank (GPUs shared round-robin if fewer), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")

