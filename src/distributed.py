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

Environment read (torchrun's first, else srun's):
    RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT        set by torchrun
    SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_STEP_NODELIST, SLURM_JOB_ID
                                                                  set by srun in each task
Under srun, MASTER_ADDR defaults to the step's first node and MASTER_PORT to a port derived
from the job id (the same after a requeue, different for two jobs on one node).
"""

import os
import signal
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class DistributedError(RuntimeError):
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


def slurm_master_address() -> str:
    """The first node of the srun step: rank 0 runs there (srun numbers tasks node by node)."""
    nodes = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST")
    if not nodes:
        raise DistributedError("MASTER_ADDR is not set and Slurm gives no node list: set MASTER_ADDR to the "
                               "host of rank 0")
    try:
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               check=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError) as error:
        raise DistributedError(f"MASTER_ADDR is not set and `scontrol show hostnames {nodes}` failed ({error}): "
                               f"set MASTER_ADDR to the host of rank 0") from None
    return hosts[0]


def environment_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) of this process, from torchrun's or srun's variables;
    (0, 1, 0) for a process started plainly (or as the batch script of a Slurm job)."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ.get("RANK", 0)), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    # SLURM_STEP_NUM_TASKS is set in the tasks of an srun step, not in a batch script, whose
    # SLURM_NTASKS is the whole job's: a script run directly by sbatch is one process.
    if "SLURM_STEP_NUM_TASKS" in os.environ and "SLURM_PROCID" in os.environ:
        return (int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_STEP_NUM_TASKS"]),
                int(os.environ.get("SLURM_LOCALID", 0)))
    return 0, 1, 0


class World:
    """The processes of one run and the few collectives training needs; a world of size 1
    runs none of them, so a single process behaves as it did before there were several."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, device: torch.device | None = None):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device = torch.device(device) if device is not None else default_device(local_rank)
        self.stop_group = None  # a gloo group for the stop flag: a CPU tensor, no device sync

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    def start(self) -> "World":
        """Join the process group (a world of several only)."""
        if self.size == 1:
            return self
        if "MASTER_ADDR" not in os.environ:
            os.environ["MASTER_ADDR"] = slurm_master_address()
        if "MASTER_PORT" not in os.environ:
            os.environ["MASTER_PORT"] = str(10000 + int(os.environ.get("SLURM_JOB_ID", 0)) % 20000)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group(self.backend, rank=self.rank, world_size=self.size,
                                device_id=self.device if self.device.type == "cuda" else None)
        self.stop_group = dist.new_group(backend="gloo") if self.backend != "gloo" else dist.group.WORLD
        return self

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def describe(self) -> str:
        if self.size == 1:
            return f"1 process, device {self.device}"
        return (f"{self.size} processes ({self.backend}), this one rank {self.rank} (local rank {self.local_rank}) "
                f"on {self.device}, master {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}")

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


def world_from_environment() -> World:
    rank, size, local_rank = environment_ranks()
    return World(rank, size, local_rank)
