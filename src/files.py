"""Writing result files atomically.

A file is first written beside its target under a temporary name, flushed to the disk, and
then moved over it with ``os.replace`` (and the rename flushed too), so that a job killed
mid-write, a write that fails (a full disk) or a node that crashes never leaves a truncated
checkpoint, result or config behind, and never damages the earlier one. A write the system
refuses (a full disk, a read-only folder) is a `WriteError` that names the file.
"""

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from src.errors import KnownError


class WriteError(KnownError, OSError):
    """A result file that could not be written; the earlier one, if any, is left as it was."""


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def fsync_file(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk: a rename or a write survives a
    node crash only once fsynced, not just the death of the process."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_paths(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """Temporary paths beside ``paths`` (same suffix, so writers infer the format).

    When the body finishes, each temporary file replaces its target; if it raises, the
    temporary files are removed and the targets are untouched. An `OSError` on the way, the
    body's included, becomes a `WriteError` naming the targets.
    """
    targets = [Path(p) for p in paths]
    temporaries = []
    try:
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
            for temporary in temporaries:
                os.chmod(temporary, mode)
                fsync_file(temporary)  # the content is on disk before any rename can be
            for temporary, target in zip(temporaries, targets):
                os.replace(temporary, target)
            for folder in {target.parent for target in targets}:
                fsync_file(folder)  # and so are the renames
        except WriteError:
            raise
        except OSError as error:
            raise WriteError(f"cannot write {', '.join(map(str, targets))}: {error}") from error
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


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that killed writers left below ``folder`` (a SIGKILL skips
    `atomic_paths`' clean-up); call it only where no other process is writing. The removed paths."""
    stale = [path for path in Path(folder).rglob(".*.tmp*") if path.is_file()]
    for path in stale:
        path.unlink()
    return stale


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically."""
    with atomic_paths([path]) as (temporary,):
        temporary.write_text(text)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log such as results.json and flush it to the disk.

    An append is not atomic: a kill can leave a partial last line, which readers of such logs
    skip (see src.training.results_up_to)."""
    try:
        with open(path, "a") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())
    except OSError as error:
        raise WriteError(f"cannot append to {path}: {error}") from error
