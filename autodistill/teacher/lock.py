"""One writer at a time for what the teacher home holds: the fine-tuned teacher and the
teacher-output cache are filled once, even when several workers (on one machine, or on several
machines sharing the home) start together; the others wait, then read what the first wrote.

``fcntl.flock`` on a lock file beside the folder, rather than the ``filelock`` package that comes
with torch: the standard library, the same call ``filelock`` makes on POSIX, and none of its
fallbacks (a "soft" lock, a file whose mere presence locks, would outlive a killed worker and
block every later run). The kernel drops a flock when its holder dies, however it dies. Linux
clients of NFS v4 take it as a lock on the server. The lock file is never removed: a worker
waiting on the file being removed would then hold a lock no later worker sees.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextmanager
def filling(target: str | Path, what: str, progress: bool = True) -> Iterator[None]:
    """Hold the lock for filling ``target`` (a folder in the teacher home) while the block runs;
    waits, saying so, while another process holds it."""
    path = lock_path(Path(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"waiting for another process to {what} in {target} ...", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
