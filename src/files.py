"""Writing result files atomically.

A file is first written beside its target under a temporary name and then moved over it
with ``os.replace``, so that a job killed mid-write, or a write that fails, never leaves a
truncated checkpoint, result or config behind, and never damages the earlier one.
"""

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Iterator, Sequence


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_paths(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """Temporary paths beside ``paths`` (same suffix, so writers infer the format).

    When the body finishes, each temporary file replaces its target; if it raises, the
    temporary files are removed and the targets are untouched.
    """
    targets = [Path(p) for p in paths]
    temporaries = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}",
                                            dir=target.parent)
            os.close(handle)
            temporaries.append(Path(name))
        yield temporaries
        # mkstemp makes files only their owner can read; give them the mode open() would.
        mode = 0o666 & ~_umask()
        for temporary, target in zip(temporaries, targets):
            os.chmod(temporary, mode)
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)


def write_outputs(files: dict) -> None:
    """Write {path: value} as one set: ``.json`` paths as JSON, the others as pickles.

    All are written to temporary files first and renamed only when every one is complete,
    so a failure leaves the earlier set whole.
    """
    paths = list(files)
    with atomic_paths(paths) as temporaries:
        for path, temporary in zip(paths, temporaries):
            if Path(path).suffix == ".json":
                temporary.write_text(json.dumps(files[path], indent=2) + "\n")
            else:
                with open(temporary, "wb") as f:
                    pickle.dump(files[path], f, protocol=pickle.HIGHEST_PROTOCOL)
