"""Test-session settings.

Tests run tiny networks on tiny grids: with several threads per process, OpenMP spends more
time waking threads than computing (20x slower on a loaded 2-core machine), so one thread.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
